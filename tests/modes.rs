//! The two ways in and the command line: inetd mode on pipes, -t config check, -V, and mail delivered during a session.

mod common;

use common::{from_line, pop3d, Client, Daemon, Spool};

#[test]
fn inetd_mode_serves_one_session_on_stdin_stdout_and_keeps_stderr_silent() {
    let spool = Spool::new();
    let mbox = format!("{}Subject: x\n\nbody\n\n{}Subject: y\n\n.dot\n", from_line("a@x"), from_line("b@x"));
    spool.write_mbox("alice", mbox.as_bytes());
    let log = spool.dir.join("pop3d.log");
    let log_line = format!("log = {}", log.display());
    let mut c = Client::inetd(&spool, &[&log_line]);
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2 messages"));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: y\r\n\r\n.dot\r\n");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.rest().is_empty());
    let out = c.child.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(spool.read_mbox("alice"), format!("{}Subject: y\n\n.dot\n", from_line("b@x")).as_bytes());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("session end: user=alice peer=stdin tls=no retr=1/"), "{logged}");
}

#[test]
fn inetd_mode_refuses_stderr_logging() {
    let spool = Spool::new();
    let conf = spool.config(&[]);
    let out = pop3d().args(["-i", "-f", conf.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
}

#[test]
fn config_check_and_version() {
    let spool = Spool::new();
    let good = spool.config(&[]);
    let out = pop3d().args(["-t", "-f", good.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&good, "timeout_session = 5\n").unwrap();
    let out = pop3d().args(["-t", "-f", good.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") && err.contains("600"), "{err}");
    let good = spool.config(&[]);
    let out = pop3d().args(["-t", "-f", good.to_str().unwrap(), "-o", "users_file=/nonexistent"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
    let out = pop3d().arg("-V").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("pop3d {}\n", env!("CARGO_PKG_VERSION")));
    // A hash this system's crypt(3) cannot compute: -t says so; an inetd
    // session (which does not pay a full hash per scheme at every start)
    // still serves everyone else.
    let users = spool.dir.join("users");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("dave:$5$rounds=x$abc$\n");
    std::fs::write(&users, text).unwrap();
    spool.give_to_server();
    let out = pop3d().args(["-t", "-f", good.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user dave"), "{}", String::from_utf8_lossy(&out.stderr));
    let log = spool.dir.join("pop3d.log");
    let mut c = Client::inetd(&spool, &[&format!("log = {}", log.display())]);
    assert!(c.login("alice", "secret").starts_with("+OK"));
}

#[test]
fn mail_delivered_during_a_session_survives_its_update() {
    let spool = Spool::new();
    let old = format!("{}Subject: old\n\nold\n\n", from_line("a@x"));
    let new = format!("{}Subject: new\n\nnew\n\n", from_line("b@x"));
    spool.write_mbox("alice", old.as_bytes());
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 1"));
    spool.deliver("alice", new.as_bytes());
    assert_eq!(c.cmd("STAT"), "+OK 1 21", "the session sees the maildrop as it was at login");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK bye, 1"));
    assert_eq!(spool.read_mbox("alice"), new.as_bytes());
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 1"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: new\r\n\r\nnew\r\n");
}

#[test]
fn inetd_mode_gives_up_on_a_client_that_never_reads() {
    let spool = Spool::new();
    let log = spool.dir.join("pop3d.log");
    let log_line = format!("log = {}", log.display());
    let conf = spool.config(&[&log_line, "timeout_login = 1", "max_bad_commands = 100000"]);
    let mut child = pop3d()
        .args(["-i", "-f", conf.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Pipelined CAPAs whose answers (far more than a pipe holds) are never read.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&b"CAPA\r\n".repeat(50_000));
    });
    let _stdout = child.stdout.take().unwrap();
    let deadline = std::time::Instant::now() + common::HANG_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "pop3d -i blocked on a client that does not read");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    drop(_stdout);
    writer.join().unwrap();
    assert!(std::fs::read_to_string(&log).unwrap().contains("end=Timeout"));
}

/// SIGHUP reloads at once (not at the next connection), applies the new
/// settings to new sessions, and a broken file keeps the old ones.
#[test]
fn sighup_reloads_at_once_and_a_broken_config_keeps_the_old_one() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    assert!(!d.connect().line().contains("<"), "no APOP challenge before the reload");
    spool.config(&["apop = yes"]);
    d.signal(1);
    d.wait_log("configuration reloaded");
    let greeting = d.connect().line();
    assert!(greeting.starts_with("+OK") && greeting.contains('<'), "APOP on after the reload: {greeting}");
    spool.config(&["apop = yes", "timeout_session = 5"]);
    d.signal(1);
    let log = d.wait_log("configuration reload failed, keeping the old one");
    assert!(log.contains("600"), "the reason is logged: {log}");
    assert!(d.connect().line().contains('<'), "the old settings stay");
}

/// Several inetd processes starting at once on a fresh state_dir and
/// appending to one log file: every line arrives whole (each is one write),
/// none torn into another, and none reads a half-written SCRAM secret.
#[test]
fn log_lines_from_concurrent_inetd_sessions_are_never_torn() {
    let spool = Spool::new();
    let log = spool.dir.join("pop3d.log");
    let log_line = format!("log = {}", log.display());
    let sessions = 16;
    let conf = spool.config(&[&log_line]);
    let mut clients: Vec<Client> = (0..sessions).map(|_| Client::inetd_conf(&conf, &[])).collect();
    // Every failure is answered after the same delay, so the log lines of
    // all sessions are written at about the same moment.
    for (i, c) in clients.iter_mut().enumerate() {
        let greeting = c.line();
        assert!(greeting.starts_with("+OK"), "{greeting:?}");
        c.send(format!("USER nobody{i}\r\nPASS wrong\r\nQUIT\r\n").as_bytes());
    }
    for mut c in clients {
        let rest = String::from_utf8(c.rest()).unwrap();
        assert!(rest.contains("-ERR [AUTH]"), "{rest}");
        assert!(c.child.take().unwrap().wait().unwrap().success());
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    let whole = |line: &str| {
        let (time, rest) = line.split_once(' ').unwrap_or(("", ""));
        time.len() >= 20
            && time.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && ["[INFO] ", "[WARN] ", "[ERROR] "].iter().any(|l| rest.starts_with(l))
            && !rest.contains(" [INFO] ")
    };
    assert!(logged.lines().all(whole), "torn lines:\n{logged}");
    assert_eq!(logged.matches("session end:").count(), sessions, "{logged}");
    assert_eq!(logged.matches("login failed for \"nobody").count(), sessions, "{logged}");
    // All of them made or read state_dir/scram.secret at once: none read it half-written.
    assert!(!logged.contains("scram.secret"), "{logged}");
}

/// A daemon killed while it held a mailbox's dotlock leaves it (and its
/// record in state_dir); the daemon started again removes it at once, before
/// any client or delivery agent has to wait for it to grow stale.
#[test]
fn a_restarted_daemon_removes_the_dotlock_its_killed_predecessor_held() {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let mut gone = std::process::Command::new("true").spawn().unwrap(); // a process that has ended
    let dead = gone.id();
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dotlock = spool.mbox("alice").with_extension("lock");
    std::fs::write(&dotlock, format!("{dead} {}\n", host.trim())).unwrap();
    let records = spool.dir.join("state").join("dotlocks");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::write(records.join("alice"), format!("{dead}\n{}", dotlock.display())).unwrap();
    spool.give_to_server();
    let d = Daemon::start(&spool, &["lock_timeout = 60"]);
    d.wait_log("listening on");
    let log = d.wait_log("which died");
    assert!(log.contains(&format!("removed dotlock {} left by pop3d process {dead}", dotlock.display())), "{log}");
    assert!(!dotlock.exists() && !records.join("alice").exists());
    // No wait for the lock (lock_timeout is far beyond the hang guard).
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 1"));
}
