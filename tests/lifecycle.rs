//! The daemon's life: PR_SET_NO_NEW_PRIVS after dropping root, SIGTERM (stop accepting, let logged-in sessions finish within the grace period, never cut an UPDATE), SIGHUP with a broken config.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{from_line, Daemon, Spool};

fn two_messages() -> Vec<u8> {
    format!("{}Subject: 1\n\none\n\n{}Subject: 2\n\ntwo\n", from_line("a@x"), from_line("b@x")).into_bytes()
}

#[test]
fn no_new_privileges_can_be_gained() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    // "listening on" comes before root is given up; a greeting comes after.
    assert!(d.connect().line().starts_with("+OK"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]), "{status}");
}

#[test]
fn sigterm_lets_a_logged_in_session_finish_its_update_and_refuses_new_ones() {
    let spool = Spool::new();
    spool.write_mbox("alice", &two_messages());
    let mut d = Daemon::start(&spool, &["shutdown_grace = 20"]);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2"));
    let mut waiting = d.connect();
    assert!(waiting.line().starts_with("+OK"));
    d.signal(libc::SIGTERM);
    d.wait_log("SIGTERM: no longer accepting; 1 sessions logged in");
    // Not logged in: closed at once. New connections: refused.
    assert!(waiting.rest().is_empty());
    assert!(TcpStream::connect(d.addr).is_err(), "still accepting");
    // The logged-in session goes on to its end, UPDATE included.
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK bye, 1 messages deleted"));
    let status = d.wait_exit();
    assert!(status.success(), "{status:?}");
    assert_eq!(spool.read_mbox("alice"), format!("{}Subject: 2\n\ntwo\n", from_line("b@x")).into_bytes());
}

#[test]
fn sigterm_ends_idle_sessions_after_the_grace_period_without_deleting() {
    let spool = Spool::new();
    spool.write_mbox("alice", &two_messages());
    let mut d = Daemon::start(&spool, &["shutdown_grace = 1"]);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert!(status.success(), "{status:?}");
    // Ended by the grace period (its log line), and not before it (wait_exit's hang guard bounds the rest).
    assert!(signalled.elapsed() >= Duration::from_secs(1), "{:?}", signalled.elapsed());
    // The log is read by a thread of the test: its last lines may come in after the exit.
    d.wait_log("1 sessions cut off after the grace period");
    assert_eq!(spool.read_mbox("alice"), two_messages(), "no QUIT, nothing deleted");
    assert!(c.rest().is_empty());
}
