//! System accounts (`accounts = system`) with real users made by the test: who each process runs as before and after login (from /proc), daemon and inetd, plain and TLS, and the mailbox permissions each mode needs.
//!
//! These need root (CI runs as root); without it they say so and pass.
//! passwd and shadow are test-made files naming the test's real users.

mod common;

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::PathBuf;

use common::accounts::{is_root, LocalUser};
use common::{from_line, Client, Daemon, Spool};

/// openssl-made hashes of "sys-pw" (salt "p3salt"), one per scheme.
fn hash(scheme: &str) -> String {
    let out = std::process::Command::new("openssl").args(["passwd", scheme, "-salt", "p3salt", "sys-pw"]).output();
    String::from_utf8(out.unwrap().stdout).unwrap().trim().to_string()
}

/// passwd and shadow for `users` (each with its shadow fields after the
/// hash), in the spool's directory; returns the config lines naming them.
fn account_files(spool: &Spool, users: &[(&LocalUser, String, &str)]) -> Vec<String> {
    let (mut passwd, mut shadow) = (String::new(), String::new());
    for (u, hash, aging) in users {
        passwd.push_str(&format!("{}:x:{}:{}::/home/{0}:/bin/sh\n", u.name, u.uid, u.gid));
        shadow.push_str(&format!("{}:{hash}:{aging}\n", u.name));
    }
    let d = spool.dir.display();
    fs::write(spool.dir.join("passwd"), passwd).unwrap();
    fs::write(spool.dir.join("shadow"), shadow).unwrap();
    vec![
        "accounts = system".into(),
        format!("passwd_file = {d}/passwd"),
        format!("shadow_file = {d}/shadow"),
        "mbox_locking = fcntl, flock".into(),
    ]
}

const AGING: &str = "19000:0:99999:7:::";

fn message(subject: &str) -> Vec<u8> {
    format!("{}Subject: {subject}\n\n{subject} body\n\n", from_line("a@x")).into_bytes()
}

/// After the spool was given to `nobody`: the account files and state_dir
/// as root keeps them, the mailbox the account's own, 0600.
fn settle(spool: &Spool, mailbox_owner: &LocalUser, mode: u32, root_state: bool) {
    for f in ["passwd", "shadow"] {
        chown(spool.dir.join(f), Some(0), Some(0)).unwrap();
    }
    fs::set_permissions(spool.dir.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    let mbox = spool.mbox(&mailbox_owner.name);
    chown(&mbox, Some(mailbox_owner.uid), None).unwrap();
    fs::set_permissions(&mbox, fs::Permissions::from_mode(mode)).unwrap();
    if root_state {
        let state = spool.dir.join("state");
        chown(&state, Some(0), Some(0)).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o711)).unwrap();
    }
}

/// A process's real uid and parent, from /proc.
fn status(pid: u32) -> (u32, u32) {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u32 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("PPid:"))
}

/// The children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|_| status(p).1 == pid) {
            out.push(p);
        }
    }
    out
}

fn nobody() -> u32 {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd.lines().find(|l| l.starts_with("nobody:")).unwrap().split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn inetd_runs_as_nobody_before_login_and_as_the_mailbox_owner_after() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let (ann, ben) = (LocalUser::new("sa"), LocalUser::new("sb"));
    let spool = Spool::new();
    let mut conf = account_files(&spool, &[(&ann, hash("-6"), AGING), (&ben, format!("!{}", hash("-6")), AGING)]);
    spool.write_mbox(&ann.name, &[message("one"), message("two")].concat());
    conf.push("log = syslog".into());
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let path = spool.config(&conf);
    settle(&spool, &ann, 0o600, true);
    let mut c = Client::inetd_conf(&path, &[]);
    assert!(c.line().starts_with("+OK"));
    let parent = c.child.as_ref().unwrap().id();
    let kids = children(parent);
    assert_eq!(kids.len(), 1, "one pre-login child");
    assert_eq!(status(parent).0, 0, "the helper is root");
    assert_eq!(status(kids[0]).0, nobody(), "the child that reads the client is not");
    assert!(!c.cmd("CAPA").is_empty());
    let capa = String::from_utf8(c.multi()).unwrap();
    assert!(capa.contains("SASL PLAIN LOGIN\r\n") && !capa.contains("SCRAM"), "{capa}");
    assert!(c.user_pass(&ben.name, "sys-pw").starts_with("-ERR [AUTH]"), "a locked entry");
    assert!(c.user_pass(&ann.name, "wrong").starts_with("-ERR [AUTH]"));
    assert!(c.user_pass(&ann.name, "sys-pw").starts_with("+OK maildrop has 2 messages"));
    assert_eq!(status(parent).0, ann.uid, "the session runs as the mailbox owner");
    assert_eq!(status(kids[0]).0, nobody(), "the relay stays unprivileged");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(c.rest().is_empty());
    assert_eq!(spool.read_mbox(&ann.name), message("two"));
    let state = spool.dir.join("state/users").join(&ann.name);
    assert_eq!(fs::metadata(&state).map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap(), ann.uid);
}

