//! The mbox store: one file per maildrop, locked only while indexed or rewritten, read by message, rewritten in place at UPDATE.

mod index;
mod update;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use index::{head_of, CopyNumbers, ScanError, HEAD_LEN};

use super::lines::FromQuoting;
use super::message::{Message, Part};
use super::store::{Limits, MaildropError};
use super::stream;
use crate::lock::{LockMethod, MboxLock, Records};
use crate::reply::MessageSink;

/// How mailboxes are read and locked (from the configuration).
#[derive(Debug, Clone)]
pub struct MboxSettings {
    pub quoting: FromQuoting,
    pub locking: Vec<LockMethod>,
    pub lock_timeout: Duration,
}

/// Whether `msg`'s `From ` line still starts at its offset in `file`.
fn head_matches(file: &File, msg: &Message) -> io::Result<bool> {
    let mut buf = [0u8; HEAD_LEN];
    let len = (msg.content - msg.start).min(HEAD_LEN as u64) as usize;
    match file.read_exact_at(&mut buf[..len], msg.start) {
        Ok(()) => Ok(buf.starts_with(b"From ") && head_of(&buf[..len]) == msg.head),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
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
}

/// One mbox as it was indexed at login.
pub struct Mbox {
    path: PathBuf,
    state: StatePaths,
    settings: MboxSettings,
    /// The file indexed at login (None: no mailbox file, an empty maildrop).
    file: Option<File>,
    index: index::Index,
}

impl Mbox {
    /// Locks the mbox at `path`, finishes an interrupted update recorded in
    /// `state.journal`, indexes it within `limits` and unlocks it.
    pub fn open(
        path: PathBuf,
        state: StatePaths,
        settings: &MboxSettings,
        limits: &Limits,
    ) -> Result<Mbox, MaildropError> {
        let recovering = state.journal.exists();
        let mut mbox = Mbox { path, state, settings: settings.clone(), file: None, index: index::Index::default() };
        let file = match OpenOptions::new().read(true).write(recovering).open(&mbox.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(mbox),
            Err(e) => return Err(e.into()),
        };
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
            let copies = match std::fs::read_to_string(copies) {
                Ok(text) => CopyNumbers::parse(&text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => CopyNumbers::default(),
                Err(e) => return Err(e.into()),
            };
            mbox.index = index::scan(io::Read::take(&file, len), settings.quoting, limits.max_messages, &copies)
                .map_err(|e| match e {
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
        stream::send(file, msg, self.settings.quoting, part, out)
    }

    /// Whether message `i`'s `From ` line is still where the index says:
    /// false when someone rewrote the mailbox in place since login.
    pub fn still_listed(&self, i: usize) -> io::Result<bool> {
        match (self.index.messages.get(i), &self.file) {
            (Some(msg), Some(file)) => head_matches(file, msg),
            _ => Ok(true),
        }
    }

    /// UPDATE: removes the messages marked in `deleted`.
    pub fn commit(mut self, deleted: &[bool]) -> Result<(), MaildropError> {
        let Some(scanned) = &self.file else {
            return Ok(());
        };
        let Some(first_gone) = deleted.iter().position(|d| *d) else {
            return Ok(());
        };
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
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
        update::remove_messages(&file, &self.index, &keep, &paths, &copies)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::{Location, Maildrop};
    use crate::testkit::{Rng, TempDir};
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
            if rng.next() % 3 == 0 {
                mbox.extend_from_slice(b"Subject: t\n\n");
            }
            for _ in 0..(rng.next() % 12) {
                if rng.next() % 5 == 0 {
                    // Arbitrary octets, every value possible.
                    let n = rng.next() % 300;
                    mbox.extend((0..n).map(|_| rng.next() as u8));
                } else {
                    mbox.extend_from_slice(rng.pick(&pieces));
                }
            }
            if rng.next() % 2 == 0 {
                mbox.extend_from_slice(b"\n\n");
            }
        }
        mbox
    }

    const LIMITS: Limits = Limits { max_messages: 1000, max_size: u64::MAX };

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
        let state = StatePaths { journal: dir.join("journal"), copies: dir.join("uids"), dotlocks };
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
            let mut drop = open(&dir, &path, &settings());
            OpenOptions::new().append(true).open(&path).unwrap().write_all(new).unwrap();
            for &n in delete {
                assert!(drop.delete(n));
            }
            assert_eq!(drop.commit().unwrap(), delete.len());
            assert_eq!(std::fs::read(&path).unwrap(), left, "deleting {delete:?}");
            let again = open(&dir, &path, &settings());
            assert_eq!(again.stat().0, 3 - delete.len());
        }
        // Anything else after the indexed part is not new mail.
        std::fs::write(&path, old).unwrap();
        let mut drop = open(&dir, &path, &settings());
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\nStatus: RO\n").unwrap();
        assert!(drop.delete(1));
        assert!(matches!(drop.commit(), Err(MaildropError::Changed)));
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
        let mut drop = open(&dir, &path, &settings());
        let rewritten: &[u8] =
            b"From a\nSubject: 1\nStatus: RO\n\none\n\nFrom b\nSubject: 2\nStatus: RO\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n";
        OpenOptions::new().write(true).open(&path).unwrap().write_all(rewritten).unwrap();
        assert!(drop.still_listed(1).unwrap(), "message 1 did not move");
        assert!(!drop.still_listed(2).unwrap(), "message 2 moved");
        assert!(drop.delete(2));
        assert!(matches!(drop.commit(), Err(MaildropError::Changed)));
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
            let drop = open(&dir, &path, &settings);
            for (n, msg) in drop.live() {
                let mut out = Vec::new();
                drop.send(n, Part::Whole, &mut out).unwrap().unwrap();
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
                    drop.send(n, Part::Top(k as u32), &mut top).unwrap().unwrap();
                    let want: Vec<u8> = lines[..(header_end + k).min(lines.len())].concat();
                    assert_eq!(top, want, "round {round} message {n} TOP {k}");
                }
            }
        }
    }
}
