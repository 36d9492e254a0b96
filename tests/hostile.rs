//! Hostile and broken clients: overlong lines, NUL bytes, huge numbers, garbage, other protocols, vanishing mid-RETR.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{from_line, Client, Daemon, Spool, HANG_GUARD};

fn one_message() -> Vec<u8> {
    format!("{}Subject: x\n\nbody\n", from_line("a@x")).into_bytes()
}

#[test]
fn bad_lines_get_exactly_one_err_each_and_the_session_goes_on() {
    let spool = Spool::new();
    spool.write_mbox("alice", &one_message());
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    // A 10 KB line with a command hidden in it: one -ERR, nothing executed.
    let mut long = "A".repeat(5000);
    long.push_str("\rDELE 1\r");
    long.push_str(&"B".repeat(5000));
    long.push_str("\r\n");
    c.send(long.as_bytes());
    assert_eq!(c.line(), "-ERR line too long");
    c.send(b"STAT\0\r\n");
    assert_eq!(c.line(), "-ERR invalid characters in command");
    c.send(b"RETR 99999999999999999999999999\r\n");
    assert_eq!(c.line(), "-ERR invalid message number");
    c.send(b"\xff\xfe\x80garbage\r\n");
    assert_eq!(c.line(), "-ERR unknown command");
    c.send(b"\r\n");
    assert_eq!(c.line(), "-ERR unknown command");
    assert_eq!(c.cmd("STAT"), "+OK 1 20", "nothing was deleted");
    assert!(c.cmd("QUIT").starts_with("+OK bye, 0"));
    assert_eq!(spool.read_mbox("alice"), one_message());
}

#[test]
fn another_protocol_on_the_port_is_disconnected() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["max_bad_commands = 3"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    c.send(b"GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: x\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    let rest = String::from_utf8(c.rest()).unwrap();
    let errs = rest.lines().filter(|l| l.starts_with("-ERR")).count();
    // One reply per line: three errors, then the closing one answers the
    // fourth line; the rest is never read.
    assert_eq!(errs, 4, "3 errors, then the closing one: {rest}");
    assert_eq!(rest.lines().last(), Some("-ERR too many invalid commands, closing"), "{rest}");
}

#[test]
fn client_vanishing_mid_retr_or_before_quit_changes_nothing() {
    let spool = Spool::new();
    let big = format!("{}Subject: big\n\n{}\n\n", from_line("a@x"), "0123456789abcdef\n".repeat(400_000));
    let mbox = [big.as_bytes(), &one_message()].concat();
    spool.write_mbox("alice", &mbox);
    let d = Daemon::start(&spool, &[]);
    {
        let mut c = d.connect();
        assert!(c.login("alice", "secret").starts_with("+OK"));
        assert!(c.cmd("DELE 2").starts_with("+OK"));
        c.send(b"RETR 1\r\n");
        assert!(c.line().starts_with("+OK"));
        // Gone after reading a little of 7 MB.
    }
    d.wait_log("end=Disconnected");
    {
        let mut c = d.connect();
        assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2 messages"));
        assert!(c.cmd("DELE 1").starts_with("+OK"));
        // Gone before QUIT.
    }
    d.wait_log_times("end=Disconnected", 2);
    // The maildrop lock is free again and nothing was deleted.
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2 messages"));
    assert_eq!(spool.read_mbox("alice"), mbox);
}

/// A 64 KiB tmpfs mounted for one test, unmounted when dropped; None (the
/// test skipped) when not root.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
            .unwrap_or(false);
        if !root {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(mounted.success(), "mount a 64 KiB tmpfs");
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A first start on a full state_dir makes no SCRAM secret (in particular
/// no empty one); once there is room, the next process makes a whole one and
/// the ones after it keep it.
#[test]
fn the_scram_secret_on_a_full_then_freed_state_dir() {
    let spool = Spool::new();
    let Some(tmpfs) = Tmpfs::mount(&spool.dir.join("small-state")) else { return };
    let state = tmpfs.0.clone();
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    drop(f);
    let log = spool.dir.join("pop3d.log");
    let extra = [format!("state_dir = {}", state.display()), format!("log = {}", log.display())];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let quit = |extra: &[&str]| {
        let mut c = Client::inetd(&spool, extra);
        assert!(c.line().starts_with("+OK"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
    };
    quit(&extra);
    let secret = state.join("scram.secret");
    assert!(!secret.exists(), "no secret, and no empty one, on a full disk");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("scram.secret") && logged.contains("per process"), "{logged}");
    std::fs::remove_file(&filler).unwrap();
    quit(&extra);
    let made = std::fs::read(&secret).unwrap();
    assert_eq!(made.len(), 32);
    quit(&extra);
    assert_eq!(std::fs::read(&secret).unwrap(), made, "a good secret is kept");
    let names: Vec<_> = std::fs::read_dir(&state).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().contains(".new-")), "no temporary file left: {names:?}");
}

#[test]
fn login_timeout_closes_the_session() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["timeout_login = 1"]);
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("+OK"), "{all}");
    assert!(all.contains("-ERR autologout"), "{all}");
    d.wait_log("end=Timeout");
}

