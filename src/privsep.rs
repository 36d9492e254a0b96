//! Privilege separation for system accounts: the root helper that only checks credentials, and its requests.
//!
//! This file also has its bounded request format and the sessions' side of it.
//!
//! The helper is reached over a SOCK_SEQPACKET pair. A request is `C`, a
//! 4-octet sequence number, one octet of name length, the name and the
//! password (at most `HELPER_MESSAGE` octets in all). The answer echoes the
//! sequence number after its kind: `Y` with the account's uid, gid (4 octets
//! each, big-endian) and home directory, `N` (no), `T` (the account files
//! cannot be read now) or `E` (a malformed request); a session takes only
//! the answer to its own request. Each check runs in a child forked for it,
//! which reads passwd and shadow, hashes and exits: no hash ever stays in
//! the helper's memory, which in inetd mode goes on to become the user's
//! session. Failed checks beyond a burst are spaced out, per name and in
//! all (`spacing`), whatever the session process asks.

mod spacing;

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::accounts::{self, Account, Files, Refusal};
use crate::limits::{HELPER_MESSAGE, HELPER_TIMEOUT, MAX_USER_NAME, PAUSE_STEP};
use crate::sys::process::{self, Forked};

/// A decoded request: its sequence number, a user name and a password.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    seq: u32,
    name: &'a str,
    password: &'a [u8],
}

fn encode_request(seq: u32, name: &str, password: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(name.len()).ok().filter(|n| (*n as usize) <= MAX_USER_NAME)?;
    let mut m = vec![b'C'];
    m.extend_from_slice(&seq.to_be_bytes());
    m.push(len);
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(password);
    (m.len() <= HELPER_MESSAGE).then_some(m)
}

/// The sequence number of a request, however malformed, if it has one.
fn sequence(m: &[u8]) -> u32 {
    m.get(1..5).and_then(|s| s.try_into().ok()).map_or(0, u32::from_be_bytes)
}

/// Parses a request; None for anything malformed (wrong kind, lengths that
/// do not add up, an invalid name).
fn decode_request(m: &[u8]) -> Option<Request<'_>> {
    let (&kind, rest) = m.split_first()?;
    let (&len, rest) = rest.get(4..)?.split_first()?;
    if kind != b'C' || rest.len() < len as usize {
        return None;
    }
    let (name, password) = rest.split_at(len as usize);
    let name = std::str::from_utf8(name).ok().filter(|n| crate::users::valid_name(n))?;
    Some(Request { seq: sequence(m), name, password })
}

/// The helper's answer, as the session sees it.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Yes(Account),
    /// No, and why (a `Refusal`'s code), for the session's log line.
    No(u8),
    Unavailable,
    Malformed,
}

fn encode_answer(seq: u32, a: &Answer) -> Vec<u8> {
    let kind = match a {
        Answer::Yes(_) => b'Y',
        Answer::No(_) => b'N',
        Answer::Unavailable => b'T',
        Answer::Malformed => b'E',
    };
    let mut m = vec![kind];
    m.extend_from_slice(&seq.to_be_bytes());
    match a {
        Answer::Yes(acc) => {
            m.extend_from_slice(&acc.uid.to_be_bytes());
            m.extend_from_slice(&acc.gid.to_be_bytes());
            m.extend_from_slice(acc.home.as_bytes());
        }
        Answer::No(why) => m.push(*why),
        _ => {}
    }
    m
}

fn decode_answer(m: &[u8]) -> Option<(u32, Answer)> {
    let (&kind, rest) = m.split_first()?;
    let seq = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let rest = &rest[4..];
    let answer = match (kind, rest.len()) {
        (b'Y', 8..) => {
            let (ids, home) = rest.split_at(8);
            let home = String::from_utf8(home.to_vec()).ok()?;
            let uid = u32::from_be_bytes(ids[..4].try_into().ok()?);
            let gid = u32::from_be_bytes(ids[4..].try_into().ok()?);
            Answer::Yes(Account { uid, gid, home })
        }
        (b'N', 1) => Answer::No(rest[0]),
        (b'T', 0) => Answer::Unavailable,
        (b'E', 0) => Answer::Malformed,
        _ => return None,
    };
    Some((seq, answer))
}

