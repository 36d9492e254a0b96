//! What EXPIRE and LOGIN-DELAY remember in state_dir: last logins, and when messages were first retrieved.
//!
//! Each user's last login time (`USER.login`) and when each message was
//! first retrieved (`USER.retrieved`), kept across sessions, restarts and
//! crashes.
//!
//! `USER.retrieved` is appended one line (`UIDL SECONDS`) at each first
//! RETR of a message, so a session that dies after RETR still has it on
//! disk; a torn last line from a crash is ignored. UPDATE rewrites the
//! file with the messages that are still there (a temporary file renamed
//! into place, so a crash leaves the old or the new one). Files are opened
//! without following links: state_dir holds every user's records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    o
}

/// Replaces `path` with `text`, durably: a temporary file, synced, renamed.
fn replace(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text).and_then(|_| f.sync_all()));
    let placed = written.and_then(|_| std::fs::rename(&tmp, path));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read(path: &Path) -> io::Result<Option<String>> {
    match open_options().read(true).open(path) {
        Ok(f) => io::read_to_string(f).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A user's last login time (LOGIN-DELAY), in `state_dir/USER.login`.
pub struct LastLogin(PathBuf);

impl LastLogin {
    pub fn new(state_dir: &Path, user: &str) -> LastLogin {
        LastLogin(state_dir.join(format!("{user}.login")))
    }

    /// Seconds to wait before the next login is allowed, for `delay`
    /// seconds between logins (a clock set back counts as a fresh login).
    pub fn wait(&self, delay: u64, now: u64) -> io::Result<u64> {
        let Some(text) = read(&self.0)? else { return Ok(0) };
        let Ok(last) = text.trim().parse::<u64>() else { return Ok(0) };
        Ok((last.saturating_add(delay)).saturating_sub(now).min(delay))
    }

    /// Records a login at `now`.
    pub fn record(&self, now: u64) -> io::Result<()> {
        replace(&self.0, format!("{now}\n").as_bytes())
    }
}

/// When each of a user's messages was first retrieved (EXPIRE), by UIDL.
pub struct Retrievals {
    path: PathBuf,
    first: HashMap<String, u64>,
    /// Opened for appending at the first new retrieval.
    file: Option<File>,
}

impl Retrievals {
    /// Reads `state_dir/USER.retrieved` (none yet: empty).
    pub fn load(state_dir: &Path, user: &str) -> io::Result<Retrievals> {
        let path = state_dir.join(format!("{user}.retrieved"));
        let mut first = HashMap::new();
        if let Some(text) = read(&path)? {
            // Only whole lines: a crash may have cut the last one, which is
            // dropped from the file before anything is appended to it.
            let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
            if whole.len() < text.len() {
                replace(&path, whole.as_bytes())?;
            }
            for line in whole.lines() {
                if let Some((uid, secs)) = line.split_once(' ') {
                    if let Ok(secs) = secs.parse::<u64>() {
                        first.entry(uid.to_string()).or_insert(secs);
                    }
                }
            }
        }
        Ok(Retrievals { path, first, file: None })
    }

    /// When `uid` was first retrieved, if it was.
    pub fn get(&self, uid: &str) -> Option<u64> {
        self.first.get(uid).copied()
    }

    /// Notes that `uid` was retrieved at `now`, unless it was before; the
    /// line is on disk (in the page cache) before this returns.
    pub fn note(&mut self, uid: &str, now: u64) -> io::Result<()> {
        if self.first.contains_key(uid) {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(open_options().append(true).create(true).open(&self.path)?);
        }
        if let Some(f) = &mut self.file {
            f.write_all(format!("{uid} {now}\n").as_bytes())?;
        }
        self.first.insert(uid.to_string(), now);
        Ok(())
    }

    /// Makes the retrievals noted so far durable (at the end of a session).
    pub fn sync(&self) -> io::Result<()> {
        self.file.as_ref().map_or(Ok(()), File::sync_data)
    }

    /// After UPDATE: keeps only the messages still in the maildrop.
    pub fn keep_only<'a>(&mut self, uids: impl Iterator<Item = &'a str>) -> io::Result<()> {
        let kept: HashMap<String, u64> = uids.filter_map(|u| Some((u.to_string(), self.get(u)?))).collect();
        if kept.len() == self.first.len() {
            return self.sync();
        }
        let mut text = String::new();
        for (uid, secs) in &kept {
            text.push_str(&format!("{uid} {secs}\n"));
        }
        self.file = None;
        self.first = kept;
        replace(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;

    #[test]
    fn last_login_spacing() {
        let dir = TempDir::new("login");
        let l = LastLogin::new(dir.path(), "u");
        assert_eq!(l.wait(900, 1000).unwrap(), 0, "never logged in");
        l.record(1000).unwrap();
        assert_eq!(l.wait(900, 1000).unwrap(), 900);
        assert_eq!(l.wait(900, 1899).unwrap(), 1);
        assert_eq!(l.wait(900, 1900).unwrap(), 0);
        assert_eq!(l.wait(900, 10).unwrap(), 900, "clock set back: bounded by the delay");
        assert_eq!(l.wait(0, 1000).unwrap(), 0);
    }

    #[test]
    fn retrievals_survive_a_torn_line_and_are_compacted() {
        let dir = TempDir::new("retr");
        let mut r = Retrievals::load(dir.path(), "u").unwrap();
        r.note("a", 10).unwrap();
        r.note("b", 20).unwrap();
        r.note("a", 30).unwrap();
        // A crash in the middle of a third line.
        let path = dir.join("u.retrieved");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"c 4").unwrap();
        let mut r = Retrievals::load(dir.path(), "u").unwrap();
        assert_eq!((r.get("a"), r.get("b"), r.get("c")), (Some(10), Some(20), None));
        r.note("c", 40).unwrap();
        assert_eq!(Retrievals::load(dir.path(), "u").unwrap().get("c"), Some(40), "the torn line is gone");
        r.keep_only(["b", "c", "z"].into_iter()).unwrap();
        let r = Retrievals::load(dir.path(), "u").unwrap();
        assert_eq!((r.get("a"), r.get("b"), r.get("c")), (None, Some(20), Some(40)));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["u.retrieved"]);
    }
}
