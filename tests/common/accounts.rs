//! Real unprivileged accounts for tests that need them (useradd/userdel, root only).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// useradd and userdel lock /etc/passwd: one at a time in this process.
static ACCOUNTS: Mutex<()> = Mutex::new(());

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A system account made for one test, removed when dropped.
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl LocalUser {
    pub fn new(tag: &str) -> LocalUser {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("p3{tag}{}", std::process::id() % 100_000);
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        LocalUser { name, uid, gid }
    }

    /// Runs a shell script as this user, in `dir`; it must succeed.
    pub fn run(&self, dir: &Path, script: &str) {
        let out = Command::new("sh")
            .args(["-ec", script])
            .current_dir(dir)
            .uid(self.uid)
            .gid(self.gid) // std drops root's supplementary groups with the uid
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Field `field` (2 the uid, 3 the primary gid) of account `name` in /etc/passwd.
fn passwd_field(name: &str, field: usize) -> u32 {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.split(':').next() == Some(name)).unwrap();
    line.split(':').nth(field).unwrap().parse().unwrap()
}

/// The uid of account `name`.
pub fn uid_of(name: &str) -> u32 {
    passwd_field(name, 2)
}

/// The primary gid of account `name`.
pub fn group_of(name: &str) -> u32 {
    passwd_field(name, 3)
}