/// A successful check of inetd mode's helper: who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub name: String,
    pub account: Account,
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

/// The helper's loop on `sock`. Returns the login of a
/// successful check when `serving` is `OneSession`; None when the session
/// side is gone, sent a malformed request (inetd), or used up its checks.
/// The requests' buffer (passwords) is zeroed before it returns.
pub fn serve(sock: &OwnedFd, files: &Files, serving: Serving) -> Option<Login> {
    let mut buf = vec![0u8; HELPER_MESSAGE];
    let login = serve_in(sock, files, serving, &mut buf);
    buf.fill(0);
    std::hint::black_box(&buf);
    login
}

fn serve_in(sock: &OwnedFd, files: &Files, serving: Serving, buf: &mut [u8]) -> Option<Login> {
    let mut spacing = spacing::Spacing::default();
    let mut checks = 0u32;
    loop {
        if let Serving::OneSession { until, .. } = serving {
            // A child that neither logs in nor ends does not keep a root process.
            let left = until.saturating_duration_since(Instant::now());
            if crate::sys::poll(sock.as_raw_fd(), libc::POLLIN, left).is_err() {
                return None;
            }
        }
        let n = match process::receive_message(sock.as_fd(), buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => 0,
            Err(e) => {
                log::error!("credentials helper: cannot read a request: {e}");
                return None;
            }
        };
        checks += 1;
        let (seq, answer) = match decode_request(&buf[..n]) {
            None => {
                if crate::loglimit::allow(None) {
                    log::warn!("credentials helper: malformed request ({n} octets) refused");
                }
                (sequence(&buf[..n]), Answer::Malformed)
            }
            Some(req) => {
                spacing.wait(req.name);
                let answer = check_in_child(files, req.name, req.password);
                if !matches!(answer, Answer::Yes(_)) {
                    spacing.failed(req.name);
                }
                if let (Answer::Yes(account), Serving::OneSession { .. }) = (&answer, serving) {
                    let _ = process::send_message(sock.as_fd(), &encode_answer(req.seq, &answer));
                    return Some(Login { name: req.name.to_string(), account: account.clone() });
                }
                (req.seq, answer)
            }
        };
        let malformed = answer == Answer::Malformed;
        if process::send_message(sock.as_fd(), &encode_answer(seq, &answer)).is_err() {
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
/// hashes, writes its verdict and exits; the refusal's reason is logged
/// here, under this process's log budget.
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
            let verdict = match accounts::check(files, name, password, accounts::today()) {
                Ok(Ok(account)) => encode_answer(0, &Answer::Yes(account)),
                Ok(Err(refusal)) => vec![b'N', refusal as u8],
                Err(e) => format!("T{e}").into_bytes(),
            };
            let ok = child_end.write_all(&verdict).is_ok();
            process::exit_now(if ok { 0 } else { 1 })
        }
        Ok(Forked::Parent(pid)) => {
            drop(child_end);
            let mut verdict = Vec::new();
            let read = parent_end.read_to_end(&mut verdict);
            let exited = process::wait(pid);
            match (read, exited, verdict.split_first()) {
                (Ok(_), true, Some((b'Y', _))) => decode_answer(&verdict).map_or(Answer::Unavailable, |(_, a)| a),
                (Ok(_), true, Some((b'N', &[reason]))) => {
                    let refusal = Refusal::from_code(reason);
                    let told = !matches!(refusal, Some(Refusal::WrongPassword | Refusal::Unknown));
                    if told && crate::loglimit::allow(None) {
                        log::info!("system account {name} cannot log in: {}", Refusal::describe(refusal));
                    }
                    Answer::No(reason)
                }
                (Ok(_), true, Some((b'T', why))) => {
                    if crate::loglimit::allow(None) {
                        let (p, s) = (files.passwd.display(), files.shadow.display());
                        log::error!("cannot read {p} or {s}: {}", String::from_utf8_lossy(why));
                    }
                    Answer::Unavailable
                }
                _ => Answer::Unavailable,
            }
        }
    }
}

