//! Privilege separation for system accounts: the root helper that only checks credentials, its bounded request format, and the sessions' side of it.
//!
//! The helper is reached over a SOCK_SEQPACKET pair. A request is
//! `C`, one octet of name length, the name and the password (at most
//! `HELPER_MESSAGE` octets in all); the answer is `Y` with the account's uid,
//! gid (4 octets each, big-endian) and home directory, `N` (no), `T` (the
//! account files cannot be read now) or `E` (a malformed request). Each
//! check runs in a child forked for it, which reads passwd and shadow,
//! hashes and exits: no hash ever stays in the helper's memory, which in
//! inetd mode goes on to become the user's session. Failed checks beyond
//! a burst are spaced out, whatever the session process asks.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Instant;

use crate::accounts::{self, Account, Files, Refusal};
use crate::limits::{HELPER_FAILURE_BURST, HELPER_FAILURE_SPACING, HELPER_MESSAGE, HELPER_TIMEOUT, MAX_USER_NAME};
use crate::sys::process::{self, Forked};

/// A decoded request: a user name and a password.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    name: &'a str,
    password: &'a [u8],
}

fn encode_request(name: &str, password: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(name.len()).ok().filter(|n| (*n as usize) <= MAX_USER_NAME)?;
    let mut m = vec![b'C', len];
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(password);
    (m.len() <= HELPER_MESSAGE).then_some(m)
}

/// Parses a request; None for anything malformed (wrong kind, lengths that
/// do not add up, an invalid name).
fn decode_request(m: &[u8]) -> Option<Request<'_>> {
    let (&kind, rest) = m.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if kind != b'C' || rest.len() < len as usize {
        return None;
    }
    let (name, password) = rest.split_at(len as usize);
    let name = std::str::from_utf8(name).ok().filter(|n| crate::users::valid_name(n))?;
    Some(Request { name, password })
}

/// The helper's answer, as the session sees it.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Yes(Account),
    No,
    Unavailable,
    Malformed,
}

fn encode_answer(a: &Answer) -> Vec<u8> {
    match a {
        Answer::Yes(acc) => {
            let mut m = vec![b'Y'];
            m.extend_from_slice(&acc.uid.to_be_bytes());
            m.extend_from_slice(&acc.gid.to_be_bytes());
            m.extend_from_slice(acc.home.as_bytes());
            m
        }
        Answer::No => vec![b'N'],
        Answer::Unavailable => vec![b'T'],
        Answer::Malformed => vec![b'E'],
    }
}

fn decode_answer(m: &[u8]) -> Option<Answer> {
    match m {
        [b'Y', uid @ ..] if uid.len() >= 8 => {
            let (ids, home) = uid.split_at(8);
            let home = String::from_utf8(home.to_vec()).ok()?;
            let uid = u32::from_be_bytes(ids[..4].try_into().ok()?);
            let gid = u32::from_be_bytes(ids[4..].try_into().ok()?);
            Some(Answer::Yes(Account { uid, gid, home }))
        }
        [b'N'] => Some(Answer::No),
        [b'T'] => Some(Answer::Unavailable),
        [b'E'] => Some(Answer::Malformed),
        _ => None,
    }
}

/// How long a helper serves, and what it does after a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// The daemon's helper: every session's checks until the daemon is gone.
    Daemon,
    /// inetd mode: at most this many checks of one session, until the
    /// session's pre-login deadline; the first that succeeds ends the
    /// helper's service (its caller becomes the user).
    OneSession { checks: u32, until: Instant },
}

/// The helper's loop on `sock`. Returns the user name and account of a
/// successful check when `serving` is `OneSession`; None when the session
/// side is gone, sent a malformed request (inetd), or used up its checks.
pub fn serve(sock: &OwnedFd, files: &Files, serving: Serving) -> Option<(String, Account)> {
    let mut spacing = Spacing::default();
    let mut checks = 0u32;
    let mut buf = vec![0u8; HELPER_MESSAGE];
    loop {
        if let Serving::OneSession { until, .. } = serving {
            // A child that neither logs in nor ends does not keep a root process.
            let left = until.saturating_duration_since(Instant::now());
            if crate::sys::poll(sock.as_raw_fd(), libc::POLLIN, left).is_err() {
                return None;
            }
        }
        let n = match process::receive_message(sock.as_fd(), &mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => 0,
            Err(e) => {
                log::error!("credentials helper: cannot read a request: {e}");
                return None;
            }
        };
        checks += 1;
        let answer = match decode_request(&buf[..n]) {
            None => {
                log::warn!("credentials helper: malformed request ({n} octets) refused");
                spacing.failed();
                Answer::Malformed
            }
            Some(req) => {
                spacing.wait();
                let answer = check_in_child(files, req.name, req.password);
                if !matches!(answer, Answer::Yes(_)) {
                    spacing.failed();
                }
                if let (Answer::Yes(account), Serving::OneSession { .. }) = (&answer, serving) {
                    let _ = process::send_message(sock.as_fd(), &encode_answer(&answer));
                    return Some((req.name.to_string(), account.clone()));
                }
                answer
            }
        };
        let malformed = answer == Answer::Malformed;
        if process::send_message(sock.as_fd(), &encode_answer(&answer)).is_err() {
            return None;
        }
        if let Serving::OneSession { checks: most, .. } = serving {
            if malformed || checks >= most {
                return None;
            }
        }
    }
}

