//! Maildir maildrops: one file per message in `new/` and `cur/`, listed at login, streamed like mbox messages, unlinked at UPDATE; no locks.
//!
//! Delivery agents write a message in `tmp/` and rename it into `new/`, so a
//! listed file is complete and never changes; a mail reader on the box may
//! move it to `cur/` or rename it with flags (`NAME:2,S`), which keeps the
//! unique part before the `:`. That part identifies a message: its MD5 is
//! the UIDL, and a message that moved is found again by it.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use md5::{Digest, Md5};

use crate::maildrop::Listed;
use crate::mbox::stream::{self, Part};
use crate::mbox::{MaildropError, MboxFormat, MboxSettings, Message, Uid};
use crate::reply::MessageSink;

/// The two directories that hold delivered mail, in the order they are read.
const SUBDIRS: [&str; 2] = ["cur", "new"];

/// A message file as listed at login.
struct Entry {
    subdir: &'static str,
    name: OsString,
}

/// The unique part of a Maildir file name: everything before the `:` that
/// starts the flags.
fn unique(name: &OsStr) -> &[u8] {
    let bytes = name.as_bytes();
    bytes.iter().position(|&b| b == b':').map_or(bytes, |i| &bytes[..i])
}

/// Delivery order: the seconds a unique name starts with (`1700000000.…`),
/// then the name.
fn order_key(name: &OsStr) -> (u64, &[u8]) {
    let unique = unique(name);
    let digits = unique.iter().take_while(|b| b.is_ascii_digit()).count();
    let secs = std::str::from_utf8(&unique[..digits]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    (secs, unique)
}

/// The messages of one Maildir as they were at login, with deletion marks.
pub struct Maildir {
    root: PathBuf,
    entries: Vec<Entry>,
    messages: Vec<Message>,
    deleted: Vec<bool>,
}

impl Listed for Maildir {
    fn messages(&self) -> &[Message] {
        &self.messages
    }

    fn marks(&self) -> &[bool] {
        &self.deleted
    }

    fn marks_mut(&mut self) -> &mut [bool] {
        &mut self.deleted
    }
}

impl Maildir {
    /// Lists `root/cur` and `root/new` (a missing Maildir is an empty
    /// maildrop) and reads every message once for its size on the wire.
    pub fn open(root: PathBuf, settings: &MboxSettings) -> Result<Maildir, MaildropError> {
        let mut drop = Maildir { root, entries: Vec::new(), messages: Vec::new(), deleted: Vec::new() };
        match fs::metadata(&drop.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(MaildropError::Corrupt("not a Maildir directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(drop),
            Err(e) => return Err(e.into()),
        }
        let mut listed = Vec::new();
        for subdir in SUBDIRS {
            let dir = match fs::read_dir(drop.root.join(subdir)) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in dir {
                let entry = entry?;
                let name = entry.file_name();
                if name.as_bytes().starts_with(b".") || !entry.file_type()?.is_file() {
                    continue;
                }
                if listed.len() >= settings.max_messages {
                    return Err(MaildropError::TooLarge(format!("more than {} messages", settings.max_messages)));
                }
                listed.push(Entry { subdir, name });
            }
        }
        // A message a mail reader moved from new/ to cur/ while we listed
        // shows up twice: keep the first (cur/, listed first; the sort is stable).
        listed.sort_by(|a, b| order_key(&a.name).cmp(&order_key(&b.name)));
        listed.dedup_by(|later, first| unique(&later.name) == unique(&first.name));
        let mut total = 0u64;
        for entry in listed {
            let file = match File::open(drop.root.join(entry.subdir).join(&entry.name)) {
                Ok(file) => file,
                // Removed by someone else since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let len = file.metadata()?.len();
            total = total.saturating_add(len);
            if total > settings.max_size {
                return Err(MaildropError::TooLarge(format!("over {} bytes", settings.max_size)));
            }
            let size = stream::wire_size(io::Read::take(&file, len), MboxFormat::Unquoted)?;
            let uid = Uid { digest: Md5::digest(unique(&entry.name)).into(), copy: 0 };
            drop.messages.push(Message { start: 0, content: 0, end: len, size, uid, head: 0 });
            drop.entries.push(entry);
        }
        drop.deleted = vec![false; drop.messages.len()];
        Ok(drop)
    }

    /// Where message `i` (0-based) is now: where it was listed, or, if a
    /// mail reader moved or renamed it since, the file with its unique name.
    fn locate(&self, i: usize) -> Option<PathBuf> {
        let entry = self.entries.get(i)?;
        let listed = self.root.join(entry.subdir).join(&entry.name);
        if fs::symlink_metadata(&listed).is_ok() {
            return Some(listed);
        }
        let want = unique(&entry.name);
        SUBDIRS.iter().find_map(|subdir| {
            let dir = self.root.join(subdir);
            fs::read_dir(&dir).ok()?.flatten().map(|e| e.file_name()).find(|n| unique(n) == want).map(|n| dir.join(n))
        })
    }

    /// Whether message `n`'s file still exists (in `cur/` or `new/`).
    pub fn still_listed(&self, n: u32) -> bool {
        self.get(n).is_some() && self.locate(n as usize - 1).is_some()
    }

    /// Sends message `n` byte-stuffed (without the final `.` line).
    /// Returns the octets sent, or None if there is no such message.
    pub fn send<W: MessageSink>(&self, n: u32, part: Part, out: &mut W) -> Option<io::Result<u64>> {
        let msg = self.get(n)?;
        let sent = self
            .locate(n as usize - 1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "message file removed since login"))
            .and_then(File::open)
            .and_then(|file| stream::send(&file, msg, MboxFormat::Unquoted, part, out));
        Some(sent)
    }

    /// UPDATE: unlinks the marked messages' files, then syncs the
    /// directories. A file already gone (another client deleted it) counts
    /// as removed. Returns how many were marked.
    pub fn commit(self) -> Result<usize, MaildropError> {
        let mut removed = 0;
        let mut touched = [false; SUBDIRS.len()];
        for (i, _) in self.deleted.iter().enumerate().filter(|(_, d)| **d) {
            let Some(path) = self.locate(i) else { continue };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    log::error!("cannot remove {}: {e} ({removed} of the marked messages removed)", path.display());
                    return Err(e.into());
                }
            }
            removed += 1;
            if let Some(k) = SUBDIRS.iter().position(|s| path.parent() == Some(self.root.join(s).as_path())) {
                touched[k] = true;
            }
        }
        // The unlinks are durable once their directories are.
        for (subdir, _) in SUBDIRS.iter().zip(touched).filter(|(_, t)| *t) {
            File::open(self.root.join(subdir))?.sync_all()?;
        }
        Ok(self.deleted.iter().filter(|d| **d).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(max_messages: usize) -> MboxSettings {
        MboxSettings {
            format: MboxFormat::Mboxrd,
            locking: Vec::new(),
            lock_timeout: Duration::ZERO,
            max_messages,
            max_size: u64::MAX,
        }
    }

    fn maildir(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("pop3d-maildir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for d in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        root
    }

    fn retr(drop: &Maildir, n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let sent = drop.send(n, Part::Whole, &mut out).unwrap().unwrap();
        assert_eq!(sent, drop.get(n).unwrap().size, "RETR sends what LIST says");
        out
    }

    #[test]
    fn lists_new_and_cur_in_delivery_order_and_sends_files_as_they_are() {
        let root = maildir("list");
        fs::write(root.join("new/1700000002.M1P1.host"), b"Subject: b\n\nline\n.dot\nFrom x\n>From y\n").unwrap();
        fs::write(root.join("cur/1700000001.M2P2.host:2,S"), b"Subject: a\r\n\r\nCRLF body\r\nno final newline")
            .unwrap();
        fs::write(root.join("new/.hidden"), b"x").unwrap();
        fs::write(root.join("tmp/1700000003.M3P3.host"), b"being delivered").unwrap();
        fs::create_dir(root.join("cur/not-a-message")).unwrap();
        let drop = Maildir::open(root.clone(), &settings(10)).unwrap();
        assert_eq!(drop.len(), 2);
        assert_eq!(retr(&drop, 1), b"Subject: a\r\n\r\nCRLF body\r\nno final newline\r\n");
        // No mbox unquoting: a Maildir file holds the message as written.
        assert_eq!(retr(&drop, 2), b"Subject: b\r\n\r\nline\r\n..dot\r\nFrom x\r\n>From y\r\n");
        assert_eq!(drop.get(1).unwrap().size, 43);
        let uid = |d: &Maildir, n| d.get(n).unwrap().uid.to_string();
        assert_eq!(uid(&drop, 1), format!("{:x}", Md5::digest(b"1700000001.M2P2.host")));
        // A mail reader moves message 2 to cur/ with flags: same id, still sent.
        fs::rename(root.join("new/1700000002.M1P1.host"), root.join("cur/1700000002.M1P1.host:2,RS")).unwrap();
        assert!(drop.still_listed(2));
        assert_eq!(retr(&drop, 2), b"Subject: b\r\n\r\nline\r\n..dot\r\nFrom x\r\n>From y\r\n");
        let again = Maildir::open(root.clone(), &settings(10)).unwrap();
        assert_eq!((uid(&again, 1), uid(&again, 2)), (uid(&drop, 1), uid(&drop, 2)));
        // Another client deletes message 1: it is no longer listed, RETR fails.
        fs::remove_file(root.join("cur/1700000001.M2P2.host:2,S")).unwrap();
        assert!(!drop.still_listed(1));
        assert!(drop.send(1, Part::Whole, &mut Vec::new()).unwrap().is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn update_unlinks_the_marked_files_wherever_they_moved() {
        let root = maildir("update");
        for (i, dir) in ["new", "cur", "new"].iter().enumerate() {
            fs::write(root.join(dir).join(format!("17000000{i:02}.M{i}P1.host")), format!("Subject: {i}\n\nx\n"))
                .unwrap();
        }
        let mut drop = Maildir::open(root.clone(), &settings(10)).unwrap();
        assert_eq!(drop.len(), 3);
        assert!(drop.delete(1) && drop.delete(3));
        fs::rename(root.join("new/1700000000.M0P1.host"), root.join("cur/1700000000.M0P1.host:2,S")).unwrap();
        fs::remove_file(root.join("new/1700000002.M2P1.host")).unwrap();
        assert_eq!(drop.commit().unwrap(), 2);
        let left: Vec<_> = SUBDIRS.iter().flat_map(|d| fs::read_dir(root.join(d)).unwrap()).collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].as_ref().unwrap().file_name(), "1700000001.M1P1.host");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn limits_a_missing_maildir_and_a_file_in_its_place() {
        let root = maildir("limits");
        for i in 0..3 {
            fs::write(root.join("new").join(format!("{i}.x")), b"x\n").unwrap();
        }
        assert!(matches!(Maildir::open(root.clone(), &settings(2)), Err(MaildropError::TooLarge(_))));
        let small = MboxSettings { max_size: 5, ..settings(10) };
        assert!(matches!(Maildir::open(root.clone(), &small), Err(MaildropError::TooLarge(_))));
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(Maildir::open(root.clone(), &settings(10)).unwrap().len(), 0, "missing: empty");
        fs::write(&root, b"not a directory").unwrap();
        assert!(matches!(Maildir::open(root.clone(), &settings(10)), Err(MaildropError::Corrupt(_))));
        fs::remove_file(&root).unwrap();
    }

    /// Arbitrary bytes, line ends and dots: LIST's size is what RETR sends,
    /// and TOP k is the header, the blank line and k body lines of it.
    #[test]
    fn sizes_match_retr_for_arbitrary_messages() {
        let root = maildir("random");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces: [&[u8]; 9] = [b"text\n", b".dot\n", b"\n", b"\r\n", b"cr\rlf\n", b"From x\n", b"\r", b"\0", b"a"];
        for round in 0..200 {
            let mut msg = Vec::new();
            for _ in 0..next() % 40 {
                if next() % 4 == 0 {
                    msg.extend((0..next() % 100).map(|_| next() as u8));
                } else {
                    msg.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                }
            }
            if next() % 8 == 0 {
                msg.extend(std::iter::repeat_n(b'y', 70_000));
            }
            let name = format!("{round}.M1P1.host");
            fs::write(root.join("new").join(&name), &msg).unwrap();
            let drop = Maildir::open(root.clone(), &settings(10)).unwrap();
            let out = retr(&drop, 1);
            assert!(out.is_empty() || out.ends_with(b"\r\n"), "round {round}");
            assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF on the wire");
            let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
            let header_end = lines.iter().position(|l| *l == b"\r\n").map_or(lines.len(), |i| i + 1);
            for k in [0usize, 2] {
                let mut top = Vec::new();
                drop.send(1, Part::Top(k as u32), &mut top).unwrap().unwrap();
                assert_eq!(top, lines[..(header_end + k).min(lines.len())].concat(), "round {round} TOP {k}");
            }
            fs::remove_file(root.join("new").join(&name)).unwrap();
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
