//! RFC 1939/2449 behaviour of the real daemon on 127.0.0.1:0: every command, sizes, byte-stuffing, TOP, UIDL, states, CAPA.

mod common;

use common::{from_line, Daemon, Spool};
use md5::{Digest, Md5};

/// Three messages with content that needs care, and their exact wire form.
fn tricky() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut mbox = Vec::new();
    let mut wire = Vec::new();
    // 1: dots, quoted From lines (mboxrd), an empty body line.
    mbox.extend_from_slice(from_line("a@x").as_bytes());
    mbox.extend_from_slice(b"Subject: one\n\n.leading dot\n..two dots\n>From quoted\n>>From twice\n\nlast\n\n");
    wire.push(b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\nFrom quoted\r\n>From twice\r\n\r\nlast\r\n".to_vec());
    // 2: CRLF lines stay CRLF, a lone CR becomes a line end, a NUL passes.
    mbox.extend_from_slice(from_line("b@x").as_bytes());
    mbox.extend_from_slice(b"Subject: two\r\n\r\ncrlf line\r\nlone\rcr\nnul\0byte\n\n");
    wire.push(b"Subject: two\r\n\r\ncrlf line\r\nlone\r\ncr\r\nnul\0byte\r\n".to_vec());
    // 3: a 200 KB line, and no newline at the end of the file.
    let long = "L".repeat(200_000);
    mbox.extend_from_slice(from_line("c@x").as_bytes());
    mbox.extend_from_slice(format!("Subject: three\n\n{long}\nend without newline").as_bytes());
    wire.push(format!("Subject: three\r\n\r\n{long}\r\nend without newline\r\n").into_bytes());
    (mbox, wire)
}

