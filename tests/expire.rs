//! EXPIRE and LOGIN-DELAY (RFC 2449) against the real binary: advertised before and after login, per user, enforced across sessions and across a killed session.

mod common;

use common::{from_line, Client, Daemon, Spool, SECRET_HASH};

fn three_messages(spool: &Spool) {
    let mbox: String = (1..=3).map(|i| format!("{}Subject: m{i}\n\nbody {i}\n\n", from_line("a@x"))).collect();
    spool.write_mbox("alice", mbox.as_bytes());
}

fn capa(c: &mut Client) -> Vec<String> {
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    String::from_utf8(c.multi()).unwrap().lines().map(str::to_string).collect()
}

fn users(spool: &Spool, alice_extra: &str, bob_extra: &str) {
    let text = format!("alice:{SECRET_HASH}::::::{alice_extra}\nbob:{SECRET_HASH}::::::{bob_extra}\n");
    std::fs::write(spool.dir.join("users"), text).unwrap();
    spool.give_to_server();
}

/// Sets every recorded retrieval time in state_dir `days` back (what
/// waiting that long would do).
fn age_retrievals(spool: &Spool, user: &str, days: u64) {
    let path = spool.dir.join("state").join(format!("{user}.retrieved"));
    let text = std::fs::read_to_string(&path).unwrap();
    let aged: String = text
        .lines()
        .map(|l| {
            let (uid, t) = l.split_once(' ').unwrap();
            format!("{uid} {}\n", t.parse::<u64>().unwrap() - days * 86_400)
        })
        .collect();
    std::fs::write(&path, aged).unwrap();
}

#[test]
fn login_delay_refuses_a_login_too_soon_per_user() {
    let spool = Spool::new();
    users(&spool, "", "pop3_login_delay=0");
    let d = Daemon::start(&spool, &["login_delay = 3600"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    let before = capa(&mut c);
    assert!(before.contains(&"LOGIN-DELAY 0 USER".into()) && before.contains(&"EXPIRE NEVER".into()), "{before:?}");
    assert!(c.user_pass("alice", "secret").starts_with("+OK"));
    let after = capa(&mut c);
    assert!(after.contains(&"LOGIN-DELAY 3600".into()), "{after:?}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    // Wrong credentials are still [AUTH]: the delay is told only to the owner.
    assert_eq!(c.user_pass("alice", "wrong"), "-ERR [AUTH] invalid user name or password");
    let refused = c.user_pass("alice", "secret");
    assert!(refused.starts_with("-ERR [LOGIN-DELAY] 3600 seconds between logins"), "{refused}");
    // The session goes on: bob has no delay, and logs in twice.
    assert!(c.user_pass("bob", "secret").starts_with("+OK"));
    assert!(!capa(&mut c).iter().any(|l| l.starts_with("LOGIN-DELAY")));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(d.connect().login("bob", "secret").starts_with("+OK"));
    // A refused login is not recorded as one, and does not lengthen the wait.
    assert!(d.connect().login("alice", "secret").starts_with("-ERR [LOGIN-DELAY]"));
}

#[test]
fn expire_0_deletes_retrieved_messages_at_quit() {
    let spool = Spool::new();
    three_messages(&spool);
    let d = Daemon::start(&spool, &["expire = 0"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert!(capa(&mut c).contains(&"EXPIRE 0".into()));
    assert!(c.user_pass("alice", "secret").starts_with("+OK maildrop has 3"));
    assert!(capa(&mut c).contains(&"EXPIRE 0".into()));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    c.multi();
    assert!(c.cmd("TOP 2 0").starts_with("+OK"), "a TOP that stops short is no retrieval");
    c.multi();
    assert_eq!(c.cmd("QUIT"), "+OK bye, 1 messages deleted");
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2"));
    assert!(c.cmd("TOP 1 0").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: m2\r\n\r\n");
    // RSET does not save a retrieved message from EXPIRE 0; a TOP that
    // reaches the end of the body is a retrieval (fetchmail's TOP n 99999999).
    assert!(c.cmd("TOP 2 99999999").starts_with("+OK"));
    c.multi();
    assert!(c.cmd("RSET").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK bye, 1 messages deleted");
    assert!(!String::from_utf8(spool.read_mbox("alice")).unwrap().contains("m3"));
}

/// EXPIRE 1: a message goes at the first QUIT a day after its first RETR,
/// with the retrieval time kept across sessions and a killed process.
#[test]
fn expire_days_across_sessions_and_a_crash() {
    let spool = Spool::new();
    three_messages(&spool);
    users(&spool, "", "pop3_expire=never");
    let log = format!("log = {}/pop3d.log", spool.dir.display());
    let conf = ["expire = 1", &log];
    // Retrieve message 1, then the process is killed (no QUIT).
    let mut c = Client::inetd(&spool, &conf);
    assert!(c.line().starts_with("+OK"));
    assert!(capa(&mut c).contains(&"EXPIRE 1 USER".into()));
    assert!(c.user_pass("alice", "secret").starts_with("+OK maildrop has 3"));
    assert!(capa(&mut c).contains(&"EXPIRE 1".into()));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    c.multi();
    let mut child = c.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The next day: message 1 goes at QUIT, message 2 retrieved now stays.
    let mut c = Client::inetd(&spool, &conf);
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 3"));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    c.multi();
    assert_eq!(c.cmd("QUIT"), "+OK bye, 0 messages deleted", "retrieved less than a day ago");
    age_retrievals(&spool, "alice", 1);
    let mut c = Client::inetd(&spool, &conf);
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 3"));
    assert_eq!(c.cmd("QUIT"), "+OK bye, 2 messages deleted");
    let left = String::from_utf8(spool.read_mbox("alice")).unwrap();
    assert!(left.contains("m3") && !left.contains("m1") && !left.contains("m2"), "{left}");
    let record = std::fs::read_to_string(spool.dir.join("state/alice.retrieved")).unwrap();
    assert_eq!(record, "", "the deleted messages are forgotten");
    // bob's own EXPIRE NEVER: retrieved long ago, still kept.
    spool.write_mbox("bob", format!("{}Subject: b\n\nb\n", from_line("a@x")).as_bytes());
    let mut c = Client::inetd(&spool, &conf);
    assert!(c.login("bob", "secret").starts_with("+OK maildrop has 1"));
    assert!(capa(&mut c).contains(&"EXPIRE NEVER".into()));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    c.multi();
    assert_eq!(c.cmd("QUIT"), "+OK bye, 0 messages deleted");
}
