//! Opening what users can reach without following their links: mailboxes and the files in state_dir.
//!
//! Mailboxes are opened below the directory the operator fixed.
//!
//! Every session runs as one account that can read (and at UPDATE write)
//! every user's mailbox, so a path a user can change must not lead it
//! elsewhere. The rule (DESIGN.md, "Mailbox paths"):
//! - the part of the `mailbox` template before the first component holding
//!   `%u` is the operator's (`/var/mail`, `/home`) and is resolved as usual,
//!   links included;
//! - every component below it is opened with `openat(O_NOFOLLOW)` relative
//!   to the directory opened before it, so a symbolic link anywhere there is
//!   refused, and a directory swapped after the check changes nothing;
//! - the last one (an mbox) is opened with `O_NONBLOCK` (a FIFO cannot block
//!   the open), then `fstat`ed: only a regular file with a single link is
//!   used (a hard link could be another user's mailbox).
//!
//! Files in state_dir are opened without following a link in their last
//! component, and temporary files there are created anew with `O_EXCL`
//! (which never follows a link) before they are renamed into place.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

use crate::sys;

/// A refusal: the path leads somewhere a session must not go.
fn refused(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, what.to_string())
}

/// Words for an `openat(O_NOFOLLOW)` failure on `name`.
fn explain(e: io::Error, name: &OsStr) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => refused(format_args!("{} is a symbolic link (not followed)", name.to_string_lossy())),
        Some(libc::ENOTDIR) => {
            refused(format_args!("{} is not a directory (symbolic links are not followed)", name.to_string_lossy()))
        }
        _ => e,
    }
}

/// Opens the directories of `path` below `fixed` one by one without
/// following links; returns the last directory and the final name.
fn walk<'p>(fixed: &Path, path: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
    let rest = path.strip_prefix(fixed).map_err(|_| refused(format_args!("not below {}", fixed.display())))?;
    let mut names = Vec::new();
    for c in rest.components() {
        match c {
            Component::Normal(name) => names.push(name),
            _ => return Err(refused(format_args!("{} has `.` or `..` components", path.display()))),
        }
    }
    let last = names.pop().ok_or_else(|| refused("an empty mailbox path"))?;
    let mut dir = OwnedFd::from(File::open(fixed)?);
    for name in names {
        dir = sys::open_dir_at(dir.as_fd(), name).map_err(|e| explain(e, name))?;
    }
    Ok((dir, last))
}

/// Opens the mailbox file `path` below the operator's directory `fixed`
/// (read-only, or read-write with `write`), by the rule above. NotFound when
/// it (or a directory on the way) does not exist.
pub fn open_below(fixed: &Path, path: &Path, write: bool) -> io::Result<File> {
    let (dir, name) = walk(fixed, path)?;
    let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
    let file =
        File::from(sys::open_nofollow_at(dir.as_fd(), name, access | libc::O_NONBLOCK).map_err(|e| explain(e, name))?);
    regular_single(&file, name)?;
    Ok(file)
}

/// Opens the directory `path` below `fixed` by the same rule (a Maildir).
pub fn open_dir_below(fixed: &Path, path: &Path) -> io::Result<OwnedFd> {
    let (dir, name) = walk(fixed, path)?;
    sys::open_dir_at(dir.as_fd(), name).map_err(|e| explain(e, name))
}

/// Refuses anything but a regular file with one link.
fn regular_single(file: &File, name: &OsStr) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(format_args!("{} is not a regular file", name.to_string_lossy())));
    }
    if meta.nlink() != 1 {
        return Err(refused(format_args!(
            "{} has {} links (a hard link could be another user's mailbox)",
            name.to_string_lossy(),
            meta.nlink()
        )));
    }
    Ok(())
}

/// Opens a state_dir file for reading, not following a link, not blocking
/// on a FIFO, and only if it is a regular file. A link or anything else
/// not a regular file is InvalidData: not what pop3d wrote there.
pub fn open_state(path: &Path) -> io::Result<File> {
    open_state_for(path, false)
}

/// `open_state` for reading and writing (the UPDATE journal, whose state
/// byte is updated in place).
pub fn open_state_rw(path: &Path) -> io::Result<File> {
    open_state_for(path, true)
}

fn open_state_for(path: &Path, write: bool) -> io::Result<File> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{} {what}", path.display()));
    let opened =
        OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let file = match opened {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(invalid("is a symbolic link (not followed)")),
        other => other?,
    };
    if !file.metadata()?.is_file() {
        return Err(invalid("is not a regular file"));
    }
    Ok(file)
}

