//! Local users attacking other users' mail through pop3d: links, hard links and FIFOs in mailbox paths, links planted in state_dir.
//!
//! Each attack is made by a real unprivileged user the test creates
//! (useradd), in the home-like directory that user owns, as on a NAS where
//! `mailbox = /home/%u/mail/mbox`. pop3d runs as `nobody`, which can read
//! every mailbox. These tests need root (CI runs as root); they say so and
//! pass without it.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use common::accounts::{is_root, LocalUser};
use common::{from_line, Daemon, Spool};

fn message(subject: &str) -> Vec<u8> {
    format!("{}Subject: {subject}\n\n{subject} body\n\n", from_line("a@x")).into_bytes()
}

/// `dir` made (with its parents) and given to `user`, mode 0755.
fn own_dir(dir: &Path, user: &LocalUser) {
    fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The one answer for every maildrop that cannot be opened.
const REFUSED: &str = "-ERR [SYS/PERM] maildrop cannot be opened; the reason is in the server's log";

#[test]
fn links_hard_links_and_fifos_in_a_users_mbox_path_lead_nowhere() {
    if !is_root() {
        eprintln!("skipped: creating local users needs root");
        return;
    }
    let mallory = LocalUser::new("mb");
    let spool = Spool::new();
    let home = spool.dir.join("home");
    let bob_mbox = home.join("bob/mail/mbox");
    fs::create_dir_all(bob_mbox.parent().unwrap()).unwrap();
    let bobs = [message("bob one"), message("bob two")].concat();
    fs::write(&bob_mbox, &bobs).unwrap();
    let template = format!("mailbox = {}/%u/mail/mbox", home.display());
    // No dotlock: pop3d cannot create files in the user's directory.
    let d = Daemon::start(&spool, &[&template, "mbox_locking = fcntl, flock"]);
    fs::set_permissions(&bob_mbox, fs::Permissions::from_mode(0o600)).unwrap();
    // alice's home belongs to the local user (pop3d's account "alice").
    let alice_home = home.join("alice");
    own_dir(&alice_home.join("mail"), &mallory);
    own_dir(&alice_home, &mallory);
    mallory.run(&alice_home, "printf 'From a@x Mon Nov 23 09:00:00 2026\\nSubject: mine\\n\\nx\\n' > mail/mbox");
    let mut c = d.connect();
    assert_eq!(c.login("alice", "secret"), "+OK maildrop has 1 messages (20 octets)", "the control case");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    d.wait_log("session end: user=alice");

    let hard_links_allowed = fs::read_to_string("/proc/sys/fs/protected_hardlinks").is_ok_and(|s| s.trim() == "0");
    let attacks: [(&str, &str, &str); 5] = [
        ("final symlink", "rm mail/mbox && ln -s ../../bob/mail/mbox mail/mbox", "is a symbolic link"),
        ("directory symlink", "rm -r mail && ln -s ../bob/mail mail", "mail is not a directory"),
        ("FIFO", "rm -rf mail && mkdir mail && mkfifo mail/mbox", "is not a regular file"),
        ("directory", "rm -rf mail && mkdir -p mail/mbox", "is not a regular file"),
        // With fs.protected_hardlinks = 1 (the default) the kernel refuses
        // the user a link to a file they cannot write; root makes it below,
        // as a box without that protection would let the user.
        ("hard link", "rm -rf mail && mkdir mail", "has 2 links"),
    ];
    for (what, script, reason) in attacks {
        mallory.run(&alice_home, script);
        if what == "hard link" {
            if hard_links_allowed {
                mallory.run(&alice_home, &format!("ln {} mail/mbox", bob_mbox.display()));
            } else {
                fs::hard_link(&bob_mbox, alice_home.join("mail/mbox")).unwrap();
            }
        }
        let mut c = d.connect();
        // A FIFO would block open() forever: the hang guard would fail the test.
        assert_eq!(c.login("alice", "secret"), REFUSED, "{what}");
        assert!(c.cmd("RETR 1").starts_with("-ERR"), "{what}");
        assert!(c.cmd("QUIT").starts_with("+OK"));
        assert!(c.rest().is_empty());
        let log = d.wait_log(reason);
        assert!(!log.contains("bob body"), "{what}");
        assert_eq!(fs::read(&bob_mbox).unwrap(), bobs, "{what}: bob's mailbox is byte-identical");
    }
    // The session lock and the thread were given back every time.
    let mut c = d.connect();
    assert_eq!(c.login("alice", "secret"), REFUSED);
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(fs::metadata(&bob_mbox).unwrap().nlink() == 2, "the hard link is still there");
}

#[test]
fn a_users_maildir_path_cannot_lead_to_another_maildir() {
    if !is_root() {
        eprintln!("skipped: creating local users needs root");
        return;
    }
    let mallory = LocalUser::new("md");
    let spool = Spool::new();
    let home = spool.dir.join("home");
    let bob_new = home.join("bob/mail/Maildir/new");
    fs::create_dir_all(&bob_new).unwrap();
    fs::write(bob_new.join("1700000000.M1P1.box"), b"Subject: bob\n\nbob body\n").unwrap();
    let template = format!("mailbox = maildir:{}/%u/mail/Maildir", home.display());
    let d = Daemon::start(&spool, &[&template]);
    let alice_home = home.join("alice");
    own_dir(&alice_home, &mallory);
    for (what, script) in [
        ("directory symlink", "rm -rf mail && ln -s ../bob/mail mail"),
        ("Maildir symlink", "rm -rf mail && mkdir mail && ln -s ../../bob/mail/Maildir mail/Maildir"),
    ] {
        mallory.run(&alice_home, script);
        let mut c = d.connect();
        assert_eq!(c.login("alice", "secret"), REFUSED, "{what}");
        assert!(c.cmd("QUIT").starts_with("+OK"));
        d.wait_log("links are not followed");
    }
    assert!(bob_new.join("1700000000.M1P1.box").exists());
    // And the control: a Maildir of alice's own is served.
    mallory.run(&alice_home, "rm -rf mail && mkdir -p mail/Maildir/new && echo 'Subject: a' > mail/Maildir/new/1.x");
    assert!(d.connect().login("alice", "secret").starts_with("+OK maildrop has 1 messages"));
}

/// Every file pop3d writes in state_dir, planted as a link to bob's
/// mailbox (or, dangling, to a file that must not appear).
#[test]
fn links_planted_in_state_dir_are_never_followed() {
    if !is_root() {
        eprintln!("skipped: needs root, like the other local attacks");
        return;
    }
    let spool = Spool::new();
    let twins = [message("twin"), message("twin"), message("other")].concat();
    spool.write_mbox("alice", &twins);
    let bobs = message("bob");
    spool.write_mbox("bob", &bobs);
    let state = spool.dir.join("state");
    let created = spool.dir.join("created-by-pop3d");
    let plant = |name: &str, target: &Path| {
        let link = state.join(name);
        let _ = fs::remove_file(&link);
        symlink(target, &link).unwrap();
        std::os::unix::fs::lchown(&link, common_nobody(), None).unwrap();
    };
    plant("scram.secret", &spool.mbox("bob"));
    let d = Daemon::start(&spool, &[]);
    // A dangling session-lock link: refused, its target never created.
    plant("alice.session", &created);
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("-ERR [SYS/TEMP]"));
    assert!(!created.exists());
    fs::remove_file(state.join("alice.session")).unwrap();
    // Temporary files of UPDATE: created anew, the links replaced, not followed.
    plant("alice.journal-new", &spool.mbox("bob"));
    plant("alice.uids-new", &spool.mbox("bob"));
    let mut c = d.connect();
    assert!(c.login("alice", "secret").starts_with("+OK maildrop has 3"));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"), "UPDATE works");
    assert_eq!(spool.read_mbox("alice"), [message("twin"), message("other")].concat());
    // The journal and the copy numbers as links: refused at login.
    for name in ["alice.journal", "alice.uids"] {
        let _ = fs::remove_file(state.join("alice.uids"));
        plant(name, &spool.mbox("bob"));
        let mut c = d.connect();
        assert_eq!(c.login("alice", "secret"), REFUSED, "{name}");
        assert!(c.cmd("QUIT").starts_with("+OK"));
        fs::remove_file(state.join(name)).unwrap();
    }
    d.wait_log("is a symbolic link (not followed)");
    assert_eq!(spool.read_mbox("bob"), bobs, "bob's mailbox is byte-identical");
    let secret = fs::symlink_metadata(state.join("scram.secret")).unwrap();
    assert!(secret.is_file() && secret.len() == 32, "the planted secret link was replaced by a new file");
    for entry in fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        assert!(!entry.file_type().unwrap().is_symlink(), "{:?} left behind", entry.file_name());
    }
}

/// nobody's uid (pop3d's account in these tests).
fn common_nobody() -> Option<u32> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find(|l| l.starts_with("nobody:"))?.split(':').nth(2)?.parse().ok()
}
