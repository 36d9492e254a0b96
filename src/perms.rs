//! Start-up and `pop3d -t` checks of who may write what pop3d trusts: state_dir, the users and config files.
//!
//! Each refusal names the file and the fix. The "daemon's user" is `user`
//! when pop3d starts as root (it switches to it), else the account it runs
//! as.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::{AccountSource, Config};
use crate::sys;

/// The account sessions run as: its name (for messages), uid and gid.
struct DaemonUser {
    name: String,
    uid: u32,
    gid: u32,
    /// pop3d starts as root and switches to it (so it can own nothing root needs).
    switches: bool,
}

fn daemon_user(config: &Config) -> Result<DaemonUser, String> {
    if sys::is_root() {
        let name = config.user.clone().unwrap_or_default();
        let (uid, gid) = sys::user_ids(&name).ok_or_else(|| format!("user {name:?} does not exist"))?;
        Ok(DaemonUser { name, uid, gid, switches: true })
    } else {
        let (uid, gid) = sys::effective_ids();
        Ok(DaemonUser { name: format!("uid {uid}"), uid, gid, switches: false })
    }
}

/// Checks state_dir, the users file and (if any) the configuration file.
/// In inetd mode with system accounts, started as root, state_dir is
/// root's (see `handover`): its checks are made there, when it is used.
pub fn check(config: &Config, config_file: Option<&Path>, inetd: bool) -> Result<(), String> {
    let user = daemon_user(config)?;
    let system = config.accounts == AccountSource::System;
    if system && inetd && user.switches {
        let m = std::fs::metadata(&config.state_dir)
            .map_err(|e| format!("state_dir {}: {e}", config.state_dir.display()))?;
        root_state_dir(&config.state_dir, &m)?;
    } else {
        check_state_dir(&config.state_dir, &user).map_err(|e| match system && user.switches {
            true => format!("{e} (for -i with system accounts state_dir is root's: check with `pop3d -i -t`)"),
            false => e,
        })?;
    }
    if system {
        check_account_file("passwd_file", &config.account_files.passwd, &user, false)?;
        check_account_file("shadow_file", &config.account_files.shadow, &user, true)?;
    } else {
        check_users_file(&config.users_file, &user)?;
    }
    if let Some(file) = config_file {
        check_config_file(file)?;
    }
    Ok(())
}

/// state_dir decides what UPDATE writes into mailboxes (its journals): only
/// the daemon's user may write it, and it must be able to.
fn check_state_dir(dir: &Path, user: &DaemonUser) -> Result<(), String> {
    let d = dir.display();
    let m = std::fs::metadata(dir).map_err(|e| format!("state_dir {d}: {e}"))?;
    let mode = m.mode() & 0o7777;
    if m.uid() != user.uid {
        return Err(format!(
            "state_dir {d} belongs to uid {}, not to {} (pop3d's sessions): `chown {} {d}`",
            m.uid(),
            user.name,
            user.name
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!("state_dir {d} is writable by others (mode {mode:04o}): `chmod go-w {d}`"));
    }
    if mode & 0o300 != 0o300 {
        return Err(format!(
            "state_dir {d} is not writable by its owner {} (mode {mode:04o}): `chmod u+rwx {d}`",
            user.name
        ));
    }
    Ok(())
}

/// The users file holds password hashes: readable by its owner and group
/// (`root:mail 0640`), never by everyone, writable by nobody but its owner,
/// and that owner is not the account sessions run as.
fn check_users_file(file: &Path, user: &DaemonUser) -> Result<(), String> {
    let f = file.display();
    let m = std::fs::metadata(file).map_err(|e| format!("users_file {f}: {e}"))?;
    let mode = m.mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!("users_file {f} is readable or writable by everyone (mode {mode:04o}): `chmod o-rwx {f}`"));
    }
    if mode & 0o020 != 0 {
        return Err(format!("users_file {f} is writable by its group (mode {mode:04o}): `chmod g-w {f}`"));
    }
    if user.switches && m.uid() == user.uid && mode & 0o200 != 0 {
        return Err(format!(
            "users_file {f} is writable by {} (pop3d's sessions could change passwords): \
             `chown root:{} {f}; chmod 0640 {f}`",
            user.name, user.gid
        ));
    }
    Ok(())
}

/// inetd mode with system accounts: state_dir is root's and writable by
/// nobody else, since root makes each user's directory in it (`handover`).
pub fn root_state_dir(dir: &Path, m: &std::fs::Metadata) -> Result<(), String> {
    if m.uid() != 0 || m.mode() & 0o022 != 0 || !m.is_dir() {
        return Err(format!(
            "state_dir {0}: with `accounts = system` and -i it must be a directory of root's, writable by \
             nobody else (`chown root: {0}; chmod 0711 {0}`): each user's session keeps its state below it",
            dir.display()
        ));
    }
    Ok(())
}

/// passwd and shadow decide who logs in as which uid: root's when pop3d
/// starts as root, writable by nobody else; shadow readable by no one but
/// its owner and group.
fn check_account_file(key: &str, file: &Path, user: &DaemonUser, secret: bool) -> Result<(), String> {
    let f = file.display();
    let m = std::fs::metadata(file).map_err(|e| format!("{key} {f}: {e}"))?;
    let mode = m.mode() & 0o7777;
    if user.switches && m.uid() != 0 {
        return Err(format!("{key} {f} belongs to uid {}, not to root: `chown root {f}`", m.uid()));
    }
    if mode & 0o022 != 0 {
        return Err(format!("{key} {f} is writable by others (mode {mode:04o}): `chmod go-w {f}`"));
    }
    if secret && mode & 0o004 != 0 {
        return Err(format!("{key} {f} is readable by everyone (mode {mode:04o}): `chmod o-r {f}`"));
    }
    Ok(())
}

/// The configuration names every file above: nobody but its owner and group may write it.
fn check_config_file(file: &Path) -> Result<(), String> {
    let f = file.display();
    let m = std::fs::metadata(file).map_err(|e| format!("{f}: {e}"))?;
    let mode = m.mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(format!("configuration file {f} is writable by everyone (mode {mode:04o}): `chmod o-w {f}`"));
    }
    Ok(())
}