#[test]
fn session_limits_refuse_with_sys_temp() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["max_sessions = 2", "max_sessions_per_ip = 1"]);
    let mut first = d.connect();
    assert!(first.login("alice", "secret").starts_with("+OK"));
    // The address's one place is taken by a logged-in session: refused.
    let mut second = d.connect();
    assert_eq!(second.line(), "-ERR [SYS/TEMP] too many sessions, try again later");
    assert!(second.rest().is_empty());
    d.wait_log("session limit reached");
    assert!(first.cmd("QUIT").starts_with("+OK"));
    assert!(first.rest().is_empty());
    // The slot is released when the session ends.
    d.wait_log("session end");
    let mut third = d.connect();
    assert!(third.line().starts_with("+OK"));
    // A session that has not logged in makes way for a new one of the
    // same address instead of keeping it out.
    let mut fourth = d.connect();
    assert!(fourth.line().starts_with("+OK"));
    assert!(third.rest().is_empty(), "the older waiting session was closed");
    assert!(fourth.user_pass("alice", "secret").starts_with("+OK"));
}

#[test]
fn broken_or_oversized_mailboxes_get_sys_perm() {
    let spool = Spool::new();
    spool.write_mbox("alice", b"Subject: no From line\n\nbody\n");
    let many: String = (0..5).map(|i| format!("{}Subject: {i}\n\n{i}\n\n", from_line("a@x"))).collect();
    spool.write_mbox("bob", many.as_bytes());
    let d = Daemon::start(&spool, &["max_messages = 4"]);
    let reply = d.connect().login("alice", "secret");
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
    let reply = d.connect().login("bob", "secret");
    assert!(reply.starts_with("-ERR [SYS/PERM]") && reply.contains("more than 4 messages"), "{reply}");
    let log = d.wait_log("more than 4 messages");
    assert!(log.contains("does not start with a From line"));
}

#[test]
fn a_mailbox_locked_by_a_delivery_agent_gets_sys_temp() {
    let spool = Spool::new();
    spool.write_mbox("alice", &one_message());
    let lock = spool.dir.join("spool").join("alice.lock");
    std::fs::write(&lock, b"12345\n").unwrap();
    let d = Daemon::start(&spool, &["lock_timeout = 1"]);
    let reply = d.connect().login("alice", "secret");
    assert!(reply.starts_with("-ERR [SYS/TEMP]"), "{reply}");
    std::fs::remove_file(&lock).unwrap();
    assert!(d.connect().login("alice", "secret").starts_with("+OK maildrop has 1"));
}

#[test]
fn failed_logins_slow_down_the_next_ones_from_the_same_address() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    // Three failures from one address, in sessions of their own: each
    // attempt counts when it takes its slot, so the answers are spaced
    // 0.5 s, then 1 s (src/penalty.rs): the third comes 1.5 s after the
    // first at the earliest.
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert!(d.connect().login("alice", "wrong").starts_with("-ERR [AUTH]"));
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "{:?}", started.elapsed());
    d.wait_log("3 recent failures from this address");
    // A success does not clear the address's record (an attacker's own
    // account must not reset it): it only takes back its own attempt.
    assert!(d.connect().login("alice", "secret").starts_with("+OK"));
    assert!(d.connect().login("alice", "wrong").starts_with("-ERR [AUTH]"));
    d.wait_log("(4 recent failures from this address)");
}