#[test]
fn inetd_over_implicit_tls_relays_the_session() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let ann = LocalUser::new("st");
    let spool = Spool::new();
    let mut pki = common::pki::Pki::new(&spool.dir);
    pki.issue_server("localhost");
    let mut conf = account_files(&spool, &[(&ann, hash("-5"), AGING)]);
    conf.extend(pki.server_lines());
    conf.push("log = syslog".into());
    let big: Vec<u8> = (0..4000).flat_map(|i| format!("line {i} of a long message\n").into_bytes()).collect();
    let body = [from_line("a@x").into_bytes(), b"Subject: big\n\n".to_vec(), big, b"\n".to_vec()].concat();
    spool.write_mbox(&ann.name, &body);
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let path = spool.config(&conf);
    settle(&spool, &ann, 0o600, true);
    let mut c = Client::inetd_conf(&path, &["-s"]);
    c.start_tls(pki.client_config(&[], None)).unwrap();
    assert!(c.line().starts_with("+OK"));
    // Pipelined after the login: the relay passes on what came with PASS.
    c.send(format!("USER {}\r\nPASS sys-pw\r\nSTAT\r\nRETR 1\r\nQUIT\r\n", ann.name).as_bytes());
    assert_eq!(c.line(), "+OK send PASS");
    assert!(c.line().starts_with("+OK maildrop has 1 messages"));
    assert!(c.line().starts_with("+OK 1 "));
    assert!(c.line().starts_with("+OK"));
    let text = c.multi();
    let tail = String::from_utf8_lossy(&text[text.len().saturating_sub(80)..]).to_string();
    assert!(text.ends_with(b"line 3999 of a long message\r\n"), "{} octets, ending {tail:?}", text.len());
    assert!(c.line().starts_with("+OK bye"));
    assert!(c.rest().is_empty(), "close_notify, then EOF");
}

/// The daemon: its helper is the only root process, and sessions run as
/// `user`, so mailboxes must be open to it (the Debian layout).
#[test]
fn the_daemon_serves_the_debian_layout_and_refuses_a_private_mailbox_clearly() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let (ann, ben) = (LocalUser::new("da"), LocalUser::new("db"));
    let spool = Spool::new();
    let conf = account_files(&spool, &[(&ann, hash("-1"), AGING), (&ben, hash("-6"), AGING)]);
    spool.write_mbox(&ann.name, &[message("one"), message("two")].concat());
    spool.write_mbox(&ben.name, &message("private"));
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let d = Daemon::start(&spool, &conf);
    // ann's mailbox is readable and writable by nobody's group; ben's is private.
    settle(&spool, &ann, 0o660, false);
    chown(spool.mbox(&ann.name), None, Some(common::accounts::group_of("nobody"))).unwrap();
    settle(&spool, &ben, 0o600, false);
    let mut c = d.connect();
    c.line();
    let answer = c.user_pass(&ann.name, "sys-pw");
    assert!(answer.starts_with("+OK maildrop has 2"), "{answer}\n{}", d.log());
    // Sessions are accepted only after the daemon gave up root.
    let helpers = children(d.pid());
    assert_eq!(helpers.len(), 1);
    assert_eq!(status(helpers[0]).0, 0, "the helper is root");
    assert_eq!(status(d.pid()).0, nobody(), "the daemon and its sessions are not");
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert_eq!(spool.read_mbox(&ann.name), message("one"));
    let mut c = d.connect();
    c.line();
    assert!(c.user_pass(&ben.name, "sys-pw").starts_with("-ERR [SYS/PERM]"));
    let log = d.wait_log("sessions run as `nobody`, which must be able to read and write the mailbox");
    assert!(log.contains(&format!("maildrop {}", spool.mbox(&ben.name).display())), "{log}");
    // ann's mailbox planted under ben's name: not ben's, refused.
    fs::rename(spool.mbox(&ann.name), spool.mbox(&ben.name)).unwrap();
    let mut c = d.connect();
    c.line();
    assert!(c.user_pass(&ben.name, "sys-pw").starts_with("-ERR [SYS/PERM]"));
    d.wait_log(&format!("it belongs to uid {}, not to the account's uid {}", ann.uid, ben.uid));
}

#[test]
fn apop_cannot_be_checked_against_system_accounts() {
    let spool = Spool::new();
    let path: PathBuf = spool.config(&["accounts = system", "apop = yes"]);
    let out = common::pop3d().args(["-t", "-f", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("apop"));
}
