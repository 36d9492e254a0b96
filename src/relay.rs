//! The pre-login process's last job in inetd mode with system accounts: relaying between the client (plain or TLS) and the session that went on as the user.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::conn::Relayed;
use crate::limits::READ_BUFFER;
use crate::session::HandOver;
use crate::sys::process;

/// The relay's end of the socket pair to the user's session, and the
/// descriptor the client's bytes arrive on (0 from inetd).
pub struct Relay {
    pub session: UnixStream,
    pub client_fd: i32,
    /// How long a write to the client may wait (the session's own timeout
    /// bounds everything else).
    pub timeout: Duration,
}

impl HandOver for Relay {
    fn relay(&self, conn: &mut dyn Relayed, pending: &[u8]) -> io::Result<()> {
        conn.set_timeout(self.timeout)?;
        let mut session = &self.session;
        session.write_all(pending)?;
        let mut buf = vec![0u8; READ_BUFFER.max(16 * 1024)];
        loop {
            // Plaintext TLS already decrypted wakes no poll: pass it on first.
            while conn.buffered() {
                match conn.read(&mut buf)? {
                    0 => return Ok(()),
                    n => session.write_all(&buf[..n])?,
                }
            }
            let (client, user) = process::poll_either(self.client_fd, self.session.as_raw_fd())?;
            if user {
                match session.read(&mut buf)? {
                    // The session ended (after QUIT, a timeout...): so does the client's connection.
                    0 => return Ok(()),
                    n => {
                        conn.write_all(&buf[..n])?;
                        conn.flush()?;
                    }
                }
            }
            if client {
                match conn.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => session.write_all(&buf[..n])?,
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}
