//! The byte stream a session runs on, and its two kinds: an accepted TCP socket (daemon) or stdin/stdout (inetd mode).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::limits::MIN_SESSION_TIMEOUT;
use crate::sys;

/// A byte stream to a client that can bound how long a read or write waits.
pub trait Transport: Read + Write {
    /// Every later read or write fails with `TimedOut` or `WouldBlock`
    /// after waiting this long.
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// Sessions run on a boxed transport, so the session code (and rustls'
/// stream code under it) exists once in the binary, not once per transport.
pub type Boxed = Box<dyn Transport + Send>;

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).set_timeout(timeout)
    }
}

impl Transport for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// The socket pair from the pre-login process's relay (inetd mode with
/// system accounts).
impl Transport for std::os::unix::net::UnixStream {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// stdin for reading and stdout for writing: a socket from inetd, xinetd,
/// tcpserver or systemd, or two pipes. Both are made non-blocking and every
/// read or write waits in poll(2) with the timeout, so a client that stops
/// reading cannot hold the session (and its maildrop) forever.
pub struct Stdio {
    timeout: Duration,
}

impl Stdio {
    pub fn new() -> io::Result<Stdio> {
        sys::set_nonblocking(0)?;
        sys::set_nonblocking(1)?;
        Ok(Stdio { timeout: MIN_SESSION_TIMEOUT })
    }
}

/// Retries `op` on `fd` until it makes progress, waiting at most the
/// timeout each time it would block.
fn wait_for(
    fd: i32,
    events: libc::c_short,
    timeout: Duration,
    mut op: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    loop {
        sys::poll(fd, events, timeout)?;
        match op() {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            result => return result,
        }
    }
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait_for(0, libc::POLLIN, self.timeout, || sys::read(0, buf))
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        wait_for(1, libc::POLLOUT, self.timeout, || sys::write(1, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Stdio {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}
