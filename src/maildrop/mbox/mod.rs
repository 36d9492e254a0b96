//! The mbox store: a file per maildrop, locked only while indexed or rewritten, rewritten in place at UPDATE.

mod cache;
mod digests;
mod index;
mod journal;
mod update;

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use index::{head_matches, CopyNumbers, ScanError};

use super::lines::FromQuoting;
use super::message::{Message, Part};
use super::store::{Bounds, MaildropError};
use super::stream;
use crate::lock::{LockMethod, MboxLock, Records};
use crate::nofollow;
use crate::reply::MessageSink;

/// How mailboxes are read and locked (from the configuration).
#[derive(Debug, Clone)]
pub struct MboxSettings {
    pub quoting: FromQuoting,
    pub locking: Vec<LockMethod>,
    pub lock_timeout: Duration,
}

/// Files pop3d keeps per mbox maildrop in `state_dir`.
#[derive(Clone)]
pub struct StatePaths {
    /// The UPDATE journal (see `update`).
    pub journal: PathBuf,
    /// The copy numbers of identical messages (see `CopyNumbers`).
    pub copies: PathBuf,
    /// Where a dotlock taken for it is recorded (see `lock::Records`).
    pub dotlocks: Records,
    /// The persistent index (see `cache`).
    pub index: PathBuf,
}

/// One mbox as it was indexed at login.
pub struct Mbox {
    path: PathBuf,
    /// The operator's part of `path`, below which no link is followed.
    fixed: PathBuf,
    state: StatePaths,
    settings: MboxSettings,
    /// The file indexed at login (None: no mailbox file, an empty maildrop).
    file: Option<File>,
    index: index::Index,
}

impl Mbox {
    /// Locks the mbox at `path`, finishes an interrupted update recorded in
    /// `state.journal`, indexes it within `limits` and unlocks it. No link
    /// below `fixed` is followed, and only a regular file with one link is
    /// read (see `nofollow`).
    pub fn open(
        path: PathBuf,
        fixed: PathBuf,
        state: StatePaths,
        settings: &MboxSettings,
        Bounds { limits, owner }: Bounds<'_>,
    ) -> Result<Mbox, MaildropError> {
        let recovering = nofollow::state_exists(&state.journal);
        let mut mbox =
            Mbox { path, fixed, state, settings: settings.clone(), file: None, index: index::Index::default() };
        let file = match nofollow::open_below(&mbox.fixed, &mbox.path, recovering) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(mbox),
            Err(e) => return Err(e.into()),
        };
        super::store::check_owner(&file, owner)?;
        {
            let (locking, timeout, records) = (&settings.locking, settings.lock_timeout, &mbox.state.dotlocks);
            let _lock = MboxLock::acquire(&mbox.path, &file, locking, recovering, timeout, records)?;
            let StatePaths { journal, copies, .. } = &mbox.state;
            let paths = update::UpdatePaths { journal, copies };
            update::remove_leftovers(&paths);
            if recovering {
                update::recover(&file, &paths)?;
            }
            let len = file.metadata()?.len();
            if len > limits.max_size {
                return Err(MaildropError::TooLarge(format!("{len} bytes, limit {}", limits.max_size)));
            }
            let copies = match nofollow::read_state(copies) {
                Ok(text) => CopyNumbers::parse(&text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => CopyNumbers::default(),
                Err(e) => return Err(e.into()),
            };
            let (quoting, max) = (settings.quoting, limits.max_messages);
            mbox.index = cache::index(&file, len, &mbox.state.index, quoting, max, &copies).map_err(|e| match e {
                ScanError::NotMbox => MaildropError::Corrupt("does not start with a From line".into()),
                ScanError::TooManyMessages(n) => MaildropError::TooLarge(format!("more than {n} messages")),
                ScanError::Io(e) => MaildropError::Io(e),
            })?;
        }
        mbox.file = Some(file);
        Ok(mbox)
    }

    /// The messages as indexed at login.
    pub fn messages(&self) -> &[Message] {
        &self.index.messages
    }

    /// Sends message `i` (0-based) byte-stuffed, without the final `.` line.
    /// Returns the octets sent.
    pub fn send<W: MessageSink>(&self, i: usize, part: Part, out: &mut W) -> io::Result<u64> {
        let (Some(msg), Some(file)) = (self.index.messages.get(i), &self.file) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let sent = stream::send(file, msg, self.settings.quoting, part, out)?;
        if matches!(part, Part::Whole) && sent != msg.size {
            // Not what the index says: the next login scans afresh.
            cache::forget(&self.state.index);
        }
        Ok(sent)
    }

