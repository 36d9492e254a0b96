//! The two ways a session's bytes arrive: an accepted TCP socket (daemon) or stdin/stdout (inetd mode).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::session::Transport;
use crate::sys;

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

/// stdin for reading and stdout for writing: a socket from inetd, xinetd,
/// tcpserver or systemd, or two pipes. Timeouts use poll(2), which works
/// for both.
pub struct Stdio {
    timeout: Duration,
}

impl Stdio {
    pub fn new() -> Stdio {
        Stdio { timeout: Duration::from_secs(600) }
    }
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::poll(0, libc::POLLIN, self.timeout)?;
        sys::read(0, buf)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::poll(1, libc::POLLOUT, self.timeout)?;
        sys::write(1, buf)
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
