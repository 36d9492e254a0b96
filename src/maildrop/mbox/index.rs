//! Builds the message index of an mbox in one streaming scan: offsets, exact wire sizes and UIDLs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::digests::Digests;
use crate::maildrop::lines::{Follows, FromQuoting, LineEnd, Segments, WireLine};
use crate::maildrop::message::{Message, Uid};

/// How many bytes of a message's `From ` line its `head` covers.
pub const HEAD_LEN: usize = 64;

/// A fingerprint of the start of a `From ` line: its first `HEAD_LEN` bytes
/// up to the first CR or LF (FNV-1a). UPDATE and RETR compare it with the
/// file to make sure the index still describes it.
pub fn head_of(line: &[u8]) -> u64 {
    let line = &line[..line.len().min(HEAD_LEN)];
    let line = line.iter().position(|&b| b == b'\r' || b == b'\n').map_or(line, |i| &line[..i]);
    line.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Whether `msg`'s `From ` line still starts at its offset in `file`.
pub fn head_matches(file: &File, msg: &Message) -> io::Result<bool> {
    let mut buf = [0u8; HEAD_LEN];
    let len = (msg.content - msg.start).min(HEAD_LEN as u64) as usize;
    match file.read_exact_at(&mut buf[..len], msg.start) {
        Ok(()) => Ok(buf.starts_with(b"From ") && head_of(&buf[..len]) == msg.head),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The index of every message up to `scanned_end`.
#[derive(Debug, Default)]
pub struct Index {
    pub messages: Vec<Message>,
    /// File length when it was scanned; mail appended later is not indexed.
    pub scanned_end: u64,
}

impl Index {
    /// Offset where message `i`'s raw block (with its separator) ends.
    pub fn block_end(&self, i: usize) -> u64 {
        self.messages.get(i + 1).map_or(self.scanned_end, |m| m.start)
    }
}

#[derive(Debug)]
pub enum ScanError {
    /// The file does not start with a `From ` line.
    NotMbox,
    TooManyMessages(usize),
    Io(io::Error),
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

/// A message being scanned.
struct Building {
    start: u64,
    content: u64,
    size: u64,
    /// Still inside a `From ` line longer than one block.
    in_from_line: bool,
    in_header: bool,
    /// The last line was empty: where it starts and its wire size.
    blank: Option<(u64, u64)>,
    last_has_crlf: bool,
    head: u64,
}

/// Scans the whole of `input` (an mbox from offset 0).
#[cfg(test)]
/// `copies` gives, for a digest, the copy numbers its identical copies had
/// when an earlier copy was deleted (see `CopyNumbers`), so they keep their ids.
pub fn scan<R: Read>(
    input: R,
    quoting: FromQuoting,
    max_messages: usize,
    copies: &CopyNumbers,
) -> Result<Index, ScanError> {
    scan_after(Vec::new(), input, 0, quoting, max_messages, copies)
}

/// Continues a scan: `known` are the messages before `offset`, where a
/// message's `From ` line starts (or 0), and `input` is the mbox from
/// `offset` on. The result is what a scan of the whole file gives, as long
/// as `known` is what it gave for the bytes before `offset`.
pub fn scan_after<R: Read>(
    known: Vec<Message>,
    input: R,
    offset: u64,
    quoting: FromQuoting,
    max_messages: usize,
    copies: &CopyNumbers,
) -> Result<Index, ScanError> {
    // The digests are made on a thread of their own (`digests`), joined before this returns.
    std::thread::scope(|scope| scan_in(known, input, offset, (quoting, max_messages, copies), Digests::start(scope)))
}

fn scan_in<R: Read>(
    known: Vec<Message>,
    input: R,
    offset: u64,
    (quoting, max_messages, copies): (FromQuoting, usize, &CopyNumbers),
    mut digests: Digests,
) -> Result<Index, ScanError> {
    let mut segs = Segments::new(input, offset);
    let first_new = known.len();
    let mut index = Index { messages: known, scanned_end: offset };
    let mut cur: Option<Building> = None;
    let mut end = offset;
    loop {
        // Fast path: ordinary lines are counted in bulk (header lines are
        // hashed on the way, as the slow path below does).
        if let Some(b) = cur.as_mut().filter(|b| !b.in_from_line) {
            if b.in_header {
                // Each line's content and LF, hashed as the slow path does.
                let (run, bytes) = segs.skip_header(quoting);
                if run.lines > 0 {
                    digests.update(bytes);
                    b.size += run.raw + run.lines - run.unquoted;
                    b.blank = None;
                    b.last_has_crlf = true;
                    end += run.raw;
                }
            } else {
                let run = segs.skip_body(quoting);
                if run.lines > 0 {
                    b.size += run.raw + run.lines - run.crlf - run.unquoted;
                    b.blank = run.last_blank.map(|at| (at, 2));
                    b.last_has_crlf = true;
                    end += run.raw;
                }
            }
        }
        let Some(seg) = segs.next()? else { break };
        end = seg.offset + seg.raw_len();
        if seg.is_separator() {
            if let Some(b) = cur.take() {
                digests.end_message();
                index.messages.push(b.finish(seg.offset));
            }
            if index.messages.len() >= max_messages {
                return Err(ScanError::TooManyMessages(max_messages));
            }
            digests.update(seg.content);
            cur = Some(Building {
                start: seg.offset,
                content: end,
                size: 0,
                // A `From ` line ends at its LF: pieces and lone CRs belong to it.
                in_from_line: matches!(seg.end, LineEnd::None | LineEnd::Cr),
                in_header: true,
                blank: None,
                last_has_crlf: true,
                head: head_of(seg.content),
            });
            continue;
        }
        let Some(b) = cur.as_mut() else {
            return Err(ScanError::NotMbox);
        };
        if b.in_from_line {
            digests.update(seg.content);
            b.content = end;
            b.in_from_line = matches!(seg.end, LineEnd::None | LineEnd::Cr);
            continue;
        }
        let wire = WireLine::of(&seg, quoting);
        b.size += wire.size();
        b.last_has_crlf = wire.crlf;
        let blank = seg.is_blank() && seg.end != LineEnd::Cr && seg.follows == Follows::MboxLine;
        b.blank = blank.then_some((seg.offset, wire.size()));
        if b.in_header {
            digests.update(seg.content);
            digests.update(b"\n");
            if seg.is_blank() {
                b.in_header = false;
            }
        }
    }
    if let Some(b) = cur.take() {
        digests.end_message();
        index.messages.push(b.finish(end));
    }
    let made = digests.finish().filter(|d| d.len() == index.messages.len() - first_new);
    let made = made.ok_or_else(|| io::Error::other("the thread hashing UIDLs ended early"))?;
    for (msg, digest) in index.messages[first_new..].iter_mut().zip(made) {
        msg.uid.digest = digest;
    }
    let (known, new) = index.messages.split_at_mut(first_new);
    UidAssigner::number(known, new, copies);
    index.scanned_end = end;
    Ok(index)
}

/// The copy numbers of byte-identical messages whose earlier copies were
/// deleted, kept in `state_dir` so that the copies left keep their ids
/// (`<md5>-3` stays `<md5>-3` when the copy before it goes). Only digests
/// whose copies are not numbered 0, 1, 2... are listed; without the file,
/// ids are as a fresh scan gives them, still unique.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyNumbers(pub HashMap<[u8; 16], Vec<u32>>);

impl CopyNumbers {
    /// Reads the `<hex digest> <n> <n>...` lines written by `to_text`;
    /// malformed lines are skipped.
    pub fn parse(text: &str) -> CopyNumbers {
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut words = line.split_ascii_whitespace();
            let Some(Uid { digest, copy: 0 }) = words.next().and_then(Uid::parse) else { continue };
            let numbers: Option<Vec<u32>> = words.map(|w| w.parse().ok()).collect();
            // Strictly rising, as `of_survivors` writes them.
            if let Some(numbers) = numbers.filter(|n| !n.is_empty() && n.windows(2).all(|w| w[0] < w[1])) {
                map.insert(digest, numbers);
            }
        }
        CopyNumbers(map)
    }

    pub fn to_text(&self) -> String {
        let mut lines: Vec<String> = self
            .0
            .iter()
            .map(|(d, n)| {
                let numbers: Vec<String> = n.iter().map(u32::to_string).collect();
                format!("{} {}\n", Uid { digest: *d, copy: 0 }, numbers.join(" "))
            })
            .collect();
        lines.sort();
        lines.concat()
    }

    /// The copy numbers of the messages `index` keeps (`keep`), for every
    /// digest whose copies would not be numbered 0, 1, 2... by a fresh scan.
    pub fn of_survivors(index: &Index, keep: &[bool]) -> CopyNumbers {
        let mut all: HashMap<[u8; 16], Vec<u32>> = HashMap::new();
        for (msg, _) in index.messages.iter().zip(keep).filter(|(_, k)| **k) {
            all.entry(msg.uid.digest).or_default().push(msg.uid.copy);
        }
        all.retain(|_, numbers| numbers.iter().enumerate().any(|(i, &n)| n as usize != i));
        CopyNumbers(all)
    }
}

/// Gives every message an id unique in the maildrop.
#[derive(Default)]
struct UidAssigner {
    /// The next free copy number of each digest.
    next: HashMap<[u8; 16], u32>,
    /// Copy numbers (rising) kept for the next copies of a digest.
    copies: HashMap<[u8; 16], Vec<u32>>,
}

impl UidAssigner {
    /// Numbers the copies of each digest among `new`, the messages a scan
    /// found after `known`, as one scan of them all would: the next free
    /// copy number after the known ones, or the number kept for a copy
    /// (each copy takes the first of its digest's list, used or not). Only
    /// the digests of `new` are tracked, so a scan of mail appended to a
    /// large cached maildrop holds no table of every message.
    fn number(known: &[Message], new: &mut [Message], copies: &CopyNumbers) {
        let mut ids = UidAssigner::default();
        // At its full size at once: growing it would hold two tables at the end of a full scan.
        ids.next.reserve(new.len());
        if known.is_empty() {
            // A full scan: `take` meets every digest first-hand.
            ids.copies = copies.0.clone();
        } else {
            for msg in new.iter() {
                ids.next.insert(msg.uid.digest, 0);
            }
            let wanted = copies.0.iter().filter(|(d, _)| ids.next.contains_key(*d));
            ids.copies = wanted.map(|(d, n)| (*d, n.clone())).collect();
        }
        for msg in known {
            if let Some(next) = ids.next.get_mut(&msg.uid.digest) {
                *next = msg.uid.copy + 1;
                if let Some(kept) = ids.copies.get_mut(&msg.uid.digest).filter(|c| !c.is_empty()) {
                    kept.remove(0);
                }
            }
        }
        for msg in new {
            msg.uid.copy = ids.take(&msg.uid.digest);
        }
    }

    /// The copy number of the next copy of `digest`.
    fn take(&mut self, digest: &[u8; 16]) -> u32 {
        let next = self.next.entry(*digest).or_insert(0);
        // A kept number is used if it is still free; numbers only rise, so
        // every copy of a digest gets a different one.
        let kept = self.copies.get_mut(digest).filter(|c| !c.is_empty()).map(|c| c.remove(0));
        let copy = kept.filter(|&n| n >= *next).unwrap_or(*next);
        *next = copy + 1;
        copy
    }
}

impl Building {
    /// The message, its digest (`Digests`) and copy number (`UidAssigner`)
    /// still to be given.
    fn finish(self, next_start: u64) -> Message {
        let (end, size) = match self.blank {
            // The blank line before the next `From ` line belongs to the mbox format.
            Some((blank_at, blank_size)) => (blank_at, self.size - blank_size),
            None if !self.last_has_crlf => (next_start, self.size + 2),
            None => (next_start, self.size),
        };
        Message {
            start: self.start,
            content: self.content,
            end,
            size,
            uid: Uid { digest: [0; 16], copy: 0 },
            head: self.head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(mbox: &[u8]) -> Index {
        scan(mbox, FromQuoting::Mboxrd, 1000, &CopyNumbers::default()).unwrap()
    }

    #[test]
    fn copy_numbers_keep_ids_of_identical_copies() {
        let one = b"From a Mon Jan  1 00:00:00 2024\nSubject: same\n\nsame\n\n";
        let three = [one.as_slice(), one, one].concat();
        let before = index(&three);
        let ids: Vec<String> = before.messages.iter().map(|m| m.uid.to_string()).collect();
        // The first copy is deleted: the other two keep their numbers.
        let copies = CopyNumbers::of_survivors(&before, &[false, true, true]);
        let text = copies.to_text();
        assert_eq!(CopyNumbers::parse(&text), copies);
        let after = scan(&[one.as_slice(), one, one].concat()[one.len()..], FromQuoting::Mboxrd, 10, &copies).unwrap();
        let after_ids: Vec<String> = after.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(after_ids, ids[1..]);
        // A new copy gets a number after every kept one.
        let more = scan(&three[..], FromQuoting::Mboxrd, 10, &copies).unwrap();
        let more_ids: Vec<String> = more.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(more_ids, vec![ids[1].clone(), ids[2].clone(), format!("{}-4", ids[0])]);
        // Deleting the last copy needs no record.
        assert!(CopyNumbers::of_survivors(&before, &[true, true, false]).0.is_empty());
        assert!(CopyNumbers::parse("garbage\n0123 x\n").0.is_empty());
    }

    #[test]
    fn sizes_count_crlf_and_strip_the_separator_blank_line() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n\nFrom c@d Mon Jan  1 00:00:00 2024\r\nSubject: y\r\n\r\nno newline";
        let idx = index(mbox);
        assert_eq!(idx.messages.len(), 2);
        // "Subject: x\r\n\r\nbody\r\n" = 12 + 2 + 6
        assert_eq!(idx.messages[0].size, 20);
        assert_eq!(&mbox[idx.messages[0].content as usize..idx.messages[0].end as usize], b"Subject: x\n\nbody\n");
        // "Subject: y\r\n\r\nno newline\r\n"
        assert_eq!(idx.messages[1].size, 12 + 2 + 12);
        assert_eq!(idx.scanned_end, mbox.len() as u64);
    }

    #[test]
    fn quoted_from_lines_are_one_octet_shorter() {
        let idx = index(b"From a\n>From x\n>>From y\n\n");
        assert_eq!(idx.messages.len(), 1);
        assert_eq!(idx.messages[0].size, (6 + 2) + (7 + 2));
    }

    #[test]
    fn identical_messages_get_distinct_ids() {
        let one = b"From a Mon Jan  1 00:00:00 2024\nSubject: same\n\nsame\n\n";
        let mut mbox = [one.as_slice(), one, one].concat();
        // A sender's X-UIDL header is content like any other: no id from it.
        mbox.extend_from_slice(b"From a\nX-UIDL: chosen-by-sender\n\n\n");
        let idx = index(&mbox);
        let ids: Vec<String> = idx.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(ids[0].len(), 32);
        assert_eq!(ids[1], format!("{}-2", ids[0]));
        assert_eq!(ids[2], format!("{}-3", ids[0]));
        assert_eq!(ids[3].len(), 32);
        assert!(ids.iter().all(|id| id.len() <= 70 && id.bytes().all(|b| (0x21..=0x7e).contains(&b))));
        assert_eq!((idx.messages[0].uid.copy, idx.messages[2].uid.copy), (0, 2));
    }

    #[test]
    fn a_from_line_ends_at_its_lf() {
        // A lone CR inside the From line does not start the header early.
        let idx = index(b"From a\r>From x\nSubject: s\n\nbody\n");
        assert_eq!(idx.messages[0].size, 12 + 2 + 6);
        assert_eq!(idx.messages[0].head, head_of(b"From a"));
    }

    #[test]
    fn not_an_mbox_and_empty_file() {
        assert!(matches!(
            scan(&b"Subject: x\n"[..], FromQuoting::Mboxrd, 10, &CopyNumbers::default()),
            Err(ScanError::NotMbox)
        ));
        assert_eq!(index(b"").messages.len(), 0);
    }

    #[test]
    fn message_limit() {
        let r = scan(&b"From a\n\nFrom b\n\nFrom c\n\n"[..], FromQuoting::Mboxrd, 2, &CopyNumbers::default());
        assert!(matches!(r, Err(ScanError::TooManyMessages(2))));
    }
}