    /// Whether message `i`'s `From ` line is still where the index says:
    /// false when someone rewrote the mailbox in place since login.
    pub fn still_listed(&self, i: usize) -> io::Result<bool> {
        let listed = match (self.index.messages.get(i), &self.file) {
            (Some(msg), Some(file)) => head_matches(file, msg)?,
            _ => true,
        };
        if !listed {
            cache::forget(&self.state.index);
        }
        Ok(listed)
    }

    /// UPDATE: removes the messages marked in `deleted`.
    pub fn commit(mut self, deleted: &[bool]) -> Result<(), MaildropError> {
        let Some(scanned) = &self.file else {
            return Ok(());
        };
        let Some(first_gone) = deleted.iter().position(|d| *d) else {
            return Ok(());
        };
        let file = nofollow::open_below(&self.fixed, &self.path, true)?;
        let (locking, timeout) = (&self.settings.locking, self.settings.lock_timeout);
        let _lock = MboxLock::acquire(&self.path, &file, locking, true, timeout, &self.state.dotlocks)?;
        let (now, then) = (file.metadata()?, scanned.metadata()?);
        if now.dev() != then.dev() || now.ino() != then.ino() || now.len() < self.index.scanned_end {
            return Err(MaildropError::Changed);
        }
        // Rewritten in place since login (a mail reader adding Status:
        // headers): the offsets would cut the wrong bytes. Every message the
        // rewrite touches must still start where it did, and what follows
        // the indexed part must be new mail.
        for msg in &self.index.messages[first_gone..] {
            if !head_matches(&file, msg)? {
                return Err(MaildropError::Changed);
            }
        }
        // Mail delivered since the scan starts with its `From ` line, or, from
        // an agent that writes the blank separator before each new message
        // rather than after it (dma), with `\nFrom `: that LF then ends the
        // last indexed message's block, and goes with it if it is deleted.
        if now.len() > self.index.scanned_end {
            let mut head = [0u8; 6];
            let n = (now.len() - self.index.scanned_end).min(6) as usize;
            file.read_exact_at(&mut head[..n], self.index.scanned_end)?;
            if head[..n].starts_with(b"\nFrom ") {
                self.index.scanned_end += 1;
            } else if !head[..n].starts_with(b"From ") {
                return Err(MaildropError::Changed);
            }
        }
        let keep: Vec<bool> = deleted.iter().map(|d| !d).collect();
        // The copy numbers of the identical messages that stay go through the
        // journal with the rewrite, so their ids change with it or not at all.
        let copies = CopyNumbers::of_survivors(&self.index, &keep).to_text();
        let paths = update::UpdatePaths { journal: &self.state.journal, copies: &self.state.copies };
        // Gone before the journal is written (whose directory sync makes
        // that durable): no crash leaves an index of the old content.
        cache::forget(&self.state.index);
        update::remove_messages(&file, &self.index, &keep, &paths, &copies)?;
        let kept = self.kept_after_update(&keep, first_gone);
        cache::save_after_update(&self.state.index, &file.metadata()?, self.settings.quoting, &kept);
        Ok(())
    }