#[test]
fn every_command_with_exact_sizes_and_stuffing() {
    let spool = Spool::new();
    let (mbox, wire) = tricky();
    spool.write_mbox("alice", &mbox);
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    let capa = String::from_utf8(c.multi()).unwrap();
    for cap in ["TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"] {
        assert!(capa.lines().any(|l| l == cap), "{cap} missing from {capa}");
    }
    assert!(!capa.contains("IMPLEMENTATION"), "IMPLEMENTATION only after login");
    assert!(c.cmd("USER alice").starts_with("+OK"));
    let total: usize = wire.iter().map(Vec::len).sum();
    assert_eq!(c.cmd("PASS secret"), format!("+OK maildrop has 3 messages ({total} octets)"));
    assert_eq!(c.cmd("STAT"), format!("+OK 3 {total}"));
    assert!(c.cmd("LIST").starts_with("+OK"));
    let list = String::from_utf8(c.multi()).unwrap();
    let expect: String = wire.iter().enumerate().map(|(i, w)| format!("{} {}\r\n", i + 1, w.len())).collect();
    assert_eq!(list, expect);
    for (i, w) in wire.iter().enumerate() {
        let n = i + 1;
        assert_eq!(c.cmd(&format!("LIST {n}")), format!("+OK {n} {}", w.len()));
        assert!(c.cmd(&format!("RETR {n}")).starts_with("+OK"));
        assert_eq!(c.multi(), *w, "message {n}");
    }
    // TOP: the header, the blank line, then n body lines.
    assert!(c.cmd("TOP 1 0").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: one\r\n\r\n");
    assert!(c.cmd("TOP 1 2").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: one\r\n\r\n.leading dot\r\n..two dots\r\n");
    assert!(c.cmd("TOP 1 100").starts_with("+OK"));
    assert_eq!(c.multi(), wire[0]);
    assert!(c.cmd("UIDL").starts_with("+OK"));
    let uidl = String::from_utf8(c.multi()).unwrap();
    let ids: Vec<&str> = uidl.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!((1..=70).contains(&id.len()) && id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
    assert_eq!(c.cmd("UIDL 2"), format!("+OK 2 {}", ids[1]));
    assert_eq!(c.cmd("NOOP"), "+OK");
    assert_eq!(c.cmd("CAPA"), "+OK capability list follows");
    let capa = String::from_utf8(c.multi()).unwrap();
    // RFC 2449 section 5: login capabilities are announced in both states.
    assert!(capa.contains("IMPLEMENTATION pop3d-") && capa.lines().any(|l| l == "USER"), "{capa}");
    // DELE marks; a deleted message is gone from every listing; RSET brings it back.
    assert_eq!(c.cmd("DELE 2"), "+OK message 2 deleted");
    assert_eq!(c.cmd("DELE 2"), "-ERR message is deleted");
    assert_eq!(c.cmd("RETR 2"), "-ERR message is deleted");
    assert_eq!(c.cmd("STAT"), format!("+OK 2 {}", total - wire[1].len()));
    assert!(c.cmd("LIST").starts_with("+OK"));
    assert!(!String::from_utf8(c.multi()).unwrap().lines().any(|l| l.starts_with("2 ")));
    assert!(c.cmd("RSET").starts_with("+OK maildrop has 3 messages"));
    assert_eq!(c.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(c.cmd("QUIT"), "+OK bye, 1 messages deleted");
    assert!(c.rest().is_empty());
    // Message 1 is gone, 2 and 3 are byte-identical on disk.
    let after = spool.read_mbox("alice");
    let second = find(&mbox, b"From b@x").unwrap();
    assert_eq!(after, mbox[second..]);
    let log = d.wait_log("session end: user=alice");
    // Three RETRs and TOP 1 100, which reached the end of message 1: four retrievals.
    assert!(log.contains("retr=4/") && log.contains("dele=1/") && log.contains("end=Quit"), "{log}");
    assert!(!log.contains("secret"), "a password reached the log");
    // The ids of the kept messages did not change.
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2 messages"));
    assert!(c.cmd("UIDL").starts_with("+OK"));
    let uidl = String::from_utf8(c.multi()).unwrap();
    assert_eq!(uidl, format!("1 {}\r\n2 {}\r\n", ids[1], ids[2]));
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn wrong_state_and_bad_arguments_get_one_err_each() {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let d = Daemon::start(&spool, &["max_bad_commands = 10"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    for cmd in ["STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL"] {
        assert!(c.cmd(cmd).starts_with("-ERR"), "{cmd} before login");
    }
    assert!(c.cmd("PASS secret").starts_with("-ERR"), "PASS without USER");
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    for (cmd, why) in [
        ("USER bob", "-ERR already logged in"),
        ("PASS x", "-ERR already logged in"),
        ("LIST 2", "-ERR no such message"),
        ("LIST 0", "-ERR invalid message number"),
        ("LIST 4294967297", "-ERR invalid message number"),
        ("LIST 1 2", "-ERR invalid arguments"),
        ("RETR", "-ERR invalid arguments"),
        ("TOP 1 x", "-ERR invalid message number"),
        ("TOP 1 -1", "-ERR invalid message number"),
        ("STLS", "-ERR already logged in"),
        ("XYZZY", "-ERR unknown command"),
    ] {
        assert_eq!(c.cmd(cmd), why, "{cmd}");
    }
    assert_eq!(c.cmd("stat"), "+OK 1 20");
    assert!(c.cmd("quit").starts_with("+OK"));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    c.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nLIST 1\r\nBOGUS\r\nNOOP\r\nQUIT\r\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK maildrop"));
    assert_eq!(c.line(), "+OK 1 20");
    assert!(c.line().starts_with("+OK 20"));
    assert_eq!(c.multi(), b"Subject: x\r\n\r\nbody\r\n");
    assert_eq!(c.line(), "+OK 1 20");
    assert!(c.line().starts_with("-ERR"));
    assert_eq!(c.line(), "+OK");
    assert!(c.line().starts_with("+OK bye"));
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &[]);
    let wrong = d.connect().login("alice", "wrong");
    let unknown = d.connect().login("mallory", "secret");
    let bad_name = d.connect().login("../etc/passwd", "secret");
    assert_eq!(wrong, "-ERR [AUTH] invalid user name or password");
    assert_eq!(unknown, wrong);
    assert_eq!(bad_name, wrong);
    // No mailbox file: an empty maildrop, not an error.
    assert_eq!(d.connect().login("bob", "secret"), "+OK maildrop has 0 messages (0 octets)");
}

#[test]
fn second_session_gets_in_use() {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let d = Daemon::start(&spool, &[]);
    let mut first = d.connect();
    assert!(first.login("alice", "secret").starts_with("+OK"));
    let mut second = d.connect();
    assert!(second.login("alice", "secret").starts_with("-ERR [IN-USE]"));
    // Still in AUTHORIZATION: another user works on the same connection.
    assert!(second.cmd("USER bob").starts_with("+OK"));
    assert!(second.cmd("PASS secret").starts_with("+OK"));
    assert!(first.cmd("QUIT").starts_with("+OK"));
    let mut third = d.connect();
    assert!(third.login("alice", "secret").starts_with("+OK"));
}

#[test]
fn apop_when_enabled() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["apop = yes", "hostname = pop.test"]);
    let mut c = d.connect();
    let greeting = c.line();
    let challenge = &greeting[greeting.find('<').unwrap()..=greeting.find('>').unwrap()];
    assert!(challenge.ends_with("@pop.test>"), "{greeting}");
    let digest = |secret: &str| {
        let mut h = Md5::new();
        h.update(challenge.as_bytes());
        h.update(secret.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(c.cmd(&format!("APOP carol {}", digest("wrong"))).starts_with("-ERR [AUTH]"));
    assert!(c.cmd(&format!("APOP carol {}", digest("tanstaaf"))).starts_with("+OK"));
    // A fresh challenge for each greeting.
    let mut c2 = d.connect();
    assert_ne!(c2.line(), greeting);
    // Without `apop = yes`, there is no challenge and APOP is refused.
    let spool2 = Spool::new();
    let d2 = Daemon::start(&spool2, &[]);
    let mut c = d2.connect();
    assert!(!c.line().contains('<'));
    assert!(c.cmd("APOP carol 0123456789abcdef0123456789abcdef").starts_with("-ERR"));
}

#[test]
fn uidl_is_stable_across_sessions_deliveries_and_rewrites() {
    let spool = Spool::new();
    let same = format!("{}Subject: same\n\nsame body\n\n", from_line("a@x"));
    let other = format!("{}Subject: other\n\nother\n\n", from_line("b@x"));
    spool.write_mbox("alice", format!("{other}{same}{same}").as_bytes());
    let d = Daemon::start(&spool, &[]);
    let uidls = |d: &Daemon| -> Vec<String> {
        let mut c = d.connect();
        assert!(c.login("alice", "secret").starts_with("+OK"));
        assert!(c.cmd("UIDL").starts_with("+OK"));
        let ids =
            String::from_utf8(c.multi()).unwrap().lines().map(|l| l.split(' ').nth(1).unwrap().to_string()).collect();
        assert!(c.cmd("QUIT").starts_with("+OK"));
        ids
    };
    let first = uidls(&d);
    assert_eq!(first.len(), 3);
    assert_ne!(first[1], first[2], "identical messages need different UIDLs");
    assert_eq!(uidls(&d), first, "stable across sessions");
    spool.deliver("alice", format!("{}Subject: new\n\nnew\n\n", from_line("c@x")).as_bytes());
    let with_new = uidls(&d);
    assert_eq!(with_new[..3], first[..]);
    // Delete the first of the two identical copies: the second keeps its id.
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(uidls(&d), vec![first[0].clone(), first[2].clone(), with_new[3].clone()]);
}

/// `mailbox = maildir:...`: the same commands over a Maildir; DELE + QUIT
/// unlinks the file, and a message moved to cur/ keeps its UIDL.
#[test]
fn a_maildir_maildrop_serves_and_updates() {
    let spool = Spool::new();
    let root = spool.dir.join("maildir").join("alice");
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("new/1700000001.M1P1.box"), b"Subject: one\n\n.dot\nFrom here\n").unwrap();
    std::fs::write(root.join("cur/1700000002.M2P2.box:2,S"), b"Subject: two\r\n\r\nbody\r\n").unwrap();
    let mailbox = format!("mailbox = maildir:{}/maildir/%u", spool.dir.display());
    let d = Daemon::start(&spool, &[&mailbox]);
    let mut c = d.connect();
    assert_eq!(c.login("alice", "secret"), "+OK maildrop has 2 messages (55 octets)");
    assert_eq!(c.cmd("LIST"), "+OK 2 messages (55 octets)");
    assert_eq!(c.multi(), b"1 33\r\n2 22\r\n");
    assert_eq!(c.cmd("UIDL 2"), format!("+OK 2 {:x}", Md5::digest(b"1700000002.M2P2.box")));
    assert_eq!(c.cmd("RETR 1"), "+OK 33 octets");
    assert_eq!(c.multi(), b"Subject: one\r\n\r\n.dot\r\nFrom here\r\n", "unstuffed by the client");
    assert!(c.cmd("TOP 2 0").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: two\r\n\r\n");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK bye, 1"));
    assert!(!root.join("new/1700000001.M1P1.box").exists());
    std::fs::rename(root.join("cur/1700000002.M2P2.box:2,S"), root.join("cur/1700000002.M2P2.box:2,RS")).unwrap();
    let mut c = d.connect();
    assert_eq!(c.login("alice", "secret"), "+OK maildrop has 1 messages (22 octets)");
    assert_eq!(c.cmd("UIDL 1"), format!("+OK 1 {:x}", Md5::digest(b"1700000002.M2P2.box")));
}

/// Known POP3 commands in the wrong state are answered -ERR and never close
/// the session (the seeds' thread on wrong-state commands); only lines that
/// are no POP3 command count toward `max_bad_commands` (default 5).
#[test]
fn wrong_state_commands_never_close_the_session() {
    let spool = Spool::new();
    spool.write_mbox("alice", format!("{}Subject: x\n\nbody\n", from_line("a@x")).as_bytes());
    let d = Daemon::start(&spool, &[]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    for _ in 0..3 {
        for cmd in ["STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL", "PASS x", "APOP a b"] {
            assert!(c.cmd(cmd).starts_with("-ERR"), "{cmd} before login");
        }
    }
    // Bad arguments to known commands are a client's mistake, not another protocol.
    for cmd in ["RETR", "LIST 0", "USER", "TOP 1 x", "AUTH PLAIN not!base64"] {
        assert!(c.cmd(cmd).starts_with("-ERR"), "{cmd}");
    }
    assert_eq!(c.user_pass("alice", "secret"), "+OK maildrop has 1 messages (20 octets)");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// The limit with pipelined input: each line gets exactly one reply, the
/// closing -ERR is the reply to the line that crossed the limit, and no
/// line after it is answered.
#[test]
fn the_bad_command_limit_answers_each_pipelined_line_once() {
    let spool = Spool::new();
    let d = Daemon::start(&spool, &["max_bad_commands = 2"]);
    let mut c = d.connect();
    assert!(c.line().starts_with("+OK"));
    c.send(b"CAPA\r\nFOO\r\nSTAT\r\nBAR\r\nNOOP\r\nBAZ\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.line(), "+OK capability list follows");
    c.multi();
    assert_eq!(c.line(), "-ERR unknown command");
    assert_eq!(c.line(), "-ERR command not valid before login");
    assert_eq!(c.line(), "-ERR unknown command");
    assert_eq!(c.line(), "-ERR command not valid before login");
    assert_eq!(c.line(), "-ERR too many invalid commands, closing");
    assert!(c.rest().is_empty(), "nothing after the closing reply");
    d.wait_log("end=TooManyBadCommands");
}

/// The client workarounds: off, messages are sent as they are; on, NULs
/// go out as 0x80 (same sizes) and a message without an end-of-headers
/// line gets one, counted by LIST and STAT.
#[test]
fn client_workarounds() {
    let spool = Spool::new();
    let mbox = format!(
        "{}Subject: nul\n\nnul\0byte\n\n{}Subject: no body\nX-Other: header only\n\n{}Subject: fine\n\nbody\n",
        from_line("a@x"),
        from_line("b@x"),
        from_line("c@x")
    );
    // Message 2 is header lines only: the blank line before the next From_ is the separator.
    spool.write_mbox("alice", mbox.as_bytes());
    let off = Daemon::start(&spool, &[]);
    let mut c = off.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 3 messages (89 octets)"));
    assert!(c.cmd("RETR 1").starts_with("+OK 26 octets"));
    assert_eq!(c.multi(), b"Subject: nul\r\n\r\nnul\0byte\r\n");
    assert!(c.cmd("RETR 2").starts_with("+OK 40 octets"));
    assert_eq!(c.multi(), b"Subject: no body\r\nX-Other: header only\r\n");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    drop(off);
    let on = Daemon::start(&spool, &["workarounds = outlook-no-nuls, oe-ns-eoh"]);
    let mut c = on.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 3 messages (91 octets)"));
    assert_eq!(c.cmd("LIST 2"), "+OK 2 42");
    assert!(c.cmd("RETR 1").starts_with("+OK 26 octets"));
    assert_eq!(c.multi(), b"Subject: nul\r\n\r\nnul\x80byte\r\n");
    assert!(c.cmd("RETR 2").starts_with("+OK 42 octets"));
    assert_eq!(c.multi(), b"Subject: no body\r\nX-Other: header only\r\n\r\n");
    assert!(c.cmd("TOP 2 5").starts_with("+OK"));
    assert_eq!(c.multi(), b"Subject: no body\r\nX-Other: header only\r\n\r\n");
    assert!(c.cmd("RETR 3").starts_with("+OK 23 octets"));
    assert_eq!(c.multi(), b"Subject: fine\r\n\r\nbody\r\n", "a whole message is unchanged");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}
