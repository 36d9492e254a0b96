//! System accounts (`accounts = system`) with real users made by the test: who each process runs as before and after login (from /proc), daemon and inetd, plain and TLS, and the mailbox permissions each mode needs.
//!
//! These need root (CI runs as root); without it they say so and pass.
//! passwd and shadow are test-made files naming the test's real users.

mod common;

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use common::accounts::{is_root, LocalUser};
use common::{from_line, Client, Daemon, Spool};

/// openssl-made hashes of "sys-pw" (salt "p3salt"), one per scheme.
fn hash(scheme: &str) -> String {
    let out = std::process::Command::new("openssl").args(["passwd", scheme, "-salt", "p3salt", "sys-pw"]).output();
    String::from_utf8(out.unwrap().stdout).unwrap().trim().to_string()
}

/// passwd and shadow for `users` (each with its shadow fields after the
/// hash) in a directory of their own, root's as pop3d requires; removed
/// when dropped.
struct AccountFiles {
    dir: PathBuf,
    /// The configuration lines naming them.
    lines: Vec<String>,
}

impl AccountFiles {
    fn new(spool: &Spool, users: &[(&LocalUser, String, &str)]) -> AccountFiles {
        AccountFiles::with_homes(spool, users, Path::new("/home"))
    }

    /// With each user's home directory `homes/NAME`.
    fn with_homes(spool: &Spool, users: &[(&LocalUser, String, &str)], homes: &Path) -> AccountFiles {
        let (mut passwd, mut shadow) = (String::new(), String::new());
        for (u, hash, aging) in users {
            let home = homes.join(&u.name);
            passwd.push_str(&format!("{}:x:{}:{}::{}:/bin/sh\n", u.name, u.uid, u.gid, home.display()));
            shadow.push_str(&format!("{}:{hash}:{aging}\n", u.name));
        }
        let dir = PathBuf::from(format!("{}-accounts", spool.dir.display()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("passwd"), passwd).unwrap();
        fs::write(dir.join("shadow"), shadow).unwrap();
        fs::set_permissions(dir.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
        let d = dir.display();
        let lines = vec![
            "accounts = system".into(),
            format!("passwd_file = {d}/passwd"),
            format!("shadow_file = {d}/shadow"),
            "mbox_locking = fcntl, flock".into(),
        ];
        AccountFiles { dir, lines }
    }

    fn config(&self, more: &[&str]) -> Vec<String> {
        let mut all = self.lines.clone();
        all.extend(more.iter().map(|l| l.to_string()));
        all
    }
}

impl Drop for AccountFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const AGING: &str = "19000:0:99999:7:::";

fn message(subject: &str) -> Vec<u8> {
    format!("{}Subject: {subject}\n\n{subject} body\n\n", from_line("a@x")).into_bytes()
}

/// After the spool was given to `nobody`: the mailbox the account's own
/// (with `mode`), and state_dir root's when `root_state`.
fn settle(spool: &Spool, mailbox_owner: &LocalUser, mode: u32, root_state: bool) {
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
    common::accounts::uid_of("nobody")
}

#[test]
fn inetd_runs_as_nobody_before_login_and_as_the_mailbox_owner_after() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let (ann, ben) = (LocalUser::new("sa"), LocalUser::new("sb"));
    let spool = Spool::new();
    let accounts = AccountFiles::new(&spool, &[(&ann, hash("-6"), AGING), (&ben, format!("!{}", hash("-6")), AGING)]);
    spool.write_mbox(&ann.name, &[message("one"), message("two")].concat());
    let conf = accounts.config(&["log = syslog"]);
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
    let accounts = AccountFiles::new(&spool, &[(&ann, hash("-5"), AGING)]);
    let mut conf = accounts.config(&["log = syslog"]);
    conf.extend(pki.server_lines());
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
    let accounts = AccountFiles::new(&spool, &[(&ann, hash("-1"), AGING), (&ben, hash("-6"), AGING)]);
    let conf = accounts.config(&[]);
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
    d.wait_log(&format!("mailbox belongs to uid {}, not to the account's uid {}", ann.uid, ben.uid));
}

#[test]
fn apop_cannot_be_checked_against_system_accounts() {
    let spool = Spool::new();
    let path: PathBuf = spool.config(&["accounts = system", "apop = yes"]);
    let out = common::pop3d().args(["-t", "-f", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("apop"));
}

/// `mailbox = %h/mail/inbox` in the daemon (sessions run as `nobody`, which
/// reads every mailbox): a user who points her own `mail` directory at
/// another user's gets nothing of it, since nothing below a home is a
/// followed link.
#[test]
fn a_link_in_a_home_does_not_lead_to_another_users_mail() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let (ann, ben) = (LocalUser::new("ha"), LocalUser::new("hb"));
    let spool = Spool::new();
    let homes = spool.dir.join("homes");
    let accounts = AccountFiles::with_homes(&spool, &[(&ann, hash("-6"), AGING), (&ben, hash("-6"), AGING)], &homes);
    let conf = accounts.config(&["mailbox = %h/mail/inbox"]);
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let d = Daemon::start(&spool, &conf);
    for u in [&ann, &ben] {
        fs::create_dir_all(homes.join(&u.name).join("mail")).unwrap();
        for dir in [homes.join(&u.name), homes.join(&u.name).join("mail")] {
            chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
        }
    }
    let secret = homes.join(&ben.name).join("mail/inbox");
    fs::write(&secret, message("BEN-SECRET")).unwrap();
    chown(&secret, Some(ben.uid), Some(common::accounts::group_of("nobody"))).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o660)).unwrap();
    // ann's own mail/ is a link to ben's.
    fs::remove_dir(homes.join(&ann.name).join("mail")).unwrap();
    std::os::unix::fs::symlink(homes.join(&ben.name).join("mail"), homes.join(&ann.name).join("mail")).unwrap();
    let mut c = d.connect();
    c.line();
    assert!(c.user_pass(&ann.name, "sys-pw").starts_with("-ERR [SYS/PERM]"), "{}", d.log());
    let log = d.wait_log("symbolic links are not followed");
    assert!(!log.contains("belongs to uid") && !log.contains("sessions run as"), "{log}");
    let mut c = d.connect();
    c.line();
    assert!(c.user_pass(&ben.name, "sys-pw").starts_with("+OK maildrop has 1 messages"), "{}", d.log());
}

/// An account that is `user` itself (the pre-login processes' uid) never
/// gets a session in inetd mode: it could reach other clients' processes.
#[test]
fn inetd_refuses_the_account_pre_login_sessions_run_as() {
    if !is_root() {
        eprintln!("skipped: needs root to create users");
        return;
    }
    let ann = LocalUser::new("su");
    let spool = Spool::new();
    let accounts = AccountFiles::new(&spool, &[(&ann, hash("-6"), AGING)]);
    let passwd = accounts.dir.join("passwd");
    let text = fs::read_to_string(&passwd).unwrap();
    fs::write(&passwd, text.replace(&format!(":{}:{}:", ann.uid, ann.gid), &format!(":{}:{}:", nobody(), ann.gid)))
        .unwrap();
    spool.write_mbox(&ann.name, &message("one"));
    let conf = accounts.config(&["log = syslog"]);
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    let path = spool.config(&conf);
    settle(&spool, &ann, 0o600, true);
    let mut c = Client::inetd_conf(&path, &[]);
    assert!(c.line().starts_with("+OK"));
    assert!(c.user_pass(&ann.name, "sys-pw").starts_with("-ERR [SYS/PERM]"));
    assert!(c.rest().is_empty());
}
