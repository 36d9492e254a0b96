//! Builds the message index of an mbox in one streaming scan: offsets, exact wire sizes and UIDLs.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use md5::{Digest, Md5};

use super::lines::{Follows, LineEnd, MboxFormat, Segments, WireLine};
use crate::limits::MAX_UIDL;

/// A message's unique id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uid {
    /// MD5 of the `From ` line and the header, with the number of earlier
    /// messages in the maildrop that share it (byte-identical copies).
    Hash([u8; 16], u32),
    /// From an `X-UIDL:` header (written by pop3d when it rewrites a mailbox
    /// holding copies, so their ids survive the deletion of the first copy).
    Header(Box<str>),
}

impl Uid {
    /// The digest and copy number of a digest id.
    pub fn digest(&self) -> Option<([u8; 16], u32)> {
        match self {
            Uid::Hash(d, n) => Some((*d, *n)),
            Uid::Header(_) => None,
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Hash(h, n) => {
                for b in h {
                    write!(f, "{b:02x}")?;
                }
                if *n > 0 {
                    write!(f, "-{}", n + 1)?;
                }
                Ok(())
            }
            Uid::Header(s) => f.write_str(s),
        }
    }
}

/// One message of the mbox.
#[derive(Debug, Clone)]
pub struct Message {
    /// Offset of the `From ` line.
    pub start: u64,
    /// Offset of the first header byte (after the `From ` line).
    pub content: u64,
    /// Offset just past the message content (the blank line that separates
    /// it from the next message is not part of it).
    pub end: u64,
    /// Octets RETR sends before byte-stuffing, counted with CRLF line ends.
    pub size: u64,
    pub uid: Uid,
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
    hasher: Md5,
    x_uidl: Option<Box<str>>,
}

/// Scans the whole of `input` (an mbox from offset 0).
/// `copies` gives, for a digest, the copy numbers its identical copies had
/// when an earlier copy was deleted (see `CopyNumbers`), so they keep their ids.
pub fn scan<R: Read>(
    input: R,
    format: MboxFormat,
    max_messages: usize,
    copies: &CopyNumbers,
) -> Result<Index, ScanError> {
    let mut segs = Segments::new(input, 0);
    let mut index = Index::default();
    let mut cur: Option<Building> = None;
    let mut ids = UidAssigner { copies: copies.0.clone(), ..Default::default() };
    let mut end = 0;
    loop {
        // Body fast path: ordinary lines are counted in bulk.
        if let Some(b) = cur.as_mut().filter(|b| !b.in_header && !b.in_from_line) {
            let (raw, lines) = segs.take_plain_lines(u64::MAX, |_| Ok(()))?;
            if lines > 0 {
                b.size += raw + lines;
                b.blank = None;
                b.last_has_crlf = true;
                end += raw;
            }
        }
        let Some(seg) = segs.next()? else { break };
        end = seg.offset + seg.raw_len();
        if seg.is_separator() {
            if let Some(b) = cur.take() {
                index.messages.push(ids.finish(b, seg.offset));
            }
            if index.messages.len() >= max_messages {
                return Err(ScanError::TooManyMessages(max_messages));
            }
            let mut hasher = Md5::new();
            hasher.update(seg.content);
            cur = Some(Building {
                start: seg.offset,
                content: end,
                size: 0,
                in_from_line: seg.end == LineEnd::None,
                in_header: true,
                blank: None,
                last_has_crlf: true,
                hasher,
                x_uidl: None,
            });
            continue;
        }
        let Some(b) = cur.as_mut() else {
            return Err(ScanError::NotMbox);
        };
        if b.in_from_line {
            b.hasher.update(seg.content);
            b.content = end;
            b.in_from_line = seg.end == LineEnd::None;
            continue;
        }
        let wire = WireLine::of(&seg, format);
        b.size += wire.size();
        b.last_has_crlf = wire.crlf;
        let blank = seg.is_blank() && seg.end != LineEnd::Cr && seg.follows == Follows::MboxLine;
        b.blank = blank.then_some((seg.offset, wire.size()));
        if b.in_header {
            b.hasher.update(seg.content);
            b.hasher.update(b"\n");
            if seg.is_blank() {
                b.in_header = false;
            } else if b.x_uidl.is_none() {
                b.x_uidl = x_uidl_header(seg.content);
            }
        }
    }
    if let Some(b) = cur.take() {
        index.messages.push(ids.finish(b, end));
    }
    index.scanned_end = end;
    Ok(index)
}

/// The value of an `X-UIDL:` header line, if it is a valid UIDL.
fn x_uidl_header(line: &[u8]) -> Option<Box<str>> {
    const NAME: &[u8] = b"x-uidl:";
    if line.len() < NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return None;
    }
    let value = line[NAME.len()..].trim_ascii();
    let valid = (1..=MAX_UIDL).contains(&value.len()) && value.iter().all(|&b| (0x21..=0x7e).contains(&b));
    valid.then(|| String::from_utf8_lossy(value).into())
}

/// A 64-bit fingerprint of an id's text, computed without formatting it for
/// digest ids (the common case): a header id that reads like a digest id
/// gets the same fingerprint as that digest id.
fn fingerprint(uid: &Uid) -> u64 {
    let (digest, n) = match uid {
        Uid::Hash(d, n) => (*d, *n),
        Uid::Header(s) => match parse_digest_id(s) {
            Some(parsed) => parsed,
            None => {
                let mut h = DefaultHasher::new();
                s.hash(&mut h);
                return h.finish() | 1 << 63;
            }
        },
    };
    let head = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
    let tail = u64::from_le_bytes(digest[8..].try_into().unwrap_or_default());
    (head ^ tail.rotate_left(17) ^ u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15)) & !(1 << 63)
}

