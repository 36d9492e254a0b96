//! Processes for privilege separation: fork, wait, a socket pair, an account's ids, directories for it.
//!
//! A SOCK_SEQPACKET pair, switching to an account's ids, and directories
//! made by root for an account.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use std::time::{Duration, Instant};

use super::check;
use crate::limits::{CHILD_LOOK, REAP_GRACE};

/// Which side of a `fork` this is.
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2). Call it only while the process has one thread: the child gets
/// a copy of this thread alone, and any lock another thread held would
/// stay locked in it for good.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork takes no arguments; the caller keeps to one thread.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// How a child that was waited for ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited; true with status 0.
    Exited(bool),
    /// Still running (or stopped) at the deadline; not reaped.
    Running,
}

/// Waits for child `pid` to end, until `deadline` at the latest (it is
/// looked at every `CHILD_LOOK`, and once at the deadline).
pub fn wait_until(pid: libc::pid_t, deadline: Instant) -> Ended {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into an int we own.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Ended::Exited(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // ECHILD: not ours, or reaped already.
            return Ended::Exited(false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && rc == 0 {
            return Ended::Running;
        }
        std::thread::sleep(left.min(CHILD_LOOK));
    }
}

/// Ends child `pid` by `deadline`: waits for it until then, then SIGKILL
/// (which also ends a stopped child) and reaps it, waiting at most
/// `REAP_GRACE` more. True if it exited by itself with status 0. A child
/// this process may not signal (another uid's) is left to init.
pub fn end_child(pid: libc::pid_t, deadline: Instant) -> bool {
    match wait_until(pid, deadline) {
        Ended::Exited(ok) => ok,
        Ended::Running => {
            // SAFETY: kill with a pid and a valid signal; no pointers.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                wait_until(pid, Instant::now() + REAP_GRACE);
            }
            false
        }
    }
}

/// Waits for child `pid` to end, however long it takes; true if it exited
/// with status 0. Only for children that end by themselves (a check's).
pub fn wait(pid: libc::pid_t) -> bool {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into an int we own.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Ends this process at once with `code`, running no destructors and no
/// atexit handlers (a forked child must not flush or remove what its parent owns).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an int and never returns.
    unsafe { libc::_exit(code) }
}

/// A connected pair of SOCK_SEQPACKET Unix sockets: every write arrives as
/// one message, whole, and a read returns at most one.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: two fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message on a SOCK_SEQPACKET socket.
pub fn send_message(fd: BorrowedFd<'_>, message: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: a buffer we own, of its length; MSG_NOSIGNAL: EPIPE, not SIGPIPE.
        let rc = unsafe { libc::send(fd.as_raw_fd(), message.as_ptr().cast(), message.len(), libc::MSG_NOSIGNAL) };
        match check(rc as libc::c_int) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Receives one message into `buf`: its length, 0 when the other side is
/// gone. A message longer than `buf` is an `InvalidData` error (its tail
/// would otherwise be cut off unnoticed).
pub fn receive_message(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: a buffer we own, of its length. MSG_TRUNC: the real length is returned.
        let rc = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
        match check(rc as libc::c_int) {
            Ok(n) if n as usize > buf.len() => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "message too long"))
            }
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Switches the whole process to `uid` and `gid` (no supplementary groups)
/// for good, and checks that root cannot be regained.
pub fn switch_to(uid: u32, gid: u32) -> Result<(), String> {
    // SAFETY: setgroups reads one gid from a valid pointer; setgid/setuid take no pointers.
    unsafe {
        check(libc::setgroups(1, &gid)).map_err(|e| format!("setgroups: {e}"))?;
        check(libc::setgid(gid)).map_err(|e| format!("setgid: {e}"))?;
        check(libc::setuid(uid)).map_err(|e| format!("setuid: {e}"))?;
        if uid != 0 && libc::setuid(0) == 0 {
            return Err("could regain root after dropping privileges".into());
        }
    }
    Ok(())
}

/// Opens directory `name` in `dir`, making it first if missing, and gives
/// it to `uid`:`gid` with `mode`; no link is followed. Used by root for
/// directories only that account may write.
pub fn own_dir_at(dir: BorrowedFd<'_>, name: &str, uid: u32, gid: u32, mode: u32) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated name relative to a directory we hold open.
    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o700) }) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let fd = super::open_dir_at(dir, std::ffi::OsStr::new(name))?;
    // SAFETY: fchown/fchmod on a descriptor we hold; no pointers.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(fd)
}

/// Waits until one of `fds` is ready for its events (POLLIN/POLLOUT; 0
/// asks for nothing), or `TimedOut` once `timeout` has passed with none;
/// what each is ready for (POLLHUP and POLLERR included).
pub fn poll_each<const N: usize>(
    fds: [(RawFd, libc::c_short); N],
    timeout: Duration,
) -> io::Result<[libc::c_short; N]> {
    let mut set = fds.map(|(fd, events)| libc::pollfd { fd, events, revents: 0 });
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // SAFETY: poll reads and writes the N pollfd structs we own.
        match check(unsafe { libc::poll(set.as_mut_ptr(), N as libc::nfds_t, super::poll_millis(left)) }) {
            Ok(0) if left.is_some_and(|l| l.is_zero()) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(0) => {}
            Ok(_) => return Ok(set.map(|p| p.revents)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null: the inetd helper lets go
/// of the client's connection (all three under classic inetd), which only
/// its child serves.
pub fn release_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in [0, 1, 2] {
        // SAFETY: dup2 between two descriptors this process holds.
        check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// Sends SIGTERM to this process (the daemon's orderly stop).
pub fn terminate_self() {
    // SAFETY: kill with this process's own pid and a valid signal.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
}

/// Ignores SIGHUP and SIGINT for good (the daemon's helper: `killall -HUP
/// pop3d` reloads the daemon and must not end its helper).
pub fn ignore_hangups() {
    // SAFETY: SIG_IGN for two valid signals.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Ends process `pid` at once (SIGKILL).
pub fn kill(pid: libc::pid_t) {
    // SAFETY: kill with a pid and a valid signal; no pointers.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Stops this process (SIGSTOP), as a wedged or compromised child might be:
/// for tests of the waits that must end it anyway.
#[cfg(test)]
pub fn stop_self() {
    // SAFETY: raise with a valid signal; no pointers.
    unsafe { libc::raise(libc::SIGSTOP) };
}
