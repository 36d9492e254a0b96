//! inetd mode with system accounts: the pre-login process relays between the client and the user's session.
//!
//! This is that process's last job; the client may be in plaintext or TLS.
//!
//! One thread, poll(2) on both sides. What the client sends is buffered (up
//! to `RELAY_BUFFER`) and written to the session only as fast as it reads,
//! so a client that pipelines without reading cannot wedge the two
//! processes; when the client has sent everything (EOF, or half-close), the
//! session hears EOF too and its answers still reach the client, until the
//! session ends.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::conn::Relayed;
use crate::limits::{READ_BUFFER, RELAY_BUFFER};
use crate::session::HandOver;
use crate::sys::process;

/// The relay's end of the socket pair to the user's session, and the
/// descriptor the client's bytes arrive on (0 from inetd).
pub struct Relay {
    pub session: UnixStream,
    pub client_fd: i32,
    /// How long a write to the client may wait, and how long the relay waits
    /// with neither side doing anything (the session's own timeout, which
    /// ends the session first).
    pub timeout: Duration,
}

impl HandOver for Relay {
    fn relay(&self, conn: &mut dyn Relayed, pending: &[u8]) -> io::Result<()> {
        conn.set_timeout(self.timeout)?;
        self.session.set_nonblocking(true)?;
        let mut session = &self.session;
        let mut to_session = pending.to_vec();
        let (mut client_done, mut shut) = (false, false);
        let mut buf = vec![0u8; READ_BUFFER.max(16 * 1024)];
        loop {
            // Plaintext TLS already decrypted wakes no poll: take it first.
            while !client_done && to_session.len() < RELAY_BUFFER && conn.buffered() {
                client_done |= take(conn, &mut buf, &mut to_session)?;
            }
            let want_client = if client_done || to_session.len() >= RELAY_BUFFER { 0 } else { libc::POLLIN };
            let want_session = libc::POLLIN | if to_session.is_empty() { 0 } else { libc::POLLOUT };
            let [client, user] =
                process::poll_each([(self.client_fd, want_client), (session.as_raw_fd(), want_session)], self.timeout)?;
            if user & (libc::POLLOUT | libc::POLLERR) != 0 && !to_session.is_empty() {
                match session.write(&to_session) {
                    Ok(n) => drop(to_session.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The session is gone; its last words are read below.
                    Err(_) => to_session.clear(),
                }
            }
            if user & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                match session.read(&mut buf) {
                    // The session ended (QUIT, a timeout...): so does the client's connection.
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        conn.write_all(&buf[..n])?;
                        conn.flush()?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            if want_client != 0 && client != 0 {
                client_done |= take(conn, &mut buf, &mut to_session)?;
            }
            if client_done && to_session.is_empty() && !shut {
                // Everything the client sent was passed on: the session reads EOF
                // after it, answers, and ends.
                let _ = self.session.shutdown(Shutdown::Write);
                shut = true;
            }
        }
    }
}

/// Reads what the client sent into `to_session`; true at its EOF.
fn take(conn: &mut dyn Relayed, buf: &mut [u8], to_session: &mut Vec<u8>) -> io::Result<bool> {
    match conn.read(buf) {
        Ok(0) => Ok(true),
        Ok(n) => {
            to_session.extend_from_slice(&buf[..n]);
            Ok(false)
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
        Err(e) => Err(e),
    }
}
