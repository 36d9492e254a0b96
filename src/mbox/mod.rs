//! An mbox maildrop for one session: locked only while indexed or rewritten, read by message, updated at QUIT.

mod index;
pub(crate) mod lines;
pub(crate) mod stream;
mod update;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use index::CopyNumbers;
use index::{head_of, HEAD_LEN};
pub use index::{Message, ScanError, Uid};
pub use lines::MboxFormat;
pub use stream::Part;

use crate::lock::{LockError, LockMethod, MboxLock};
use crate::maildrop::Listed;

/// How mailboxes are read and locked (from the configuration).
#[derive(Debug, Clone)]
pub struct MboxSettings {
    pub format: MboxFormat,
    pub locking: Vec<LockMethod>,
    pub lock_timeout: Duration,
    pub max_messages: usize,
    pub max_size: u64,
}

/// Why a maildrop cannot be opened or updated; each maps to a response code.
#[derive(Debug)]
pub enum MaildropError {
    /// A delivery agent held the lock too long: try later ([SYS/TEMP]).
    Locked(LockError),
    /// Over a configured limit ([SYS/PERM]).
    TooLarge(String),
    /// Not an mbox ([SYS/PERM]).
    Corrupt(String),
    /// The file changed behind our back; nothing was deleted ([SYS/TEMP]).
    Changed,
    Io(io::Error),
}

impl MaildropError {
    /// True for problems that go away by themselves ([SYS/TEMP]).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, MaildropError::TooLarge(_) | MaildropError::Corrupt(_))
    }
}

impl std::fmt::Display for MaildropError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaildropError::Locked(e) => write!(f, "mailbox locked: {e}"),
            MaildropError::TooLarge(why) => write!(f, "mailbox over limit: {why}"),
            MaildropError::Corrupt(why) => write!(f, "mailbox unreadable: {why}"),
            MaildropError::Changed => write!(f, "mailbox was changed by another program during the session"),
            MaildropError::Io(e) => write!(f, "mailbox I/O error: {e}"),
        }
    }
}

impl From<io::Error> for MaildropError {
    fn from(e: io::Error) -> Self {
        MaildropError::Io(e)
    }
}

impl From<LockError> for MaildropError {
    fn from(e: LockError) -> Self {
        MaildropError::Locked(e)
    }
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

/// Files pop3d keeps per maildrop in `state_dir`.
#[derive(Clone)]
pub struct StatePaths {
    /// The UPDATE journal (see `update`).
    pub journal: PathBuf,
    /// The copy numbers of identical messages (see `CopyNumbers`).
    pub copies: PathBuf,
}

/// The messages of one mbox as they were at login, with deletion marks.
pub struct Mbox {
    path: PathBuf,
    journal: PathBuf,
    /// Where the copy numbers of identical messages are kept (see `CopyNumbers`).
    copies_path: PathBuf,
    settings: MboxSettings,
    /// The file indexed at login (None: no mailbox file, an empty maildrop).
    file: Option<File>,
    index: index::Index,
    deleted: Vec<bool>,
}

impl Listed for Mbox {
    fn messages(&self) -> &[Message] {
        &self.index.messages
    }

    fn marks(&self) -> &[bool] {
        &self.deleted
    }

