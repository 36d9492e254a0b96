//! Mailbox locks shared with delivery agents (fcntl, flock, dotlock) and the per-maildrop session lock behind [IN-USE].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::limits::{DOTLOCK_STALE, LOCK_RETRY, MAX_DOTLOCK_RECORDS};
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
    /// Where the held dotlock is recorded for after a crash (see `Records`).
    record: Option<PathBuf>,
    held: Vec<LockMethod>,
}

/// A directory in `state_dir` that records, per maildrop, the dotlock this
/// process is taking or holds: a process killed while holding one (no
/// `Drop`, no panic hook) leaves the record, and the next pop3d process to
/// start removes the dotlock at once if its holder is dead, before a
/// delivery agent has to wait for it to grow stale.
#[derive(Debug, Clone)]
pub struct Records {
    pub dir: PathBuf,
    /// The record's name for this maildrop (the user name).
    pub name: String,
}

impl Records {
    /// The records directory in `state_dir`.
    pub fn dir_in(state_dir: &Path) -> PathBuf {
        state_dir.join("dotlocks")
    }
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
        records: &Records,
    ) -> Result<MboxLock<'a>, LockError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut lock = MboxLock { file, dotlock: None, record: None, held: Vec::new() };
            let mut busy = None;
            for &method in methods {
                let taken = match method {
                    LockMethod::Fcntl => fcntl_lock(file, exclusive),
                    LockMethod::Flock => flock(file, exclusive),
                    LockMethod::Dotlock => {
                        let dot = dotlock_path(path);
                        // Recorded before it is taken: a crash between the
                        // two leaves a record of nothing, which is harmless.
                        let record = write_record(records, &dot);
                        let taken = dotlock(&dot);
                        match (&taken, record) {
                            (Ok(true), record) => {
                                HELD_DOTLOCKS.lock().unwrap_or_else(|e| e.into_inner()).push(dot.clone());
                                lock.dotlock = Some(dot);
                                lock.record = record;
                            }
                            (_, Some(record)) => {
                                let _ = fs::remove_file(record);
                            }
                            (_, None) => {}
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
                    if let Some(record) = &self.record {
                        let _ = fs::remove_file(record);
                    }
                }
            }
        }
    }
}

/// Records that this process takes `dotlock` for `records.name`; None (and
/// a log line) when the record cannot be written, which only loses the
/// early clean-up after a crash.
fn write_record(records: &Records, dotlock: &Path) -> Option<PathBuf> {
    let path = records.dir.join(&records.name);
    let written = match fs::create_dir(&records.dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => crate::nofollow::create_temp(&path).and_then(|mut f| {
            // The process id first: the clean-up knows whose it was even
            // when the dotlock itself was never made.
            let mut text = format!("{}\n", std::process::id()).into_bytes();
            text.extend_from_slice(dotlock.as_os_str().as_encoded_bytes());
            f.write_all(&text)
        }),
    };
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            log::warn!("cannot record the dotlock in {}: {e}", path.display());
            None
        }
    }
}

/// Removes the dotlocks recorded in `dir` whose holder, a pop3d process on
/// this host, is dead (killed while it held them), and the records of locks
/// no longer held. Called when a process starts, before it serves anyone.
pub fn remove_stale_dotlocks(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten().take(MAX_DOTLOCK_RECORDS) {
        let record = entry.path();
        // A link planted among the records is not followed (state_dir rule).
        let read = crate::nofollow::open_state(&record).and_then(|f| {
            let mut text = Vec::new();
            f.take(4096).read_to_end(&mut text).map(|_| text)
        });
        let Ok(text) = read else { continue };
        // `PID\nDOTLOCK`; anything else is a record cut short by the crash,
        // written before any dotlock was made.
        let Some(nl) = text.iter().position(|&b| b == b'\n') else {
            let _ = fs::remove_file(&record);
            continue;
        };
        let pid = std::str::from_utf8(&text[..nl]).ok().and_then(|p| p.parse::<i32>().ok());
        let dotlock = PathBuf::from(std::ffi::OsString::from_vec(text[nl + 1..].to_vec()));
        match pid {
            Some(pid) if pid > 0 && !sys::process_exists(pid) => {
                // A dotlock being made when it died: its temporary file.
                let _ = fs::remove_file(temporary_dotlock(&dotlock, pid as u32));
            }
            _ => continue,
        }
        let removed = match holder(&dotlock) {
            Holder::LiveHere | Holder::Foreign => continue,
            Holder::DeadHere(pid) => match fs::remove_file(&dotlock) {
                Ok(()) => Some(pid),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    log::warn!("cannot remove dotlock {} of dead process {pid}: {e}", dotlock.display());
                    continue;
                }
            },
            Holder::Nobody => None,
        };
        let _ = fs::remove_file(&record);
        // Said once the record is gone too: the line means the cleanup is done.
        if let Some(pid) = removed {
            log::warn!("removed dotlock {} left by pop3d process {pid}, which died", dotlock.display());
        }
    }
}