/// Runs one check in a child process, which reads the account files,
/// hashes, writes the answer and exits.
fn check_in_child(files: &Files, name: &str, password: &[u8]) -> Answer {
    let Ok((mut parent_end, mut child_end)) = UnixStream::pair() else {
        return Answer::Unavailable;
    };
    match process::fork() {
        Err(e) => {
            log::error!("credentials helper: cannot fork a check: {e}");
            Answer::Unavailable
        }
        Ok(Forked::Child) => {
            drop(parent_end);
            let answer = match accounts::check(files, name, password, accounts::today()) {
                Ok(Ok(account)) => Answer::Yes(account),
                Ok(Err(refusal)) => {
                    if !matches!(refusal, Refusal::WrongPassword | Refusal::Unknown) && crate::loglimit::allow(None) {
                        log::info!("system account {name} cannot log in: {refusal:?}");
                    }
                    Answer::No
                }
                Err(e) => {
                    log::error!("cannot read {} or {}: {e}", files.passwd.display(), files.shadow.display());
                    Answer::Unavailable
                }
            };
            let ok = child_end.write_all(&encode_answer(&answer)).is_ok();
            process::exit_now(if ok { 0 } else { 1 })
        }
        Ok(Forked::Parent(pid)) => {
            drop(child_end);
            let mut reply = Vec::new();
            let read = parent_end.read_to_end(&mut reply);
            let exited = process::wait(pid);
            match (read, exited) {
                (Ok(_), true) => decode_answer(&reply).unwrap_or(Answer::Unavailable),
                _ => Answer::Unavailable,
            }
        }
    }
}

/// Failed checks beyond a burst come no closer than `HELPER_FAILURE_SPACING`.
#[derive(Default)]
struct Spacing {
    failures: u32,
    last: Option<Instant>,
}

impl Spacing {
    fn wait(&self) {
        if let (true, Some(last)) = (self.failures >= HELPER_FAILURE_BURST, self.last) {
            std::thread::sleep((last + HELPER_FAILURE_SPACING).saturating_duration_since(Instant::now()));
        }
    }

    fn failed(&mut self) {
        // A quiet spell gives the burst back.
        if self.last.is_some_and(|l| l.elapsed() > HELPER_FAILURE_SPACING * HELPER_FAILURE_BURST) {
            self.failures = 0;
        }
        self.failures += 1;
        self.last = Some(Instant::now());
    }
}

/// The sessions' side: one request at a time over the helper's socket.
pub struct Helper {
    sock: Mutex<OwnedFd>,
}

impl Helper {
    pub fn new(sock: OwnedFd) -> Helper {
        Helper { sock: Mutex::new(sock) }
    }

    /// Checks `name`'s `password`: the account when right, None when not
    /// (unknown users included), Err when the helper cannot answer.
    pub fn check(&self, name: &str, password: &[u8]) -> io::Result<Option<Account>> {
        let Some(request) = encode_request(name, password) else {
            return Ok(None);
        };
        let sock = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        process::send_message(sock.as_fd(), &request)?;
        crate::sys::poll(sock.as_raw_fd(), libc::POLLIN, HELPER_TIMEOUT)?;
        let mut buf = vec![0u8; HELPER_MESSAGE];
        let n = process::receive_message(sock.as_fd(), &mut buf)?;
        match decode_answer(&buf[..n]) {
            Some(Answer::Yes(account)) => Ok(Some(account)),
            Some(Answer::No) => Ok(None),
            _ if n == 0 => Err(io::Error::other("the credentials helper is gone")),
            _ => Err(io::Error::other("the credentials helper cannot check now")),
        }
    }
}

#[cfg(test)]
mod tests;
