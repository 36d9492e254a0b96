//! `pop3d -t` and start-up refuse files others could change: state_dir, the users file, the configuration file, a log file reached through a link.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{pop3d, Spool};

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn check(conf: &Path) -> Output {
    pop3d().args(["-t", "-f", conf.to_str().unwrap()]).output().unwrap()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `pop3d -t` fails, and its message names `file` and contains `fix`.
fn refused(conf: &Path, file: &Path, fix: &str) {
    let out = check(conf);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&file.display().to_string()) && err.contains(fix), "{err}");
}

#[test]
fn unsafe_permissions_are_refused_each_with_the_file_and_the_fix() {
    let spool = Spool::new();
    let conf = spool.config(&[]);
    let ok = check(&conf);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let state = spool.dir.join("state");
    let users = spool.dir.join("users");
    for (mode, fix) in [(0o770, "chmod go-w"), (0o757, "world-writable"), (0o500, "chmod u+rwx")] {
        chmod(&state, mode);
        refused(&conf, &state, fix);
    }
    chmod(&state, 0o700);
    for (mode, fix) in [(0o644, "chmod o-rwx"), (0o642, "chmod o-rwx"), (0o660, "chmod g-w")] {
        chmod(&users, mode);
        refused(&conf, &users, fix);
    }
    chmod(&users, 0o640);
    chmod(&conf, 0o646);
    refused(&conf, &conf, "chmod o-w");
    chmod(&conf, 0o644);
    assert!(check(&conf).status.success());
    if !is_root() {
        eprintln!("skipped the ownership cases: they need root");
        return;
    }
    // pop3d runs as nobody: a state_dir of root's it cannot write, a users
    // file nobody owns (and so could rewrite).
    std::os::unix::fs::chown(&state, Some(0), None).unwrap();
    refused(&conf, &state, "chown nobody");
    spool.give_to_server();
    std::os::unix::fs::chown(&users, spool_owner(&state), None).unwrap();
    refused(&conf, &users, "writable by nobody");
    spool.give_to_server();
    assert!(check(&conf).status.success());
}

fn spool_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    Some(fs::metadata(path).unwrap().uid())
}

/// A log file is opened as root, before privileges are dropped: a link
/// planted in a directory others can write must not lead root elsewhere.
#[test]
fn a_log_file_link_is_not_followed() {
    let spool = Spool::new();
    let logs = spool.dir.join("logs");
    fs::create_dir(&logs).unwrap();
    chmod(&logs, 0o1777);
    let victim = spool.dir.join("victim");
    fs::write(&victim, b"precious\n").unwrap();
    for (name, target) in [("pop3d.log", &victim), ("dangling.log", &spool.dir.join("made"))] {
        let log = format!("log = {}", logs.join(name).display());
        let conf = spool.config(&[&log, "listen = 127.0.0.1:0"]);
        // Planted after `config` (which chowns the tree, following links).
        std::os::unix::fs::symlink(target, logs.join(name)).unwrap();
        let out = pop3d().args(["-f", conf.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("links are not followed"), "{err}");
        fs::remove_file(logs.join(name)).unwrap();
    }
    assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
    assert!(!spool.dir.join("made").exists());
}