    fn marks_mut(&mut self) -> &mut [bool] {
        &mut self.deleted
    }
}

impl Mbox {
    /// Locks the mbox at `path`, finishes an interrupted update recorded in
    /// `state.journal`, indexes it and unlocks it.
    pub fn open(path: PathBuf, state: StatePaths, settings: &MboxSettings) -> Result<Mbox, MaildropError> {
        let StatePaths { journal, copies: copies_path } = state;
        let recovering = journal.exists();
        let file = match OpenOptions::new().read(true).write(recovering).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Mbox {
                    path,
                    journal,
                    copies_path,
                    settings: settings.clone(),
                    file: None,
                    index: index::Index::default(),
                    deleted: Vec::new(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let index = {
            let _lock = MboxLock::acquire(&path, &file, &settings.locking, recovering, settings.lock_timeout)?;
            if recovering {
                update::recover(&file, &update::UpdatePaths { journal: &journal, copies: &copies_path })?;
            }
            let len = file.metadata()?.len();
            if len > settings.max_size {
                return Err(MaildropError::TooLarge(format!("{len} bytes, limit {}", settings.max_size)));
            }
            let copies = match std::fs::read_to_string(&copies_path) {
                Ok(text) => CopyNumbers::parse(&text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => CopyNumbers::default(),
                Err(e) => return Err(e.into()),
            };
            index::scan(io::Read::take(&file, len), settings.format, settings.max_messages, &copies).map_err(|e| {
                match e {
                    ScanError::NotMbox => MaildropError::Corrupt("does not start with a From line".into()),
                    ScanError::TooManyMessages(n) => MaildropError::TooLarge(format!("more than {n} messages")),
                    ScanError::Io(e) => MaildropError::Io(e),
                }
            })?
        };
        let deleted = vec![false; index.messages.len()];
        Ok(Mbox { path, journal, copies_path, settings: settings.clone(), file: Some(file), index, deleted })
    }

    /// Sends message `n` byte-stuffed (without the final `.` line).
    /// Returns the octets sent, or None if there is no such message.
    pub fn send<W: crate::reply::MessageSink>(&self, n: u32, part: Part, out: &mut W) -> Option<io::Result<u64>> {
        let msg = self.get(n)?;
        let file = self.file.as_ref()?;
        Some(stream::send(file, msg, self.settings.format, part, out))
    }

    /// Whether message `n`'s `From ` line is still where the index says:
    /// false when someone rewrote the mailbox in place since login.
    pub fn still_indexed(&self, n: u32) -> io::Result<bool> {
        match (self.get(n), &self.file) {
            (Some(msg), Some(file)) => head_matches(file, msg),
            _ => Ok(true),
        }
    }

    /// UPDATE: removes the marked messages. Returns how many were removed.
    pub fn commit(mut self) -> Result<usize, MaildropError> {
        let (marked, _) = self.marked();
        let Some(scanned) = &self.file else {
            return Ok(0);
        };
        if marked == 0 {
            return Ok(0);
        }
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        let _lock = MboxLock::acquire(&self.path, &file, &self.settings.locking, true, self.settings.lock_timeout)?;
        let (now, then) = (file.metadata()?, scanned.metadata()?);
        if now.dev() != then.dev() || now.ino() != then.ino() || now.len() < self.index.scanned_end {
            return Err(MaildropError::Changed);
        }
        // Rewritten in place since login (a mail reader adding Status:
        // headers): the offsets would cut the wrong bytes. Every message the
        // rewrite touches must still start where it did, and what follows
        // the indexed part must be new mail.
        let first_gone = self.deleted.iter().position(|d| *d).unwrap_or(0);
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
        let keep: Vec<bool> = self.deleted.iter().map(|d| !d).collect();
        // The copy numbers of the identical messages that stay go through the
        // journal with the rewrite, so their ids change with it or not at all.
        let copies = CopyNumbers::of_survivors(&self.index, &keep).to_text();
        let paths = update::UpdatePaths { journal: &self.journal, copies: &self.copies_path };
        update::remove_messages(&file, &self.index, &keep, &paths, &copies)?;
        Ok(marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// xorshift64*: a small deterministic generator for test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

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

    fn settings() -> MboxSettings {
        MboxSettings {
            format: MboxFormat::Mboxrd,
            locking: vec![LockMethod::Fcntl, LockMethod::Dotlock],
            lock_timeout: Duration::from_secs(1),
            max_messages: 1000,
            max_size: u64::MAX,
        }
    }

    /// dma appends `\nFrom ...` (the separator before the new message) to a
    /// mailbox whose last message has no blank line after it. UPDATE must
    /// take that as new mail and leave a well-formed mbox, whichever
    /// messages it removes.
    #[test]
    fn mail_appended_with_its_separator_first_survives_update() {
        let dir = std::env::temp_dir().join(format!("pop3d-sepfirst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mbox");
        let old: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n";
        let new: &[u8] = b"\nFrom c\nSubject: 3\n\nthree\n";
        for (delete, left) in [
            (&[1][..], &b"From b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n"[..]),
            (&[2][..], &b"From a\nSubject: 1\n\none\n\nFrom c\nSubject: 3\n\nthree\n"[..]),
            (&[1, 2][..], &b"From c\nSubject: 3\n\nthree\n"[..]),
        ] {
            std::fs::write(&path, old).unwrap();
            let state = StatePaths { journal: dir.join("journal"), copies: dir.join("uids") };
            let mut drop = Mbox::open(path.clone(), state.clone(), &settings()).unwrap();
            OpenOptions::new().append(true).open(&path).unwrap().write_all(new).unwrap();
            for &n in delete {
                assert!(drop.delete(n));
            }
            assert_eq!(drop.commit().unwrap(), delete.len());
            assert_eq!(std::fs::read(&path).unwrap(), left, "deleting {delete:?}");
            let again = Mbox::open(path.clone(), state, &settings()).unwrap();
            assert_eq!(again.stat().0, 3 - delete.len());
        }
        // Anything else after the indexed part is not new mail.
        std::fs::write(&path, old).unwrap();
        let state = StatePaths { journal: dir.join("journal"), copies: dir.join("uids") };
        let mut drop = Mbox::open(path.clone(), state, &settings()).unwrap();
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"\nStatus: RO\n").unwrap();
        assert!(drop.delete(1));
        assert!(matches!(drop.commit(), Err(MaildropError::Changed)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A mail reader rewriting the mbox in place (same inode) between login
    /// and QUIT: UPDATE must refuse rather than cut at stale offsets.
    #[test]
    fn an_in_place_rewrite_during_the_session_stops_update_and_retr() {
        let dir = std::env::temp_dir().join(format!("pop3d-inplace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mbox");
        std::fs::write(
            &path,
            b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n",
        )
        .unwrap();
        let state = StatePaths { journal: dir.join("journal"), copies: dir.join("uids") };
        let mut drop = Mbox::open(path.clone(), state, &settings()).unwrap();
        let rewritten: &[u8] =
            b"From a\nSubject: 1\nStatus: RO\n\none\n\nFrom b\nSubject: 2\nStatus: RO\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n";
        OpenOptions::new().write(true).open(&path).unwrap().write_all(rewritten).unwrap();
        assert!(drop.still_indexed(1).unwrap(), "message 1 did not move");
        assert!(!drop.still_indexed(2).unwrap(), "message 2 moved");
        assert!(drop.delete(2));
        assert!(matches!(drop.commit(), Err(MaildropError::Changed)));
        assert_eq!(std::fs::read(&path).unwrap(), rewritten, "nothing was cut");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The size LIST reports is exactly what RETR sends, for any content.
    #[test]
    fn list_sizes_equal_retr_octets_for_random_mailboxes() {
        let dir = std::env::temp_dir().join(format!("pop3d-sizes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = MboxSettings {
            format: MboxFormat::Mboxrd,
            locking: Vec::new(),
            lock_timeout: Duration::ZERO,
            max_messages: 1000,
            max_size: u64::MAX,
        };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let mbox = random_mbox(&mut rng);
            let path = dir.join("mbox");
            std::fs::write(&path, &mbox).unwrap();
            let state = StatePaths { journal: dir.join("journal"), copies: dir.join("uids") };
            let drop = Mbox::open(path, state, &settings).unwrap();
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