/// `<32 lowercase hex>` or `<32 lowercase hex>-N` (N >= 2) as (digest, N - 1):
/// the exact text `Uid::Hash` displays.
fn parse_digest_id(s: &str) -> Option<([u8; 16], u32)> {
    let (hex, n) = match s.split_once('-') {
        Some((hex, n)) if !n.starts_with('0') && !n.starts_with('+') => {
            (hex, n.parse::<u32>().ok().filter(|&n| n >= 2)? - 1)
        }
        Some(_) => return None,
        None => (s, 0),
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut d = [0u8; 16];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((d, n))
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
            let Some((digest, 0)) = words.next().and_then(parse_digest_id) else { continue };
            let numbers: Option<Vec<u32>> = words.map(|w| w.parse().ok()).collect();
            if let Some(numbers) = numbers.filter(|n| !n.is_empty()) {
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
                format!("{} {}\n", Uid::Hash(*d, 0), numbers.join(" "))
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
            if let Some((d, n)) = msg.uid.digest() {
                all.entry(d).or_default().push(n);
            }
        }
        all.retain(|_, numbers| numbers.iter().enumerate().any(|(i, &n)| n as usize != i));
        CopyNumbers(all)
    }
}

/// Gives every message an id unique in the maildrop.
#[derive(Default)]
struct UidAssigner {
    /// How many messages so far share each digest.
    hashes: HashMap<[u8; 16], u32>,
    /// Copy numbers still to hand out to the next copies of a digest.
    copies: HashMap<[u8; 16], Vec<u32>>,
    /// Fingerprints of every id given out (see `fingerprint`). A false match
    /// only moves a message to another, still unique, id.
    taken: HashSet<u64>,
}

impl UidAssigner {
    fn take(&mut self, uid: &Uid) -> bool {
        self.taken.insert(fingerprint(uid))
    }

    fn finish(&mut self, b: Building, next: u64) -> Message {
        let (end, size) = match b.blank {
            // The blank line before the next `From ` line belongs to the mbox format.
            Some((blank_at, blank_size)) => (blank_at, b.size - blank_size),
            None if !b.last_has_crlf => (next, b.size + 2),
            None => (next, b.size),
        };
        let digest: [u8; 16] = b.hasher.finalize().into();
        let header = b.x_uidl.map(Uid::Header).filter(|u| self.take(u));
        let kept = self.copies.get_mut(&digest).filter(|c| !c.is_empty()).map(|c| c.remove(0));
        if let Some(n) = kept {
            // Later new copies are numbered after every kept one.
            let next = self.hashes.entry(digest).or_insert(0);
            *next = (*next).max(n + 1);
        }
        let uid = header.or_else(|| kept.map(|n| Uid::Hash(digest, n)).filter(|u| self.take(u))).unwrap_or_else(|| {
            let n = self.hashes.entry(digest).or_insert(0);
            let mut uid = Uid::Hash(digest, *n);
            *n += 1;
            while !self.take(&uid) {
                let n = self.hashes.entry(digest).or_insert(0);
                uid = Uid::Hash(digest, *n);
                *n += 1;
            }
            uid
        });
        Message { start: b.start, content: b.content, end, size, uid }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(mbox: &[u8]) -> Index {
        scan(mbox, MboxFormat::Mboxrd, 1000, &CopyNumbers::default()).unwrap()
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
        let after = scan(&[one.as_slice(), one, one].concat()[one.len()..], MboxFormat::Mboxrd, 10, &copies).unwrap();
        let after_ids: Vec<String> = after.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(after_ids, ids[1..]);
        // A new copy gets a number after every kept one.
        let more = scan(&three[..], MboxFormat::Mboxrd, 10, &copies).unwrap();
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
        let mut mbox = one.to_vec();
        mbox.extend_from_slice(one);
        mbox.extend_from_slice(b"From a\nX-UIDL: kept-id\n\n\n");
        mbox.extend_from_slice(b"From a\nX-UIDL: kept-id\n\n\n");
        let idx = index(&mbox);
        let ids: Vec<String> = idx.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(ids[0].len(), 32);
        assert_eq!(ids[1], format!("{}-2", ids[0]));
        assert_eq!(ids[2], "kept-id");
        // A repeated header id falls back to a digest id.
        assert_eq!(ids[3].len(), 32);
        assert_eq!(idx.messages[1].uid.digest().map(|(_, n)| n), Some(1));
        assert_eq!(idx.messages[0].uid.digest().map(|(_, n)| n), Some(0));

        // A stored id is skipped when a later copy is numbered.
        let stored = format!("From a Mon Jan  1 00:00:00 2024\nX-UIDL: {}-2\nSubject: same\n\nsame\n\n", ids[0]);
        let idx = index(&[one.as_slice(), stored.as_bytes(), one.as_slice()].concat());
        let ids2: Vec<String> = idx.messages.iter().map(|m| m.uid.to_string()).collect();
        assert_eq!(ids2, vec![ids[0].clone(), format!("{}-2", ids[0]), format!("{}-3", ids[0])]);
    }

    #[test]
    fn not_an_mbox_and_empty_file() {
        assert!(matches!(
            scan(&b"Subject: x\n"[..], MboxFormat::Mboxrd, 10, &CopyNumbers::default()),
            Err(ScanError::NotMbox)
        ));
        assert_eq!(index(b"").messages.len(), 0);
    }

    #[test]
    fn message_limit() {
        let r = scan(&b"From a\n\nFrom b\n\nFrom c\n\n"[..], MboxFormat::Mboxrd, 2, &CopyNumbers::default());
        assert!(matches!(r, Err(ScanError::TooManyMessages(2))));
    }
}
