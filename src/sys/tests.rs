//! Tests of the waits that bound the server's processes: poll never returns early, a late child is ended and reaped.

use super::process::{self, Ended, Forked};
use super::*;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A pipe nothing is ever written to: poll on its read end only times out.
fn silent_pipe() -> (std::os::unix::net::UnixStream, std::os::unix::net::UnixStream) {
    std::os::unix::net::UnixStream::pair().unwrap()
}

#[test]
fn poll_never_returns_before_its_timeout() {
    let (quiet, _other) = silent_pipe();
    // Sub-millisecond parts of every size: rounding them down returned early
    // (a 0.3 ms wait became poll(0), and a 1.7 ms one poll(1)).
    for i in 0..300u64 {
        let timeout = Duration::from_micros(100 + (i * 7919) % 2900);
        let started = Instant::now();
        let result = poll(quiet.as_raw_fd(), libc::POLLIN, timeout);
        let took = started.elapsed();
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(took >= timeout, "poll for {timeout:?} returned after {took:?}");
    }
}

extern "C" fn ignore(_: libc::c_int) {}

#[test]
fn poll_interrupted_by_signals_waits_only_what_is_left() {
    // SAFETY: a handler that does nothing, for a signal nothing else uses.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
    let (quiet, _other) = silent_pipe();
    let timeout = Duration::from_millis(200);
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let result = poll(quiet.as_raw_fd(), libc::POLLIN, timeout);
        finished.store(true, Ordering::SeqCst);
        (result.map_err(|e| e.kind()), started.elapsed())
    });
    // std's pthread handle is an integer; libc's pthread_t is one or a pointer, by target.
    let thread = std::os::unix::thread::JoinHandleExt::as_pthread_t(&poller) as usize as libc::pthread_t;
    // A signal every 5 ms until the poll returns (at most 10,000: the hang
    // guard). Restarting the whole timeout after each would never return
    // while they come; waiting what is left returns after about 40.
    let mut sent = 0;
    while !done.load(Ordering::SeqCst) && sent < 10_000 {
        // SAFETY: a signal to a thread that has not been joined yet.
        unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
        sent += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let (result, took) = poller.join().unwrap();
    assert!(sent < 10_000, "poll did not return while interrupted every 5 ms");
    assert_eq!(result, Err(io::ErrorKind::TimedOut));
    assert!(took >= timeout, "{took:?}");
}

#[test]
fn a_stopped_child_is_ended_at_its_deadline_and_reaped() {
    let child = match process::fork().unwrap() {
        Forked::Child => {
            process::stop_self();
            process::exit_now(0)
        }
        Forked::Parent(pid) => pid,
    };
    let deadline = Instant::now() + Duration::from_millis(200);
    assert!(!process::end_child(child, deadline), "a stopped child does not end by itself");
    assert!(Instant::now() >= deadline, "ended before its deadline");
    assert_eq!(process::wait_until(child, Instant::now()), Ended::Exited(false), "reaped: not a child any more");
    // SAFETY: kill with signal 0 only asks whether the pid exists.
    assert_eq!(unsafe { libc::kill(child, 0) }, -1, "the stopped child is gone");
}

#[test]
fn a_child_that_ends_by_itself_is_reaped_with_its_status() {
    for code in [0, 3] {
        let child = match process::fork().unwrap() {
            Forked::Child => process::exit_now(code),
            Forked::Parent(pid) => pid,
        };
        // The deadline is a hang guard here: the child exits at once.
        assert_eq!(process::end_child(child, Instant::now() + Duration::from_secs(60)), code == 0);
    }
}
