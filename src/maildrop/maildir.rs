//! The Maildir store: a file per message in `new/` and `cur/`, listed at login, unlinked at UPDATE; no locks.
//!
//! Messages are streamed like mbox messages.
//!
//! Delivery agents write a message in `tmp/` and rename it into `new/`, so a
//! listed file is complete and never changes; a mail reader on the box may
//! move it to `cur/` or rename it with flags (`NAME:2,S`), which keeps the
//! unique part before the `:`. That part identifies a message: its MD5 is
//! the UIDL, and a message that moved is found again by it.
//!
//! Every session runs as the same account, which can read every user's
//! Maildir, so nothing a user controls may lead outside their own: the
//! Maildir, `cur/` and `new/` are opened without following symbolic links
//! and held open, and messages are opened and unlinked relative to them,
//! again without following links, and only as regular files with a single
//! link (a hard link could be another user's message).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::lines::FromQuoting;
use super::maildir_index::{self, Listed, Listing};
use super::message::{Message, Part, Uid};
use super::store::{Bounds, Limits, MaildropError};
use super::stream;
use crate::nofollow;
use crate::reply::MessageSink;
use crate::sys;

mod conventions;

/// The two directories that hold delivered mail. A message in both (moved
/// while we listed) counts as the one in `cur/`.
const SUBDIRS: [&str; 2] = ["cur", "new"];

/// Listing order: `new/` first, so a message moved to `cur/` meanwhile is
/// seen twice (and kept once), never missed.
const LIST_ORDER: [usize; 2] = [1, 0];

/// Where a message file is: its directory (an index into `SUBDIRS`) and name.
#[derive(Clone)]
struct Entry {
    subdir: usize,
    name: OsString,
}

/// The unique part of a Maildir file name: everything before the `:` (or
/// the `;` of Maildirs on FAT or SMB, which cannot hold a `:`) that starts
/// the info.
fn unique(name: &OsStr) -> &[u8] {
    let bytes = name.as_bytes();
    bytes.iter().position(|&b| b == b':' || b == b';').map_or(bytes, |i| &bytes[..i])
}