/// The sessions' side: one request at a time over the helper's socket, in
/// the order the sessions asked (a queue of tickets); a wait ends as soon as
/// its session is closed.
pub struct Helper {
    sock: OwnedFd,
    queue: Mutex<Queue>,
    /// Signalled when the turn passes on.
    free: Condvar,
    /// The daemon stops when its helper is gone (its supervisor restarts
    /// both); an inetd session just fails its logins.
    stop_when_gone: bool,
    gone: AtomicBool,
}

/// Who is asking the helper, and who is next.
#[derive(Default)]
struct Queue {
    /// The last request's sequence number (answers name it).
    seq: u32,
    /// The next ticket to hand out, and the ticket whose turn it is.
    next: u64,
    serving: u64,
    /// Tickets whose sessions stopped waiting before their turn came.
    abandoned: std::collections::BTreeSet<u64>,
}

impl Queue {
    /// The turn passes to the next ticket still waiting.
    fn pass(&mut self) {
        self.serving += 1;
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
    }
}

/// A request's turn, passed on when dropped.
struct Turn<'a>(&'a Helper);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.queue.lock().unwrap_or_else(|e| e.into_inner()).pass();
        self.0.free.notify_all();
    }
}

impl Helper {
    pub fn new(sock: OwnedFd, stop_when_gone: bool) -> Helper {
        Helper { sock, queue: Mutex::default(), free: Condvar::new(), stop_when_gone, gone: AtomicBool::new(false) }
    }

    /// Checks `name`'s `password`: the account when right, why not when not
    /// (for the log: a wrong password, an unknown user, a locked account...),
    /// Err when the helper cannot answer, or (`Interrupted`) when `cancelled`
    /// turned true while this waited.
    pub fn check(
        &self,
        name: &str,
        password: &[u8],
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<Result<Account, &'static str>> {
        let stopped = || io::Error::new(io::ErrorKind::Interrupted, "session closed while waiting for the helper");
        let seq = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let ticket = queue.next;
            queue.next += 1;
            while queue.serving != ticket {
                if cancelled() {
                    queue.abandoned.insert(ticket);
                    return Err(stopped());
                }
                queue = self.free.wait_timeout(queue, PAUSE_STEP).unwrap_or_else(|e| e.into_inner()).0;
            }
            queue.seq = queue.seq.wrapping_add(1);
            queue.seq
        };
        let _turn = Turn(self);
        let Some(request) = encode_request(seq, name, password) else {
            return Ok(Err("invalid user name"));
        };
        process::send_message(self.sock.as_fd(), &request).map_err(|e| self.lost(e))?;
        let deadline = Instant::now() + HELPER_TIMEOUT;
        let mut buf = vec![0u8; HELPER_MESSAGE];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match crate::sys::poll(self.sock.as_raw_fd(), libc::POLLIN, left.min(PAUSE_STEP)) {
                // Its answer, when it comes, is skipped by the next request (another number).
                Err(_) if cancelled() => return Err(stopped()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut && !left.is_zero() => continue,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            let n = process::receive_message(self.sock.as_fd(), &mut buf)?;
            if n == 0 {
                return Err(self.lost(io::Error::from(io::ErrorKind::UnexpectedEof)));
            }
            // An answer to an earlier request whose session stopped waiting: not ours.
            match decode_answer(&buf[..n]) {
                Some((s, _)) if s != seq => continue,
                Some((_, Answer::Yes(account))) => return Ok(Ok(account)),
                Some((_, Answer::No(why))) => return Ok(Err(Refusal::describe(Refusal::from_code(why)))),
                _ => return Err(io::Error::other("the credentials helper cannot check now")),
            }
        }
    }

    /// The helper is gone: said once, and the daemon stops (SIGTERM to
    /// itself: sessions in UPDATE finish first) for its supervisor to
    /// restart it with a new helper.
    fn lost(&self, e: io::Error) -> io::Error {
        if !self.gone.swap(true, Ordering::SeqCst) {
            log::error!("the credentials helper is gone ({e}): no system account can log in");
            if self.stop_when_gone {
                log::error!("stopping, for the supervisor to restart pop3d and its helper");
                process::terminate_self();
            }
        }
        io::Error::other("the credentials helper is gone")
    }
}

#[cfg(test)]
mod tests;
