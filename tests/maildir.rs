//! Maildir conventions against the real binary: RETR moves new/ to cur/ with `:2,S` (or `;2,S`), UIDLs do not change, and maildirsize learns of deletions.

mod common;

use common::{Daemon, Spool};

fn maildir(spool: &Spool) -> std::path::PathBuf {
    let root = spool.dir.join("maildir").join("alice");
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("new/1700000001.M1P1.box,S=16"), b"Subject: one\n\nx\n").unwrap();
    std::fs::write(root.join("new/1700000002.M2P2.box,S=17"), b"Subject: two\n\nyy\n").unwrap();
    std::fs::write(root.join("maildirsize"), b"0S,0C\n33 2\n").unwrap();
    spool.give_to_server();
    root
}

#[test]
fn retrieved_messages_move_to_cur_and_maildirsize_follows_deletions() {
    for (separator, info) in [(":", ":2,S"), (";", ";2,S")] {
        let spool = Spool::new();
        let root = maildir(&spool);
        let mailbox = format!("mailbox = maildir:{}/maildir/%u", spool.dir.display());
        let sep = format!("maildir_info_separator = {separator}");
        let d = Daemon::start(&spool, &[&mailbox, &sep]);
        let mut c = d.connect();
        assert!(c.login("alice", "secret").starts_with("+OK maildrop has 2"));
        assert!(c.cmd("UIDL").starts_with("+OK"));
        let uidl = c.multi();
        assert!(c.cmd("RETR 1").starts_with("+OK"));
        assert_eq!(c.multi(), b"Subject: one\r\n\r\nx\r\n");
        assert!(c.cmd("TOP 2 0").starts_with("+OK"), "TOP is no retrieval");
        c.multi();
        assert!(root.join(format!("cur/1700000001.M1P1.box,S=16{info}")).exists(), "{separator}");
        assert!(root.join("new/1700000002.M2P2.box,S=17").exists());
        // Served again where it moved, with the same UIDL.
        assert!(c.cmd("RETR 1").starts_with("+OK"));
        assert_eq!(c.multi(), b"Subject: one\r\n\r\nx\r\n");
        assert!(c.cmd("UIDL").starts_with("+OK"));
        assert_eq!(c.multi(), uidl);
        assert!(c.cmd("DELE 1").starts_with("+OK") && c.cmd("DELE 2").starts_with("+OK"));
        assert_eq!(c.cmd("QUIT"), "+OK bye, 2 messages deleted");
        assert_eq!(std::fs::read_to_string(root.join("maildirsize")).unwrap(), "0S,0C\n33 2\n-33 -2\n");
    }
}
