//! Mailbox locks shared with delivery agents (fcntl, flock, dotlock) and the per-maildrop session lock behind [IN-USE].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::limits::{DOTLOCK_STALE, LOCK_RETRY};
use crate::sys::{self, Locked};

/// One kind of mailbox lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMethod {
    Fcntl,
    Flock,
    Dotlock,
}

impl LockMethod {
    pub fn parse(name: &str) -> Option<LockMethod> {
        match name {
            "fcntl" => Some(LockMethod::Fcntl),
            "flock" => Some(LockMethod::Flock),
            "dotlock" => Some(LockMethod::Dotlock),
            _ => None,
        }
    }
}

/// Errors taking a lock.
#[derive(Debug)]
pub enum LockError {
    /// Someone else held it for the whole timeout.
    Busy(LockMethod),
    Io(LockMethod, io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(m) => write!(f, "{m:?} lock busy"),
            LockError::Io(m, e) => write!(f, "{m:?} lock failed: {e}"),
        }
    }
}

/// The dotlocks this process holds now. Built with panic = "abort", a panic
/// runs no `Drop`: the panic hook removes them (`remove_held_dotlocks`), so
/// delivery is not held off until they go stale. (The kernel drops fcntl
/// and flock locks with the process.)
static HELD_DOTLOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every dotlock this process holds; for the panic hook of an
/// aborting build, just before the process ends.
pub fn remove_held_dotlocks() {
    remove_held_dotlocks_under(Path::new("/"));
}

fn remove_held_dotlocks_under(dir: &Path) {
    // try_lock: the panic may have come while the list was locked.
    if let Ok(mut held) = HELD_DOTLOCKS.try_lock() {
        held.retain(|p| {
            let ours = p.starts_with(dir);
            if ours {
                let _ = fs::remove_file(p);
            }
            !ours
        });
    }
}

/// The locks held on an mbox; released in reverse order when dropped.
pub struct MboxLock<'a> {
    file: &'a File,
    dotlock: Option<PathBuf>,
    held: Vec<LockMethod>,
}

impl<'a> MboxLock<'a> {
    /// Takes every lock in `methods`, in order, trying until `timeout`
    /// passes. `exclusive` selects a write lock (fcntl/flock need a file
    /// open for writing then). When one is busy, every lock already taken is
    /// given back before the next attempt: a delivery agent that takes the
    /// same locks in another order (procmail: dotlock first) never waits on
    /// us while we wait on it.
    pub fn acquire(
        path: &Path,
        file: &'a File,
        methods: &[LockMethod],
        exclusive: bool,
        timeout: Duration,
    ) -> Result<MboxLock<'a>, LockError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut lock = MboxLock { file, dotlock: None, held: Vec::new() };
            let mut busy = None;
            for &method in methods {
                let taken = match method {
                    LockMethod::Fcntl => fcntl_lock(file, exclusive),
                    LockMethod::Flock => flock(file, exclusive),
                    LockMethod::Dotlock => {
                        let dot = dotlock_path(path);
                        let taken = dotlock(&dot);
                        if matches!(taken, Ok(true)) {
                            HELD_DOTLOCKS.lock().unwrap_or_else(|e| e.into_inner()).push(dot.clone());
                            lock.dotlock = Some(dot);
                        }
                        taken
                    }
                };
                match taken {
                    Ok(true) => lock.held.push(method),
                    Ok(false) => {
                        busy = Some(method);
                        break;
                    }
                    Err(e) => return Err(LockError::Io(method, e)),
                }
            }
            let Some(method) = busy else { return Ok(lock) };
            // Give back what we hold (dropping `lock`), then wait.
            drop(lock);
            if Instant::now() >= deadline {
                return Err(LockError::Busy(method));
            }
            std::thread::sleep(LOCK_RETRY);
        }
    }
}

impl Drop for MboxLock<'_> {
    fn drop(&mut self) {
        for method in self.held.iter().rev() {
            let fd = self.file.as_raw_fd();
            match method {
                LockMethod::Fcntl => {
                    let _ = sys::fcntl_lock(fd, libc::F_UNLCK);
                }
                LockMethod::Flock => {
                    let _ = sys::flock(fd, libc::LOCK_UN);
                }
                LockMethod::Dotlock => {
                    if let Some(dot) = &self.dotlock {
                        let mut held = HELD_DOTLOCKS.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(i) = held.iter().position(|p| p == dot) {
                            held.swap_remove(i);
                        }
                        let _ = fs::remove_file(dot);
                    }
                }
            }
        }
    }
}