/// A full disk during UPDATE: the journal cannot be written, so nothing is
/// deleted and the client is told; the mailbox is untouched. (Needs root to
/// mount a small tmpfs for state_dir; CI runs as root.)
#[test]
fn a_full_disk_during_update_deletes_nothing() {
    let spool = Spool::new();
    let Some(tmpfs) = Tmpfs::mount(&spool.dir.join("small-state")) else { return };
    let small = tmpfs.0.clone();
    let big = format!("{}Subject: big\n\n{}\n", from_line("b@x"), "0123456789abcdef\n".repeat(20_000));
    let mbox = [one_message().as_slice(), b"\n", big.as_bytes()].concat();
    spool.write_mbox("alice", &mbox);
    let state_line = format!("state_dir = {}", small.display());
    let d = Daemon::start(&spool, &[&state_line]);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2"));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let reply = c.cmd("QUIT");
    assert!(reply.starts_with("-ERR [SYS/TEMP] could not remove deleted messages"), "{reply}");
    // What failed is named: the journal in state_dir, not the mailbox; the
    // path only in the log.
    assert!(reply.contains("update journal in state_dir"), "{reply}");
    assert!(!reply.contains(small.to_str().unwrap()), "{reply}");
    assert_eq!(spool.read_mbox("alice"), mbox, "the mailbox is untouched");
    let left: Vec<_> = std::fs::read_dir(&small).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains("journal")), "{left:?}");
    let log = d.wait_log("update of alice's maildrop failed");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains(&format!("no space in {} for the ", small.display())), "{log}");
}

#[test]
fn an_unauthenticated_session_cannot_drip_commands_forever() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["timeout_login = 1"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let started = std::time::Instant::now();
    // A CAPA every half second keeps each read under the 1 s timeout; the
    // total before login is capped at four timeouts.
    let closed = loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        c.send(b"CAPA\r\n");
        let reply = c.line();
        if reply.starts_with("-ERR autologout") || reply.is_empty() {
            break started.elapsed();
        }
        assert_eq!(reply, "+OK capability list follows");
        c.multi();
        assert!(started.elapsed() < common::HANG_GUARD, "still open after {:?}", started.elapsed());
    };
    assert!(closed >= std::time::Duration::from_secs(3), "{closed:?}");
    d.wait_log("end=Timeout");
}

/// A session thread that cannot be started (here: the daemon's account may
/// run no more tasks, RLIMIT_NPROC, as other processes of the same account
/// took the rest after the daemon started) refuses its one connection with
/// `-ERR [SYS/TEMP]` and a log line; the daemon goes on, and serves again
/// once tasks are free. The daemon runs as an account of its own, so that
/// the limit counts what the test starts alone.
#[test]
fn a_session_thread_that_cannot_start_refuses_its_connection_and_the_daemon_goes_on() {
    if !common::accounts::is_root() {
        eprintln!("skipped: needs root to create the daemon's own account and set its limits");
        return;
    }
    let owner = common::accounts::LocalUser::new("nt");
    let spool = Spool::new();
    spool.run_as(owner.uid, owner.gid);
    spool.write_mbox("alice", &one_message());
    let d = Daemon::start_with_threads(&spool, &[&format!("user = {}", owner.name)], 12);
    // Its main thread, the reaper and one accept loop; then other processes of its account take the rest.
    let mut others: Vec<std::process::Child> = (0..9)
        .map(|_| {
            use std::os::unix::process::CommandExt;
            std::process::Command::new("sleep").arg("60").uid(owner.uid).gid(owner.gid).spawn().unwrap()
        })
        .collect();
    let greetings: Vec<(TcpStream, String)> = (0..6)
        .map(|_| {
            let s = TcpStream::connect(d.addr).unwrap();
            s.set_read_timeout(Some(HANG_GUARD)).unwrap();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while (&s).read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            (s, String::from_utf8_lossy(&line).into_owned())
        })
        .collect();
    let refused = greetings.iter().filter(|(_, g)| g.starts_with("-ERR [SYS/TEMP] server busy")).count();
    assert!(refused >= 1, "{:?}", greetings.iter().map(|(_, g)| g).collect::<Vec<_>>());
    assert!(greetings.iter().all(|(_, g)| g.starts_with("+OK") || g.starts_with("-ERR [SYS/TEMP]")));
    d.wait_log("cannot start a session thread");
    // The daemon goes on: once the other processes and the sessions are gone, a new one is served.
    for other in &mut others {
        other.kill().unwrap();
        other.wait().unwrap();
    }
    drop(greetings);
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let mut c = d.connect();
        // Refused ("server busy") while the closed sessions' threads end.
        if c.line().starts_with("+OK") {
            assert!(c.user_pass("alice", "secret").starts_with("+OK maildrop has 1"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never served again: {}", d.log());
    }
}