/// Delivery order: the seconds a unique name starts with (`1700000000.…`),
/// then the name, then `cur/` before `new/`.
fn order_key(entry: &Entry) -> (u64, &[u8], usize) {
    let unique = unique(&entry.name);
    let digits = unique.iter().take_while(|b| b.is_ascii_digit()).count();
    let secs = std::str::from_utf8(&unique[..digits]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    (secs, unique, entry.subdir)
}

/// One Maildir as it was listed at login.
pub struct Maildir {
    root: PathBuf,
    /// `cur/` and `new/`, held open (None where missing).
    dirs: [Option<OwnedFd>; 2],
    entries: Vec<Entry>,
    messages: Vec<Message>,
    /// Where every file is now, by unique name: read again when a message is
    /// not where it was listed (a mail reader moved or renamed it).
    moved: RefCell<Option<HashMap<Vec<u8>, Entry>>>,
    /// The Maildir itself, held open (for maildirsize).
    root_fd: Option<OwnedFd>,
    /// What starts the info in the names pop3d gives (`:` or `;`).
    separator: u8,
}

impl Maildir {
    /// Lists `root/new` and `root/cur` (a missing Maildir is an empty
    /// maildrop) within `limits`, and reads every message once for its size
    /// on the wire, except what the listing saved at `saved` (see
    /// `maildir_index`) still knows. No link is followed below `fixed` (see
    /// `nofollow`).
    pub fn open(
        root: PathBuf,
        fixed: &Path,
        Bounds { limits, owner }: Bounds<'_>,
        saved: &Path,
    ) -> Result<Maildir, MaildropError> {
        let mut maildrop = Maildir {
            root,
            dirs: [None, None],
            entries: Vec::new(),
            messages: Vec::new(),
            moved: RefCell::new(None),
            root_fd: None,
            separator: b':',
        };
        // A symbolic link fails with ELOOP, or ENOTDIR (O_DIRECTORY checked first).
        let not_a_dir = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR));
        let refused =
            |what: &str| MaildropError::Corrupt(format!("{what} is not a directory (links are not followed)"));
        let root_fd = match nofollow::open_dir_below(fixed, &maildrop.root) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(maildrop),
            Err(e) if not_a_dir(&e) || e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(refused(&format!("{} ({e})", maildrop.root.display())))
            }
            Err(e) => return Err(e.into()),
        };
        super::store::check_owner(&root_fd, owner)?;
        for (k, subdir) in SUBDIRS.iter().enumerate() {
            maildrop.dirs[k] = match sys::open_dir_at(root_fd.as_fd(), OsStr::new(subdir)) {
                Ok(fd) => Some(fd),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) if not_a_dir(&e) => return Err(refused(subdir)),
                Err(e) => return Err(e.into()),
            };
        }
        maildrop.root_fd = Some(root_fd);
        let (stamps, settled) = maildir_index::stamps(&maildrop.dirs)?;
        let before = maildir_index::load(saved, limits.max_messages);
        if before.current(&stamps) {
            return maildrop.take_listing(&before, limits);
        }
        let known = before.sizes(unique);
        let mut listed = maildrop.list(limits.max_messages.saturating_add(1))?;
        if listed.len() > limits.max_messages {
            return Err(MaildropError::TooLarge(format!("more than {} messages", limits.max_messages)));
        }
        listed.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        listed.dedup_by(|later, first| unique(&later.name) == unique(&first.name));
        let mut total = 0u64;
        let mut after = Listing { dirs: stamps, trusted: settled, files: Vec::new() };
        for entry in listed {
            let (file, len) = match maildrop.open_entry(&entry) {
                Ok(file) => file,
                // Removed since the directory was read (or moved: seen next time).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    // One bad file (unreadable, a link, a FIFO) must not keep
                    // the user from the rest of the mail.
                    log::error!("skipping {}/{}: {e}", maildrop.root.display(), maildrop.display(&entry));
                    continue;
                }
            };
            total = total.saturating_add(len);
            if total > limits.max_size {
                return Err(MaildropError::TooLarge(format!("over {} bytes", limits.max_size)));
            }
            let size = match known.get(&(unique(&entry.name), len)) {
                Some(&size) => size,
                None => stream::wire_size(io::Read::take(&file, len), FromQuoting::Verbatim)?,
            };
            after.files.push(Listed { subdir: entry.subdir, name: entry.name.clone(), len, size });
            maildrop.push(entry, len, size);
        }
        if after.files != before.files || after.dirs != before.dirs || after.trusted != before.trusted {
            maildir_index::save(saved, &after);
        }
        Ok(maildrop)
    }

    /// The listing saved at the last login, for directories that have not
    /// changed since: no directory read, no file opened (RETR opens each
    /// one, with every check, when it is sent).
    fn take_listing(mut self, listing: &Listing, limits: &Limits) -> Result<Maildir, MaildropError> {
        let total = listing.files.iter().map(|f| f.len).fold(0u64, u64::saturating_add);
        if total > limits.max_size {
            return Err(MaildropError::TooLarge(format!("over {} bytes", limits.max_size)));
        }
        for f in &listing.files {
            self.push(Entry { subdir: f.subdir, name: f.name.clone() }, f.len, f.size);
        }
        Ok(self)
    }

    /// Adds the message in `entry`, of `len` octets and `size` on the wire.
    fn push(&mut self, entry: Entry, len: u64, size: u64) {
        let uid = Uid { digest: Md5::digest(unique(&entry.name)).into(), copy: 0 };
        self.messages.push(Message { start: 0, content: 0, end: len, size, uid, head: 0 });
        self.entries.push(entry);
    }

    /// The names in `new/` and `cur/` that may be messages (no dot files),
    /// at most `limit` of them.
    fn list(&self, limit: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for subdir in LIST_ORDER {
            if self.dirs[subdir].is_none() {
                continue;
            }
            // Names only: every file is then opened relative to the directory
            // held open, so a directory swapped for a link since gives nothing.
            let dir = match fs::read_dir(self.root.join(SUBDIRS[subdir])) {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in dir {
                let name = entry?.file_name();
                if !name.as_bytes().starts_with(b".") {
                    if out.len() == limit {
                        return Ok(out);
                    }
                    out.push(Entry { subdir, name });
                }
            }
        }
        Ok(out)
    }

    fn display(&self, entry: &Entry) -> String {
        format!("{}/{}", SUBDIRS[entry.subdir], entry.name.to_string_lossy())
    }

    /// The file of `entry` and its length.
    fn open_entry(&self, entry: &Entry) -> io::Result<(File, u64)> {
        let dir = self.dirs[entry.subdir].as_ref().ok_or(io::ErrorKind::NotFound)?;
        sys::open_file_at(dir.as_fd(), &entry.name)
    }

    /// Where message `i` (0-based) is now, if a mail reader moved or renamed
    /// it since login; the directories are read again once per miss.
    fn relocate(&self, i: usize) -> Option<Entry> {
        let want = unique(&self.entries.get(i)?.name);
        let mut moved = self.moved.borrow_mut();
        if let Some(found) = moved.as_ref().and_then(|m| m.get(want)) {
            if self.open_entry(found).is_ok() {
                return Some(found.clone());
            }
        }
        let now: HashMap<Vec<u8>, Entry> =
            self.list(usize::MAX).ok()?.into_iter().map(|e| (unique(&e.name).to_vec(), e)).collect();
        let found = now.get(want).cloned();
        *moved = Some(now);
        found
    }

    /// Message `i`'s file and length, where it was listed or where it moved to.
    fn open_message(&self, i: usize) -> io::Result<(File, u64)> {
        match self.open_entry(&self.entries[i]) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .relocate(i)
                .ok_or(io::ErrorKind::NotFound)
                .map_err(io::Error::from)
                .and_then(|e| self.open_entry(&e)),
            other => other,
        }
    }

    /// The messages as listed at login.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Whether message `i`'s (0-based) file still exists with the length it
    /// was listed with (checked before RETR/TOP answer +OK).
    pub fn still_listed(&self, i: usize) -> bool {
        let Some(msg) = self.messages.get(i) else { return false };
        self.open_message(i).is_ok_and(|(_, len)| len == msg.end)
    }

    /// Sends message `i` (0-based) byte-stuffed, without the final `.` line.
    /// Returns the octets sent.
    pub fn send<W: MessageSink>(&self, i: usize, part: Part, out: &mut W) -> io::Result<u64> {
        let msg = self.messages.get(i).ok_or(io::ErrorKind::NotFound)?;
        let (file, _) = self.open_message(i)?;
        stream::send(&file, msg, FromQuoting::Verbatim, part, out)
    }

    /// UPDATE: unlinks the files of the messages marked in `deleted` (found
    /// again if they moved; already gone counts as removed), then syncs the
    /// directories. Goes on past a file it cannot remove and then reports the
    /// first such error.
    pub fn commit(self, deleted: &[bool]) -> Result<(), MaildropError> {
        let mut first_error = None;
        let mut touched = [false; SUBDIRS.len()];
        let mut removed = (0u64, 0u64);
        let marked = (0..self.entries.len()).filter(|&i| deleted.get(i) == Some(&true));
        for i in marked {
            let mut entry = self.entries[i].clone();
            let mut result = self.unlink(&entry);
            if matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                result = match self.relocate(i) {
                    Some(now) => {
                        entry = now;
                        self.unlink(&entry)
                    }
                    None => Ok(()), // another client deleted it
                };
            }
            match result {
                Ok(()) => {
                    touched[entry.subdir] = true;
                    removed = (removed.0 + self.messages[i].end, removed.1 + 1);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    log::error!("cannot remove {}/{}: {e}", self.root.display(), self.display(&entry));
                    first_error.get_or_insert(e);
                }
            }
        }
        self.note_removed(removed.0, removed.1);
        // The unlinks are durable once their directories are.
        for (dir, _) in self.dirs.iter().zip(touched).filter(|(_, t)| *t) {
            if let Some(dir) = dir {
                File::from(dir.try_clone()?).sync_all()?;
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e.into()),
        }
    }

    fn unlink(&self, entry: &Entry) -> io::Result<()> {
        let dir = self.dirs[entry.subdir].as_ref().ok_or(io::ErrorKind::NotFound)?;
        sys::unlink_at(dir.as_fd(), &entry.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::{Location, Maildrop, StatePaths};
    use crate::testkit::{Rng, TempDir};
    use std::path::Path;

    fn limits(max_messages: usize) -> Limits {
        Limits { max_messages, max_size: u64::MAX }
    }

    /// A Maildir with its three directories in a fresh temporary directory
    /// (removed with it), and its path.
    fn maildir(tag: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(tag);
        let root = dir.join("Maildir");
        for d in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        (dir, root)
    }

    /// The Maildir at `root` as a session opens it.
    fn open(root: &Path, limits: &Limits) -> Result<Maildrop, MaildropError> {
        open_saved(root, limits, &root.with_extension("index"))
    }

    /// The same, with its saved listing at `index`.
    fn open_saved(root: &Path, limits: &Limits, index: &Path) -> Result<Maildrop, MaildropError> {
        let dotlocks = crate::lock::Records { dir: PathBuf::new(), name: String::new() };
        let state =
            StatePaths { journal: PathBuf::new(), copies: PathBuf::new(), dotlocks, index: index.to_path_buf() };
        let mbox = crate::maildrop::MboxSettings {
            quoting: FromQuoting::Mboxrd,
            locking: Vec::new(),
            lock_timeout: std::time::Duration::ZERO,
        };
        Maildrop::open(Location::Maildir(root.to_path_buf()), state, limits, &mbox)
    }

    fn retr(maildrop: &Maildrop, n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let sent = maildrop.send(n, Part::Whole, &mut out).unwrap().unwrap();
        assert_eq!(sent, maildrop.get(n).unwrap().size, "RETR sends what LIST says");
        out
    }

    #[test]
    fn lists_new_and_cur_in_delivery_order_and_sends_files_as_they_are() {
        let (_dir, root) = maildir("list");
        fs::write(root.join("new/1700000002.M1P1.host"), b"Subject: b\n\nline\n.dot\nFrom x\n>From y\n").unwrap();
        fs::write(root.join("cur/1700000001.M2P2.host:2,S"), b"Subject: a\r\n\r\nCRLF body\r\nno final newline")
            .unwrap();
        fs::write(root.join("new/.hidden"), b"x").unwrap();
        fs::write(root.join("tmp/1700000003.M3P3.host"), b"being delivered").unwrap();
        fs::create_dir(root.join("cur/not-a-message")).unwrap();
        let maildrop = open(&root, &limits(10)).unwrap();
        assert_eq!(maildrop.len(), 2);
        assert_eq!(retr(&maildrop, 1), b"Subject: a\r\n\r\nCRLF body\r\nno final newline\r\n");
        // No mbox unquoting: a Maildir file holds the message as written.
        assert_eq!(retr(&maildrop, 2), b"Subject: b\r\n\r\nline\r\n..dot\r\nFrom x\r\n>From y\r\n");
        assert_eq!(maildrop.get(1).unwrap().size, 43);
        let uid = |d: &Maildrop, n| d.get(n).unwrap().uid.to_string();
        assert_eq!(uid(&maildrop, 1), format!("{:x}", Md5::digest(b"1700000001.M2P2.host")));
        // A mail reader moves message 2 to cur/ with flags: same id, still sent.
        fs::rename(root.join("new/1700000002.M1P1.host"), root.join("cur/1700000002.M1P1.host:2,RS")).unwrap();
        assert!(maildrop.still_listed(2).unwrap());
        assert_eq!(retr(&maildrop, 2), b"Subject: b\r\n\r\nline\r\n..dot\r\nFrom x\r\n>From y\r\n");
        let again = open(&root, &limits(10)).unwrap();
        assert_eq!((uid(&again, 1), uid(&again, 2)), (uid(&maildrop, 1), uid(&maildrop, 2)));
        // Another client deletes message 1: it is no longer listed, RETR fails.
        fs::remove_file(root.join("cur/1700000001.M2P2.host:2,S")).unwrap();
        assert!(!maildrop.still_listed(1).unwrap());
        assert!(maildrop.send(1, Part::Whole, &mut Vec::new()).unwrap().is_err());
    }

    /// The daemon can read every user's mail: nothing a user can create in
    /// their own Maildir may lead to someone else's.
    #[test]
    fn links_never_lead_out_of_the_maildir() {
        let (_other_dir, other) = maildir("other");
        fs::write(other.join("cur/1700000009.M9P9.box:2,S"), b"Subject: not yours\n\nsecret\n").unwrap();
        let (_dir, root) = maildir("links");
        // The Maildir itself, or its cur/, a symbolic link to another one.
        let linked = root.with_extension("linked");
        std::os::unix::fs::symlink(&other, &linked).unwrap();
        assert!(matches!(open(&linked, &limits(10)), Err(MaildropError::Corrupt(_))));
        fs::remove_dir(root.join("cur")).unwrap();
        std::os::unix::fs::symlink(other.join("cur"), root.join("cur")).unwrap();
        assert!(matches!(open(&root, &limits(10)), Err(MaildropError::Corrupt(_))));
        fs::remove_file(root.join("cur")).unwrap();
        fs::create_dir(root.join("cur")).unwrap();
        // A message that is a symbolic link or a second hard link: skipped.
        let theirs = other.join("cur/1700000009.M9P9.box:2,S");
        std::os::unix::fs::symlink(&theirs, root.join("new/1700000001.M1P1.box")).unwrap();
        fs::hard_link(&theirs, root.join("new/1700000002.M2P2.box")).unwrap();
        fs::write(root.join("new/1700000003.M3P3.box"), b"Subject: mine\n\nx\n").unwrap();
        let maildrop = open(&root, &limits(10)).unwrap();
        assert_eq!(maildrop.len(), 1);
        assert_eq!(retr(&maildrop, 1), b"Subject: mine\r\n\r\nx\r\n");
        // Swapped for a link after login, or shrunk: no longer served.
        fs::remove_file(root.join("new/1700000003.M3P3.box")).unwrap();
        std::os::unix::fs::symlink(&theirs, root.join("new/1700000003.M3P3.box")).unwrap();
        assert!(!maildrop.still_listed(1).unwrap());
        assert!(maildrop.send(1, Part::Whole, &mut Vec::new()).unwrap().is_err());
        fs::remove_file(root.join("new/1700000003.M3P3.box")).unwrap();
        fs::write(root.join("new/1700000003.M3P3.box"), b"Subject: mi").unwrap();
        assert!(!maildrop.still_listed(1).unwrap(), "shorter than listed");
        // UPDATE removes only what is in this Maildir; the other is intact.
        let mut maildrop = open(&root, &limits(10)).unwrap();
        assert!(maildrop.delete(1));
        maildrop.commit().unwrap();
        assert!(theirs.exists());
        assert_eq!(fs::read(&theirs).unwrap(), b"Subject: not yours\n\nsecret\n");
    }

    #[test]
    fn update_unlinks_the_marked_files_wherever_they_moved() {
        let (_dir, root) = maildir("update");
        for (i, dir) in ["new", "cur", "new"].iter().enumerate() {
            fs::write(root.join(dir).join(format!("17000000{i:02}.M{i}P1.host")), format!("Subject: {i}\n\nx\n"))
                .unwrap();
        }
        let mut maildrop = open(&root, &limits(10)).unwrap();
        assert_eq!(maildrop.len(), 3);
        assert!(maildrop.delete(1) && maildrop.delete(3));
        fs::rename(root.join("new/1700000000.M0P1.host"), root.join("cur/1700000000.M0P1.host:2,S")).unwrap();
        fs::remove_file(root.join("new/1700000002.M2P1.host")).unwrap();
        assert_eq!(maildrop.commit().unwrap(), 2);
        let left: Vec<_> = SUBDIRS.iter().flat_map(|d| fs::read_dir(root.join(d)).unwrap()).collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].as_ref().unwrap().file_name(), "1700000001.M1P1.host");
    }

    #[test]
    fn limits_a_missing_maildir_and_a_file_in_its_place() {
        let (_dir, root) = maildir("limits");
        for i in 0..3 {
            fs::write(root.join("new").join(format!("{i}.x")), b"x\n").unwrap();
        }
        assert!(matches!(open(&root, &limits(2)), Err(MaildropError::TooLarge(_))));
        let small = Limits { max_size: 5, ..limits(10) };
        assert!(matches!(open(&root, &small), Err(MaildropError::TooLarge(_))));
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(open(&root, &limits(10)).unwrap().len(), 0, "missing: empty");
        fs::write(&root, b"not a directory").unwrap();
        assert!(matches!(open(&root, &limits(10)), Err(MaildropError::Corrupt(_))));
    }

    /// Arbitrary bytes, line ends and dots: LIST's size is what RETR sends,
    /// and TOP k is the header, the blank line and k body lines of it.
    #[test]
    fn sizes_match_retr_for_arbitrary_messages() {
        let (_dir, root) = maildir("random");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
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
            let maildrop = open(&root, &limits(10)).unwrap();
            let out = retr(&maildrop, 1);
            assert!(out.is_empty() || out.ends_with(b"\r\n"), "round {round}");
            assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF on the wire");
            let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
            let header_end = lines.iter().position(|l| *l == b"\r\n").map_or(lines.len(), |i| i + 1);
            for k in [0usize, 2] {
                let mut top = Vec::new();
                maildrop.send(1, Part::Top(k as u32), &mut top).unwrap().unwrap();
                assert_eq!(top, lines[..(header_end + k).min(lines.len())].concat(), "round {round} TOP {k}");
            }
            fs::remove_file(root.join("new").join(&name)).unwrap();
        }
    }

    /// Sets the mtime of `cur/` and `new/` back, as if nothing had changed
    /// there for a while.
    fn settle(root: &Path) {
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for d in SUBDIRS {
            File::open(root.join(d)).unwrap().set_modified(past).unwrap();
        }
    }

    fn listing(maildrop: &Maildrop) -> Vec<String> {
        maildrop.live().map(|(n, m)| format!("{n} {m:?}")).collect()
    }

    /// Unchanged directories: the saved listing stands, no message is read
    /// (a file rewritten behind its back, which a Maildir never sees, keeps
    /// its saved size). A delivery: the directories are read again, and only
    /// the new file is measured.
    #[test]
    fn a_saved_listing_of_unchanged_directories_is_used_as_it_is() {
        let (_dir, root) = maildir("saved");
        fs::write(root.join("cur/1700000001.M1P1.host:2,S"), b"Subject: a\n\none\n").unwrap();
        fs::write(root.join("new/1700000002.M2P2.host"), b"Subject: b\n\ntwo\n").unwrap();
        settle(&root);
        let first = open(&root, &limits(10)).unwrap();
        assert_eq!(first.get(1).unwrap().size, 19);
        // Same length, more line ends: 2 octets more on the wire if read.
        fs::write(root.join("cur/1700000001.M1P1.host:2,S"), b"Subject: a\n\n\n\n\n\n").unwrap();
        let second = open(&root, &limits(10)).unwrap();
        assert_eq!(listing(&second), listing(&first), "the saved listing, no file read");
        fs::write(root.join("new/1700000003.M3P3.host"), b"Subject: c\n\nthree\n").unwrap();
        let third = open(&root, &limits(10)).unwrap();
        assert_eq!(third.len(), 3);
        assert_eq!(third.get(1).unwrap().size, 19, "a file known by name and length is not read again");
        assert_eq!(third.get(3).unwrap().size, 21);
        // Without a saved listing everything is read.
        let fresh = open_saved(&root, &limits(10), &root.with_extension("none")).unwrap();
        assert_eq!(fresh.get(1).unwrap().size, 22);
    }

    /// Whatever happens between logins (deliveries, moves to cur/ with
    /// flags, deletions, quiet periods, a torn listing), a login with the
    /// saved listing lists what a login without it lists.
    #[test]
    fn the_saved_listing_gives_what_a_full_listing_gives() {
        let (dir, root) = maildir("mdprop");
        let saved = dir.join("saved");
        let mut rng = Rng(0xd1_5c0);
        let mut n = 0;
        for step in 0..300 {
            let names: Vec<(String, String)> = SUBDIRS
                .iter()
                .flat_map(|d| {
                    fs::read_dir(root.join(d))
                        .unwrap()
                        .map(move |e| (d.to_string(), e.unwrap().file_name().into_string().unwrap()))
                })
                .collect();
            match rng.below(6) {
                0 | 1 => {
                    n += 1;
                    let body = "line\n".repeat(rng.below(20) as usize);
                    fs::write(root.join(format!("new/17000{n:05}.M{n}P1.host")), format!("Subject: {n}\n\n{body}"))
                        .unwrap();
                }
                2 if !names.is_empty() => {
                    let (d, name) = &names[rng.below(names.len() as u64) as usize];
                    let base = name.split(':').next().unwrap();
                    fs::rename(root.join(d).join(name), root.join("cur").join(format!("{base}:2,S"))).unwrap();
                }
                3 if !names.is_empty() => {
                    let (d, name) = &names[rng.below(names.len() as u64) as usize];
                    fs::remove_file(root.join(d).join(name)).unwrap();
                }
                4 => settle(&root),
                5 => {
                    if let Some(bytes) = fs::read(&saved).ok().filter(|b| !b.is_empty()) {
                        fs::write(&saved, &bytes[..rng.below(bytes.len() as u64) as usize]).unwrap();
                    }
                }
                _ => {}
            }
            let cached = open_saved(&root, &limits(1000), &saved).unwrap();
            let full = open_saved(&root, &limits(1000), &dir.join("never-saved")).unwrap();
            let _ = fs::remove_file(dir.join("never-saved"));
            assert_eq!(listing(&cached), listing(&full), "step {step}");
        }
    }
}