fn fcntl_lock(file: &File, exclusive: bool) -> io::Result<bool> {
    let kind = if exclusive { libc::F_WRLCK } else { libc::F_RDLCK };
    Ok(matches!(sys::fcntl_lock(file.as_raw_fd(), kind)?, Locked::Yes))
}

fn flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    Ok(matches!(sys::flock(file.as_raw_fd(), op)?, Locked::Yes))
}

fn dotlock_path(mbox: &Path) -> PathBuf {
    let mut p = mbox.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Creates `path` exclusively; removes it first when it is stale.
fn dotlock(path: &Path) -> io::Result<bool> {
    match OpenOptions::new().write(true).create_new(true).mode(0o644).open(path) {
        Ok(mut f) => {
            let _ = writeln!(f, "{}", std::process::id());
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let age = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > DOTLOCK_STALE) {
                log::warn!("removing stale dotlock {}", path.display());
                let _ = fs::remove_file(path);
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Held for a whole session: a second session for the same maildrop, in this
/// process or another, cannot take it. The kernel drops it if we die.
pub struct SessionLock {
    _file: File,
}

impl SessionLock {
    /// Ok(None) when another session holds it.
    pub fn try_acquire(state_dir: &Path, user: &str) -> io::Result<Option<SessionLock>> {
        let path = state_dir.join(format!("{user}.session"));
        // A link planted there is not followed (a dangling one would make us
        // create its target).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        Ok(flock(&file, true)?.then_some(SessionLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;

    #[test]
    fn session_lock_is_exclusive_within_a_process() {
        let dir = TempDir::new("lock");
        let first = SessionLock::try_acquire(dir.path(), "u").unwrap();
        assert!(first.is_some());
        assert!(SessionLock::try_acquire(dir.path(), "u").unwrap().is_none());
        drop(first);
        assert!(SessionLock::try_acquire(dir.path(), "u").unwrap().is_some());
    }

    #[test]
    fn dotlock_waits_then_times_out() {
        let dir = TempDir::new("dot");
        let mbox = dir.join("u");
        let file = File::create(&mbox).unwrap();
        let held = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO).unwrap();
        assert!(dir.join("u.lock").exists());
        let second = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::from_millis(120));
        assert!(matches!(second, Err(LockError::Busy(LockMethod::Dotlock))));
        drop(held);
        assert!(!dir.join("u.lock").exists());
    }

    #[test]
    fn held_dotlocks_are_known_for_the_panic_hook() {
        let dir = TempDir::new("held");
        let mbox = dir.join("u");
        let file = File::create(&mbox).unwrap();
        let held = |d: &Path| HELD_DOTLOCKS.lock().unwrap().iter().any(|p| p.starts_with(d));
        let lock = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO).unwrap();
        assert!(held(dir.path()));
        drop(lock);
        assert!(!held(dir.path()) && !dir.join("u.lock").exists(), "dropping the lock forgets it");
        // What an aborting panic does instead of the Drop that never runs:
        let lock = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO).unwrap();
        remove_held_dotlocks_under(dir.path());
        assert!(!held(dir.path()) && !dir.join("u.lock").exists(), "the hook removed the dotlock");
        std::mem::forget(lock);
    }

    #[test]
    fn a_busy_lock_gives_back_the_ones_taken_before_it() {
        let dir = TempDir::new("order");
        let mbox = dir.join("u");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&mbox).unwrap();
        // Another holder has the dotlock (as procmail takes it first).
        fs::write(dir.join("u.lock"), b"1\n").unwrap();
        let methods = [LockMethod::Flock, LockMethod::Dotlock];
        let busy = MboxLock::acquire(&mbox, &file, &methods, true, Duration::from_millis(120));
        assert!(matches!(busy, Err(LockError::Busy(LockMethod::Dotlock))));
        // The flock taken before the busy dotlock was given back: another
        // open file description can take it at once.
        let other = File::open(&mbox).unwrap();
        assert!(flock(&other, true).unwrap(), "flock still held after a failed acquire");
        drop(other);
        fs::remove_file(dir.join("u.lock")).unwrap();
        let held = MboxLock::acquire(&mbox, &file, &methods, true, Duration::ZERO).unwrap();
        assert_eq!(held.held, methods);
        drop(held);
    }
}
