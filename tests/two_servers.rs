//! Two pop3d daemons on one Maildir tree and one state_dir (several servers behind a load balancer on shared storage): [IN-USE], LOGIN-DELAY and EXPIRE hold across them, and an UPDATE in one never harms a session in the other.

mod common;

use common::{Daemon, Spool};

fn deliver(root: &std::path::Path, name: &str, text: &str) {
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("tmp").join(name), text).unwrap();
    std::fs::rename(root.join("tmp").join(name), root.join("new").join(name)).unwrap();
}

#[test]
fn two_daemons_share_one_store() {
    let spool = Spool::new();
    let tree = spool.dir.join("maildir");
    let (alice, bob) = (tree.join("alice"), tree.join("bob"));
    for i in 1..=3 {
        deliver(&alice, &format!("170000000{i}.M{i}P1.box"), &format!("Subject: a{i}\n\nx\n"));
        deliver(&bob, &format!("170000000{i}.M{i}P2.box"), &format!("Subject: b{i}\n\ny\n"));
    }
    spool.give_to_server();
    let mailbox = format!("mailbox = maildir:{}/%u", tree.display());
    let conf = [mailbox.as_str(), "expire = 0"];
    let one = Daemon::start(&spool, &conf);
    let two = Daemon::start(&spool, &conf);
    // alice on server one; server two says [IN-USE] and lets bob in.
    let mut a = one.connect();
    assert!(a.login("alice", "secret").starts_with("+OK maildrop has 3"));
    let mut b = two.connect();
    assert!(b.login("alice", "secret").starts_with("-ERR [IN-USE]"));
    assert!(b.user_pass("bob", "secret").starts_with("+OK maildrop has 3"));
    // A second bob session on server one is refused the same way.
    assert!(one.connect().login("bob", "secret").starts_with("-ERR [IN-USE]"));
    // bob's UPDATE on server two (DELE 1, RETR 2 expiring at once) while
    // alice's session on server one goes on untouched.
    assert!(b.cmd("DELE 1").starts_with("+OK"));
    assert!(b.cmd("RETR 2").starts_with("+OK"));
    b.multi();
    assert_eq!(b.cmd("QUIT"), "+OK bye, 2 messages deleted");
    for n in 1..=3 {
        assert!(a.cmd(&format!("RETR {n}")).starts_with("+OK"), "alice's message {n}");
        assert_eq!(a.multi(), format!("Subject: a{n}\r\n\r\nx\r\n").as_bytes());
    }
    // New mail for alice during her session: not listed, and kept by her UPDATE.
    deliver(&alice, "1700000009.M9P1.box", "Subject: late\n\nz\n");
    spool.give_to_server();
    assert!(a.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(a.cmd("QUIT"), "+OK bye, 3 messages deleted", "EXPIRE 0 removes the retrieved ones");
    // Server two sees what server one left: the late message only.
    let mut c = two.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 1"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: late\r\n\r\nz\r\n");
    assert!(c.cmd("RSET").starts_with("+OK"));
    // The lock follows the session, not the server: one can't take alice now.
    assert!(one.connect().login("alice", "secret").starts_with("-ERR [IN-USE]"));
    drop(c);
    two.wait_log("end=Disconnected");
    let mut c = one.connect();
    assert!(c.login("bob", "secret").starts_with("+OK maildrop has 1"));
    assert!(c.cmd("TOP 1 0").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: b3\r\n\r\n");
}

#[test]
fn login_delay_holds_across_servers() {
    let spool = Spool::new();
    let one = Daemon::start(&spool, &["login_delay = 600"]);
    let two = Daemon::start(&spool, &["login_delay = 600"]);
    let mut c = one.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(two.connect().login("alice", "secret").starts_with("-ERR [LOGIN-DELAY]"));
}