/// Who holds a dotlock, as far as its content tells.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// No dotlock there.
    Nobody,
    /// `PID HOST` of a process alive on this host.
    LiveHere,
    /// `PID HOST` of a process on this host that no longer exists.
    DeadHere(i32),
    /// Anything else (another agent, another host, unreadable): only the
    /// age rule can judge it.
    Foreign,
}

fn holder(dotlock: &Path) -> Holder {
    let text = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(dotlock) {
        Ok(f) => {
            let mut buf = Vec::new();
            match io::Read::take(f, 256).read_to_end(&mut buf) {
                Ok(_) => buf,
                Err(_) => return Holder::Foreign,
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Holder::Nobody,
        Err(_) => return Holder::Foreign,
    };
    let text = String::from_utf8_lossy(&text);
    let mut fields = text.split_ascii_whitespace();
    let (Some(pid), Some(host), None) = (fields.next(), fields.next(), fields.next()) else {
        return Holder::Foreign;
    };
    let (Ok(pid), Some(here)) = (pid.parse::<i32>(), sys::hostname()) else {
        return Holder::Foreign;
    };
    if pid <= 0 || host != here {
        return Holder::Foreign;
    }
    if sys::process_exists(pid) {
        Holder::LiveHere
    } else {
        Holder::DeadHere(pid)
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

/// Creates `path` exclusively, holding `PID HOST` (as liblockfile writes
/// it); removes it first when it is stale: at once when its holder was a
/// pop3d process on this host that is gone, else after `DOTLOCK_STALE`.
fn dotlock(path: &Path) -> io::Result<bool> {
    match create_dotlock(path) {
        Ok(false) => {
            if let Holder::DeadHere(pid) = holder(path) {
                log::warn!("removing dotlock {} of process {pid}, which died", path.display());
                let _ = fs::remove_file(path);
                return create_dotlock(path);
            }
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
        other => other,
    }
}

/// Creates the dotlock `path` if nobody holds it; false if somebody does.
/// It appears with its content or not at all: written under a temporary
/// name first, then linked into place (as liblockfile does), so a kill
/// never leaves an empty dotlock that only the age rule could remove.
/// Where the filesystem has no hard links, it is created and written.
fn create_dotlock(path: &Path) -> io::Result<bool> {
    let host = sys::hostname().unwrap_or_else(|| "localhost".into());
    let content = format!("{} {host}\n", std::process::id());
    let tmp = temporary_dotlock(path, std::process::id());
    let _ = fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(content.as_bytes()));
    let linked = written.and_then(|_| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            match OpenOptions::new().write(true).create_new(true).mode(0o644).open(path) {
                Ok(mut f) => f.write_all(content.as_bytes()).map(|_| true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The temporary name process `pid` writes the dotlock `path` under.
fn temporary_dotlock(path: &Path, pid: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".pop3d-{pid}"));
    PathBuf::from(p)
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
        let file = crate::nofollow::open_lock(&path)?;
        Ok(flock(&file, true)?.then_some(SessionLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;

    /// A record planted as a link (to text naming a "dotlock" of a dead
    /// pop3d) is not followed: the file it names stays.
    #[test]
    fn a_linked_dotlock_record_is_not_followed() {
        let dir = TempDir::new("records-link");
        let records = dir.join("dotlocks");
        fs::create_dir(&records).unwrap();
        let victim = dir.join("victim");
        let dead = 2_147_483_646;
        fs::write(&victim, format!("{dead} {}\n", sys::hostname().unwrap())).unwrap();
        fs::write(temporary_dotlock(&victim, dead as u32), b"x").unwrap();
        fs::write(dir.join("bait"), format!("{dead}\n{}", victim.display())).unwrap();
        std::os::unix::fs::symlink(dir.join("bait"), records.join("alice")).unwrap();
        remove_stale_dotlocks(&records);
        assert!(victim.exists() && temporary_dotlock(&victim, dead as u32).exists());
        // The same text in a real record is acted on (the test's control).
        fs::remove_file(records.join("alice")).unwrap();
        fs::copy(dir.join("bait"), records.join("alice")).unwrap();
        remove_stale_dotlocks(&records);
        assert!(!victim.exists());
    }

    fn records(dir: &TempDir) -> Records {
        Records { dir: Records::dir_in(dir.path()), name: "u".into() }
    }

    /// The pid of a process that has just ended (not reused so soon).
    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

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
        let held =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap();
        assert!(dir.join("u.lock").exists());
        let second =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::from_millis(120), &records(&dir));
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
        let lock =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap();
        assert!(held(dir.path()));
        drop(lock);
        assert!(!held(dir.path()) && !dir.join("u.lock").exists(), "dropping the lock forgets it");
        // What an aborting panic does instead of the Drop that never runs:
        let lock =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap();
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
        let busy = MboxLock::acquire(&mbox, &file, &methods, true, Duration::from_millis(120), &records(&dir));
        assert!(matches!(busy, Err(LockError::Busy(LockMethod::Dotlock))));
        // The flock taken before the busy dotlock was given back: another
        // open file description can take it at once.
        let other = File::open(&mbox).unwrap();
        assert!(flock(&other, true).unwrap(), "flock still held after a failed acquire");
        drop(other);
        fs::remove_file(dir.join("u.lock")).unwrap();
        let held = MboxLock::acquire(&mbox, &file, &methods, true, Duration::ZERO, &records(&dir)).unwrap();
        assert_eq!(held.held, methods);
        drop(held);
    }

    /// A directory with an mbox `u` (created and opened), its dotlock's path
    /// and this host's name.
    fn dotlocked_mbox(tag: &str) -> (TempDir, PathBuf, File, PathBuf, String) {
        let dir = TempDir::new(tag);
        let mbox = dir.join("u");
        let file = File::create(&mbox).unwrap();
        let dot = dir.join("u.lock");
        (dir, mbox, file, dot, sys::hostname().unwrap())
    }

    #[test]
    fn a_dotlock_says_who_holds_it_and_a_dead_holders_goes_at_once() {
        let (dir, mbox, file, dot, host) = dotlocked_mbox("dead");
        let lock =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap();
        assert_eq!(fs::read_to_string(&dot).unwrap(), format!("{} {host}\n", std::process::id()));
        assert_eq!(holder(&dot), Holder::LiveHere);
        drop(lock);
        // Left by a pop3d process on this host that is gone: taken at once.
        let pid = dead_pid();
        fs::write(&dot, format!("{pid} {host}\n")).unwrap();
        assert_eq!(holder(&dot), Holder::DeadHere(pid));
        let lock = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir));
        assert!(lock.is_ok(), "a dead holder's dotlock is not waited for");
        drop(lock);
        // Another host's, a bare pid, or procmail's empty file: only the age rule.
        for foreign in [format!("{pid} elsewhere.example\n"), format!("{pid}\n"), String::new()] {
            fs::write(&dot, &foreign).unwrap();
            assert_eq!(holder(&dot), Holder::Foreign, "{foreign:?}");
            let busy = MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir));
            assert!(matches!(busy, Err(LockError::Busy(LockMethod::Dotlock))), "{foreign:?}");
        }
    }

    /// A process killed while holding a dotlock leaves its record; the next
    /// process to start removes that dotlock, and only when its holder died.
    #[test]
    fn recorded_dotlocks_of_dead_processes_are_removed_at_start() {
        let (dir, mbox, file, dot, host) = dotlocked_mbox("records");
        let lock =
            MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap();
        let record = Records::dir_in(dir.path()).join("u");
        let recorded = [format!("{}\n", std::process::id()).as_bytes(), dot.as_os_str().as_encoded_bytes()].concat();
        assert_eq!(fs::read(&record).unwrap(), recorded);
        // Held by a live process (this one): both stay.
        remove_stale_dotlocks(&Records::dir_in(dir.path()));
        assert!(dot.exists() && record.exists());
        // What a kill leaves: the record and the dotlock of a dead pid (or
        // only its temporary file, killed before the link).
        std::mem::forget(lock);
        remove_held_dotlocks_under(dir.path());
        let dead = dead_pid();
        fs::write(&dot, format!("{dead} {host}\n")).unwrap();
        let tmp = temporary_dotlock(&dot, dead as u32);
        fs::write(&tmp, format!("{dead} {host}\n")).unwrap();
        fs::write(&record, [format!("{dead}\n").as_bytes(), dot.as_os_str().as_encoded_bytes()].concat()).unwrap();
        remove_stale_dotlocks(&Records::dir_in(dir.path()));
        assert!(!dot.exists(), "the dead holder's dotlock is gone");
        assert!(!tmp.exists(), "and its temporary file");
        assert!(!record.exists(), "and its record");
        // A released lock leaves no record.
        drop(MboxLock::acquire(&mbox, &file, &[LockMethod::Dotlock], true, Duration::ZERO, &records(&dir)).unwrap());
        assert!(!record.exists() && !dot.exists());
    }
}