    /// The kept messages where the rewrite put them: those before the first
    /// deleted one stay; each later one moves to just after the kept block
    /// before it (see `update::remove_messages`).
    fn kept_after_update(&self, keep: &[bool], first_gone: usize) -> Vec<Message> {
        let messages = &self.index.messages;
        let mut kept: Vec<Message> = messages[..first_gone].to_vec();
        let mut pos = messages[first_gone].start;
        for (i, msg) in messages.iter().enumerate().skip(first_gone).filter(|(i, _)| keep[*i]) {
            let moved = |offset: u64| offset - msg.start + pos;
            kept.push(Message { start: pos, content: moved(msg.content), end: moved(msg.end), ..msg.clone() });
            pos += self.index.block_end(i) - msg.start;
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::{Limits, Location, Maildrop};
    use crate::testkit::{Rng, TempDir};
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::Path;

    /// A random mbox built from the pieces that need care and arbitrary bytes.
    fn random_mbox(rng: &mut Rng) -> Vec<u8> {
        let long = vec![b'x'; 70_000];
        let gts = [vec![b'>'; 3000], b"From deep".to_vec()].concat();
        let pieces: [&[u8]; 16] = [
            b"plain text line\n",
            b"From someone\n",
            b">From quoted\n",
            b">>From twice\n",
            b".dot\n",
            b"..\n",
            b"\n",
            b"\r\n",
            b"crlf line\r\n",
            b"lone\rcr\n",
            b"nul\0byte\n",
            b"Fro",
            &long,
            &gts,
            b"\r",
            b"tail without newline",
        ];
        let mut mbox = Vec::new();
        for _ in 0..(rng.next() % 6 + 1) {
            mbox.extend_from_slice(b"From sender@example Mon Nov 23 09:00:00 2026\n");
            if rng.next().is_multiple_of(3) {
                mbox.extend_from_slice(b"Subject: t\n\n");
            }
            for _ in 0..(rng.next() % 12) {
                if rng.next().is_multiple_of(5) {
                    // Arbitrary octets, every value possible.
                    let n = rng.next() % 300;
                    mbox.extend((0..n).map(|_| rng.next() as u8));
                } else {
                    mbox.extend_from_slice(rng.pick(&pieces));
                }
            }
            if rng.next().is_multiple_of(2) {
                mbox.extend_from_slice(b"\n\n");
            }
        }
        mbox
    }

    const LIMITS: Limits = Limits { max_messages: 1000, max_size: u64::MAX };

    /// Offsets in the cache file: its magic and the fixed header fields.
    const MAGIC_LEN: usize = 14;
    const HEADER_FIELDS: usize = 8 * 4 + 1 + 8;

    fn settings() -> MboxSettings {
        MboxSettings {
            quoting: FromQuoting::Mboxrd,
            locking: vec![LockMethod::Fcntl, LockMethod::Dotlock],
            lock_timeout: Duration::from_secs(1),
        }
    }

    /// The mbox at `path` as a session opens it, with its state files in `dir`.
    fn open(dir: &TempDir, path: &Path, settings: &MboxSettings) -> Maildrop {
        let dotlocks = crate::lock::Records { dir: dir.join("dotlocks"), name: "u".into() };
        let state =
            StatePaths { journal: dir.join("journal"), copies: dir.join("uids"), dotlocks, index: dir.join("index") };
        Maildrop::open(Location::Mbox(path.to_path_buf()), state, &LIMITS, settings).unwrap()
    }

    /// dma appends `\nFrom ...` (the separator before the new message) to a
    /// mailbox whose last message has no blank line after it. UPDATE must
    /// take that as new mail and leave a well-formed mbox, whichever
    /// messages it removes.
    #[test]
    fn mail_appended_with_its_separator_first_survives_update() {
        let dir = TempDir::new("sepfirst");
        let path = dir.join("mbox");
        let old: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n";
        let new: &[u8] = b"\nFrom c\nSubject: 3\n\nthree\n";
        for (delete, left) in [
            (&[1][..], &b"From b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n"[..]),
            (&[2][..], &b"From a\nSubject: 1\n\none\n\nFrom c\nSubject: 3\n\nthree\n"[..]),
            (&[1, 2][..], &b"From c\nSubject: 3\n\nthree\n"[..]),
        ] {
            std::fs::write(&path, old).unwrap();
            let mut maildrop = open(&dir, &path, &settings());
            OpenOptions::new().append(true).open(&path).unwrap().write_all(new).unwrap();
            for &n in delete {
                assert!(maildrop.delete(n));
            }
            assert_eq!(maildrop.commit().unwrap(), delete.len());
            assert_eq!(std::fs::read(&path).unwrap(), left, "deleting {delete:?}");
            let again = open(&dir, &path, &settings());
            assert_eq!(again.stat().0, 3 - delete.len());
        }
        // Anything else after the indexed part is not new mail.
        std::fs::write(&path, old).unwrap();
        let mut maildrop = open(&dir, &path, &settings());
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\nStatus: RO\n").unwrap();
        assert!(maildrop.delete(1));
        assert!(matches!(maildrop.commit(), Err(MaildropError::Changed)));
    }

    /// A mail reader rewriting the mbox in place (same inode) between login
    /// and QUIT: UPDATE must refuse rather than cut at stale offsets.
    #[test]
    fn an_in_place_rewrite_during_the_session_stops_update_and_retr() {
        let dir = TempDir::new("inplace");
        let path = dir.join("mbox");
        std::fs::write(
            &path,
            b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n",
        )
        .unwrap();
        let mut maildrop = open(&dir, &path, &settings());
        let rewritten: &[u8] =
            b"From a\nSubject: 1\nStatus: RO\n\none\n\nFrom b\nSubject: 2\nStatus: RO\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n";
        OpenOptions::new().write(true).open(&path).unwrap().write_all(rewritten).unwrap();
        assert!(maildrop.still_listed(1).unwrap(), "message 1 did not move");
        assert!(!maildrop.still_listed(2).unwrap(), "message 2 moved");
        assert!(maildrop.delete(2));
        assert!(matches!(maildrop.commit(), Err(MaildropError::Changed)));
        assert_eq!(std::fs::read(&path).unwrap(), rewritten, "nothing was cut");
    }

    /// The size LIST reports is exactly what RETR sends, for any content.
    #[test]
    fn list_sizes_equal_retr_octets_for_random_mailboxes() {
        let dir = TempDir::new("sizes");
        let settings = MboxSettings { quoting: FromQuoting::Mboxrd, locking: Vec::new(), lock_timeout: Duration::ZERO };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mbox = random_mbox(&mut rng);
            let path = dir.join("mbox");
            std::fs::write(&path, &mbox).unwrap();
            let maildrop = open(&dir, &path, &settings);
            for (n, msg) in maildrop.live() {
                let mut out = Vec::new();
                maildrop.send(n, Part::Whole, &mut out).unwrap().unwrap();
                // Undo the byte-stuffing to count what the size covers.
                let unstuffed: usize = out
                    .split_inclusive(|&b| b == b'\n')
                    .map(|line| if line.starts_with(b".") { line.len() - 1 } else { line.len() })
                    .sum();
                assert_eq!(msg.size, unstuffed as u64, "round {round} message {n}");
                assert!(out.is_empty() || out.ends_with(b"\r\n"), "round {round} message {n}: {out:?}");
                assert!(!out.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'), "bare CR on the wire");
                assert!(!out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF on the wire");
                // TOP k: the header, the blank line, then k body lines of the same bytes.
                let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
                let header_end = lines.iter().position(|l| *l == b"\r\n").map_or(lines.len(), |i| i + 1);
                for k in [0usize, 1, 3] {
                    let mut top = Vec::new();
                    maildrop.send(n, Part::Top(k as u32), &mut top).unwrap().unwrap();
                    let want: Vec<u8> = lines[..(header_end + k).min(lines.len())].concat();
                    assert_eq!(top, want, "round {round} message {n} TOP {k}");
                }
            }
        }
    }

    /// The cached index gives exactly what a full scan gives, whatever
    /// happens to the mailbox (and to the cache) between logins: random
    /// mailboxes, then random appends, dma-style appends, truncations,
    /// same-size and other edits in place, replacements, UPDATEs and
    /// corrupted caches.
    #[test]
    fn the_cached_index_is_what_a_full_scan_gives() {
        let dir = TempDir::new("cache");
        let path = dir.join("mbox");
        let settings = MboxSettings { quoting: FromQuoting::Mboxrd, locking: Vec::new(), lock_timeout: Duration::ZERO };
        let paths = |index: &str| StatePaths {
            journal: dir.join("journal"),
            copies: dir.join("uids"),
            dotlocks: crate::lock::Records { dir: dir.join("dotlocks"), name: "u".into() },
            index: dir.join(index),
        };
        let listing =
            |maildrop: &Maildrop| -> Vec<String> { maildrop.live().map(|(n, m)| format!("{n} {m:?}")).collect() };
        let open = |state: StatePaths| Maildrop::open(Location::Mbox(path.clone()), state, &LIMITS, &settings);
        let mut rng = Rng(0x5eed_cace);
        let mut used = 0;
        for round in 0..60 {
            std::fs::write(&path, random_mbox(&mut rng)).unwrap();
            let _ = std::fs::remove_file(dir.join("uids"));
            let _ = std::fs::remove_file(dir.join("cached"));
            for step in 0..10 {
                let what = rng.below(9);
                match what {
                    0 => {
                        OpenOptions::new().append(true).open(&path).unwrap().write_all(&random_mbox(&mut rng)).unwrap()
                    }
                    1 => {
                        let mut more = b"\n".to_vec();
                        more.extend(random_mbox(&mut rng));
                        OpenOptions::new().append(true).open(&path).unwrap().write_all(&more).unwrap();
                    }
                    2 => {
                        let len = std::fs::metadata(&path).unwrap().len();
                        OpenOptions::new().write(true).open(&path).unwrap().set_len(rng.below(len + 1)).unwrap();
                    }
                    3 | 4 => {
                        let mut bytes = std::fs::read(&path).unwrap();
                        if bytes.len() > 5 {
                            let at = 5 + rng.below(bytes.len() as u64 - 5) as usize;
                            if what == 3 {
                                bytes[at] = *rng.pick(&[&b'\n', &b'x', &b'F', &b'>']);
                            } else {
                                bytes.splice(at..at, b"Status: RO\n".iter().copied());
                            }
                            OpenOptions::new().write(true).open(&path).unwrap().write_all(&bytes).unwrap();
                        }
                    }
                    5 => {
                        let other = dir.join("other");
                        let len = std::fs::metadata(&path).unwrap().len() as usize;
                        let mut bytes = random_mbox(&mut rng);
                        bytes.resize(len.max(5), b'y');
                        std::fs::write(&other, bytes).unwrap();
                        std::fs::rename(&other, &path).unwrap();
                    }
                    6 => {
                        if let Some(mut bytes) = std::fs::read(dir.join("cached")).ok().filter(|b| !b.is_empty()) {
                            let at = rng.below(bytes.len() as u64) as usize;
                            bytes[at] ^= 1 << rng.below(8);
                            if rng.below(2) == 0 {
                                bytes.truncate(at);
                            }
                            std::fs::write(dir.join("cached"), bytes).unwrap();
                        }
                    }
                    7 => {
                        if let Ok(mut maildrop) = open(paths("cached")) {
                            for n in 1..=maildrop.len() as u32 {
                                if rng.below(3) == 0 {
                                    maildrop.delete(n);
                                }
                            }
                            let _ = maildrop.commit();
                        }
                    }
                    _ => {}
                }
                let _ = std::fs::remove_file(dir.join("plain"));
                let cached = open(paths("cached"));
                let plain = open(paths("plain"));
                let context = format!("round {round} step {step} mutation {what}");
                match (&cached, &plain) {
                    (Ok(c), Ok(p)) => {
                        assert_eq!(listing(c), listing(p), "{context}");
                        used += 1;
                    }
                    (Err(c), Err(p)) => assert_eq!(format!("{c:?}"), format!("{p:?}"), "{context}"),
                    _ => panic!("{context}: {:?} / {:?}", cached.as_ref().err(), plain.as_ref().err()),
                }
            }
        }
        assert!(used > 300, "only {used} comparisons of two listings");
        let [unchanged, appended, full] = cache::USES.with(|u| u.get());
        assert!(
            unchanged > 50 && appended > 50 && full > 100,
            "{unchanged} unchanged, {appended} appended, {full} full scans"
        );
    }

    /// The cache is used: a login with nothing changed writes nothing and
    /// scans nothing; mail appended is scanned from the last indexed message.
    #[test]
    fn an_unchanged_mailbox_is_not_scanned_or_written_again() {
        let dir = TempDir::new("cacheuse");
        let path = dir.join("mbox");
        std::fs::write(&path, b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n").unwrap();
        let settings = settings();
        let first = open(&dir, &path, &settings);
        let index = dir.join("index");
        let written = std::fs::metadata(&index).unwrap().modified().unwrap();
        // The cache says what the file holds: a forged size shows through.
        let mut bytes = std::fs::read(&index).unwrap();
        let record = MAGIC_LEN + HEADER_FIELDS + cache::RECORD_LEN + 24;
        bytes[record] ^= 0x40;
        let forged = bytes.clone();
        std::fs::write(&index, &bytes).unwrap();
        let again = open(&dir, &path, &settings);
        assert_eq!(format!("{:?}", again.get(2)), format!("{:?}", first.get(2)), "a corrupt cache is not used");
        assert_ne!(std::fs::read(&index).unwrap(), forged, "and is written anew");
        let before = std::fs::metadata(&index).unwrap().modified().unwrap();
        let third = open(&dir, &path, &settings);
        assert_eq!(std::fs::metadata(&index).unwrap().modified().unwrap(), before, "nothing new: nothing written");
        assert_eq!(third.stat(), first.stat());
        assert!(written <= before);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\nFrom c\nSubject: 3\n\nthree\n").unwrap();
        let fourth = open(&dir, &path, &settings);
        assert_eq!(fourth.stat().0, 3);
    }
}