/// The whole text of a state_dir file (see `open_state`).
pub fn read_state(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open_state(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Whether a state_dir entry exists (a link counts, and is not followed).
pub fn state_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Creates a temporary state_dir file anew (mode 0600) for writing: whatever
/// was there (a link someone planted) is removed, and `O_EXCL` never
/// follows a link. The caller renames it into place.
pub fn create_temp(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Opens (creating it, mode 0600) a state_dir lock file, not following a
/// link (a dangling one would make us create its target) and not blocking
/// on a FIFO.
pub fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// `open_lock`, then waits for its lock; the lock goes with the returned file.
pub fn lock_state(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let file = open_lock(path)?;
    sys::flock_wait(file.as_raw_fd())?;
    Ok(file)
}

/// Replaces a state_dir file with `text` atomically (a temporary file
/// created anew, then renamed over it). A user's file `NAME.EXT` is written
/// as `NAME.EXT-new`, as the caches are: never as `NAME.new`, which for an
/// account named `penalties` or `logbudget` is another writer's temporary file.
pub fn replace_state(path: &Path, text: &str) -> io::Result<()> {
    let tmp = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => path.with_extension(format!("{ext}-new")),
        None => path.with_extension("new"),
    };
    let mut file = create_temp(&tmp)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_users_file_is_replaced_through_a_temporary_name_of_its_own() {
        let dir = TempDir::new("replace-state");
        // The penalty table's temporary file, being written by another session.
        std::fs::write(dir.join("penalties.new"), b"a 192.0.2.1 1.000 0 0\n").unwrap();
        // An account named `penalties` records a network.
        replace_state(&dir.join("penalties.known"), "192.0.2.0/24 1\n").unwrap();
        assert_eq!(std::fs::read(dir.join("penalties.new")).unwrap(), b"a 192.0.2.1 1.000 0 0\n");
        assert_eq!(std::fs::read_to_string(dir.join("penalties.known")).unwrap(), "192.0.2.0/24 1\n");
        replace_state(&dir.join("logbudget"), "x\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("logbudget")).unwrap(), "x\n");
    }

    #[test]
    fn links_fifos_and_hard_links_below_the_fixed_part_are_refused() {
        let dir = TempDir::new("nofollow");
        let fixed = dir.join("home");
        std::fs::create_dir_all(fixed.join("alice/mail")).unwrap();
        std::fs::create_dir_all(fixed.join("bob/mail")).unwrap();
        std::fs::write(fixed.join("bob/mail/mbox"), b"From bob\n\nsecret\n").unwrap();
        let alice = fixed.join("alice/mail/mbox");
        std::fs::write(&alice, b"From a\n\nmine\n").unwrap();
        assert!(open_below(&fixed, &alice, false).is_ok());
        assert!(open_below(&fixed, &alice, true).is_ok());
        // The fixed part may be a link (the operator's choice).
        symlink(&fixed, dir.join("homes")).unwrap();
        assert!(open_below(&dir.join("homes"), &dir.join("homes/alice/mail/mbox"), false).is_ok());
        let kind = |p: &Path| open_below(&fixed, p, false).unwrap_err().kind();
        std::fs::remove_file(&alice).unwrap();
        assert_eq!(kind(&alice), io::ErrorKind::NotFound);
        symlink("../../bob/mail/mbox", &alice).unwrap();
        assert_eq!(kind(&alice), io::ErrorKind::PermissionDenied, "a final link");
        std::fs::remove_file(&alice).unwrap();
        std::fs::hard_link(fixed.join("bob/mail/mbox"), &alice).unwrap();
        assert_eq!(kind(&alice), io::ErrorKind::PermissionDenied, "a hard link");
        std::fs::remove_file(&alice).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&alice).status().unwrap().success());
        assert_eq!(kind(&alice), io::ErrorKind::PermissionDenied, "a FIFO, without blocking");
        assert_eq!(open_below(&fixed, &alice, true).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        std::fs::remove_file(&alice).unwrap();
        std::fs::create_dir(&alice).unwrap();
        assert_eq!(kind(&alice), io::ErrorKind::PermissionDenied, "a directory");
        std::fs::remove_dir_all(fixed.join("alice/mail")).unwrap();
        symlink("../bob/mail", fixed.join("alice/mail")).unwrap();
        assert_eq!(kind(&alice), io::ErrorKind::PermissionDenied, "a linked directory on the way");
        assert!(open_dir_below(&fixed, &fixed.join("alice/mail")).is_err());
        assert!(open_below(&fixed, &dir.join("elsewhere/mbox"), false).is_err(), "outside the fixed part");
        assert!(open_below(&fixed, &fixed.join("alice/../bob/mail/mbox"), false).is_err(), "`..`");
    }

    #[test]
    fn state_files_never_follow_links() {
        let dir = TempDir::new("state");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let tmp = dir.join("u.journal-new");
        symlink(&victim, &tmp).unwrap();
        assert!(state_exists(&tmp));
        assert!(open_state(&tmp).is_err());
        assert!(read_state(&tmp).is_err());
        std::io::Write::write_all(&mut create_temp(&tmp).unwrap(), b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(read_state(&tmp).unwrap(), "new");
        let dangling = dir.join("u.uids-new");
        symlink(dir.join("created"), &dangling).unwrap();
        create_temp(&dangling).unwrap();
        assert!(!dir.join("created").exists());
    }
}
