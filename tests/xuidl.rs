//! The X-UIDL migration option against the real binary: valid, unique X-UIDL headers become the UIDLs; duplicate and malformed ones fall back to pop3d's own ids; off by default.

mod common;

use common::{from_line, Daemon, Spool};

fn uidls(d: &Daemon) -> Vec<String> {
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert!(c.cmd("UIDL").starts_with("+OK"));
    let ids = String::from_utf8(c.multi()).unwrap().lines().map(|l| l.split(' ').nth(1).unwrap().to_string()).collect();
    assert!(c.cmd("QUIT").starts_with("+OK"));
    ids
}

#[test]
fn x_uidl_headers_are_reused_when_valid_and_unique() {
    let spool = Spool::new();
    let msg = |n: usize, header: &str| format!("{}{header}Subject: {n}\n\nbody {n}\n\n", from_line("a@x"));
    let mbox = [
        msg(1, "X-UIDL: 3c9b1a2f00000001\n"),
        msg(2, "x-uidl:   qpop-42  \n"),
        msg(3, "X-UIDL: twice\n"),
        msg(4, "X-UIDL: twice\n"),
        msg(5, &format!("X-UIDL: {}\n", "z".repeat(71))),
        msg(6, ""),
        msg(7, "Subject: X-UIDL: in a value\n"),
    ]
    .concat();
    spool.write_mbox("alice", mbox.as_bytes());
    let off = Daemon::start(&spool, &[]);
    let own = uidls(&off);
    drop(off);
    assert!(own.iter().all(|id| id.len() == 32), "{own:?}");
    let on = Daemon::start(&spool, &["uidl_from_x_uidl = yes"]);
    let ids = uidls(&on);
    assert_eq!(ids[..2], ["3c9b1a2f00000001", "qpop-42"]);
    assert_eq!(ids[2..], own[2..], "duplicate, malformed, missing and non-header ones: pop3d's ids");
    // The ids stay through a deletion and a UIDL n.
    let mut c = on.connect();
    assert!(c.login("alice", "secret").starts_with("+OK"));
    assert_eq!(c.cmd("UIDL 2"), "+OK 2 qpop-42");
    assert!(c.cmd("DELE 3").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // With message 3 gone, the other "twice" is unique now and is reused.
    let after = uidls(&on);
    assert_eq!(after[..3], ["3c9b1a2f00000001", "qpop-42", "twice"]);
}
