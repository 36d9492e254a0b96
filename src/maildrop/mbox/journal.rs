//! The UPDATE journal's format: its header line, where it holds each moved piece of the mailbox, read and written.
//!
//! Format 5 (this pop3d), one header line then the pieces, each at its own
//! offset, then a map of them and the copy numbers:
//!
//! ```text
//! POP3D-JOURNAL-5 STATE INO FIRST OLD_LEN NEW_LEN COPIES_LEN MAP_AT MAP_LEN\n
//! (up to HEADER_ROOM: zeros)  piece  (hole)  piece ...
//! at MAP_AT: "AT LEN\n" per piece, in mailbox order; then COPIES_LEN octets of copy numbers
//! ```
//!
//! A piece that covers a whole block of the filesystem starts at an offset
//! congruent to its place in the mailbox modulo the block size (`place`):
//! on a filesystem that shares blocks between files (btrfs, XFS with
//! reflink, ZFS block cloning) copy_file_range(2) then clones those blocks
//! instead of writing them, and the moved tail is written once, into its
//! new place, instead of twice. The holes between pieces cost nothing.
//! Formats 2-4 (earlier pop3d) hold the data in one run right after the
//! header line; they are still read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::hex;

pub const MAGIC: &str = "POP3D-JOURNAL-5";
const MAGIC_4: &str = "POP3D-JOURNAL-4";

/// Offset of the state byte in a format-4 or -5 journal: right after `MAGIC `.
pub const STATE_AT: u64 = MAGIC.len() as u64 + 1;
const _: () = assert!(MAGIC.len() == MAGIC_4.len(), "the state byte is where format 4 has it");

/// Where a format-5 journal's first piece may start: room for the longest
/// header line (7 numbers of up to 20 digits: 165 octets).
pub const HEADER_ROOM: u64 = 256;

/// Longest map or copy-number text a journal may carry (a map line is at
/// most 42 octets a piece, a piece at least one message).
const MAX_TEXT: u64 = 1 << 26;

/// Written at the new length before the mailbox is cut (a delivery never
/// starts with a NUL); as much of it as the old tail has room for.
pub const CUT_MARK: &[u8] = b"\0POP3D-CUT\0";

/// How far an update got, as its journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Formats 4 and 5, state `P`: the mailbox has not been cut.
    Pending,
    /// Formats 4 and 5, state `M`: the cut marker is written; the cut may be done.
    Marked,
    /// Formats 2 and 3: the MD5 of the old bytes in `new_len..old_len`,
    /// which step 2 never touches.
    Legacy([u8; 16]),
}

/// What a journal says about the rewrite it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub progress: Progress,
    pub ino: u64,
    pub first: u64,
    pub old_len: u64,
    pub new_len: u64,
    /// Octets of copy-number text after the map; None in a format-2
    /// journal (an earlier pop3d), which leaves `USER.uids` alone.
    pub copies_len: Option<u64>,
    /// Format 5: where the map of the pieces starts, and its length. None:
    /// an earlier format, whose data follows the header line in one run.
    pub map: Option<(u64, u64)>,
}

impl Header {
    /// The header line (format 5 with a map, 4 without; 3 for `Legacy`).
    pub fn line(&self) -> String {
        let Header { ino, first, old_len, new_len, copies_len, progress, map } = self;
        let copies_len = copies_len.map_or("-".to_string(), |n| n.to_string());
        match (progress, map) {
            (Progress::Legacy(md5), _) => {
                format!("POP3D-JOURNAL-3 {ino} {first} {old_len} {new_len} {copies_len} {}\n", hex::encode(md5))
            }
            (_, map) => {
                let state = if *progress == Progress::Pending { 'P' } else { 'M' };
                let head = format!("{state} {ino} {first} {old_len} {new_len} {copies_len}");
                match map {
                    Some((at, len)) => format!("{MAGIC} {head} {at} {len}\n"),
                    None => format!("{MAGIC_4} {head}\n"),
                }
            }
        }
    }

    pub fn parse(line: &str) -> Option<Header> {
        let mut f = line.split_ascii_whitespace();
        // Formats 2 and 3 (earlier pop3d) carry an MD5 and no state; format
        // 2 no copy numbers either; format 5 a map after the copy numbers.
        let (format, state) = match f.next()? {
            MAGIC => (5, Some(f.next()?)),
            MAGIC_4 => (4, Some(f.next()?)),
            "POP3D-JOURNAL-3" => (3, None),
            "POP3D-JOURNAL-2" => (2, None),
            _ => return None,
        };
        let mut num = || f.next()?.parse::<u64>().ok();
        let (ino, first, old_len, new_len) = (num()?, num()?, num()?, num()?);
        let copies_len = match format {
            2 => None,
            _ => match f.next()? {
                "-" => None,
                n => Some(n.parse().ok()?),
            },
        };
        let map = match format {
            5 => Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?)),
            _ => None,
        };
        let progress = match state {
            Some("P") => Progress::Pending,
            Some("M") => Progress::Marked,
            Some(_) => return None,
            None => Progress::Legacy(hex::decode(f.next()?)?),
        };
        // An update only shrinks the file, from `first` on.
        (first <= new_len && new_len < old_len).then_some(Header {
            progress,
            ino,
            first,
            old_len,
            new_len,
            copies_len,
            map,
        })
    }

    /// As much of `CUT_MARK` as the old tail has room for (in u64 first: a
    /// tail of 4 GiB or more must not wrap on 32-bit targets).
    pub fn cut_mark(&self) -> &'static [u8] {
        &CUT_MARK[..(self.old_len - self.new_len).min(CUT_MARK.len() as u64) as usize]
    }
}

/// Octets `at..at + len` of a journal: one piece of the new mailbox content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub at: u64,
    pub len: u64,
}

/// A journal as read back: what it says, where its pieces are (in mailbox
/// order: together they are the new content from `first` on), and where
/// its copy numbers start.
pub struct Journal {
    pub header: Header,
    pub pieces: Vec<Span>,
    pub copies_at: u64,
}

impl Journal {
    /// Reads the journal `file`. Ok(None): not a journal this pop3d can
    /// finish (an unknown format, or numbers that do not add up).
    pub fn read(file: &File) -> io::Result<Option<Journal>> {
        let mut line = String::new();
        BufReader::new(file).take(512).read_line(&mut line)?;
        let Some(header) = Header::parse(&line) else { return Ok(None) };
        let line_len = line.len() as u64;
        let data_len = header.new_len - header.first;
        let Some((map_at, map_len)) = header.map else {
            let pieces = if data_len > 0 { vec![Span { at: line_len, len: data_len }] } else { vec![] };
            return Ok(Some(Journal { header, pieces, copies_at: line_len + data_len }));
        };
        if map_len > MAX_TEXT {
            return Ok(None);
        }
        let mut text = vec![0u8; map_len as usize];
        match file.read_exact_at(&mut text, map_at) {
            // A map past the end: not the journal that was written.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            read => read?,
        }
        let pieces = std::str::from_utf8(&text).ok().and_then(|t| parse_map(t, line_len, map_at, data_len));
        Ok(pieces.map(|pieces| Journal { header, pieces, copies_at: map_at + map_len }))
    }

    /// The copy numbers it carries (None: a format-2 journal).
    pub fn copies(&self, file: &File) -> io::Result<Option<String>> {
        let Some(copies_len) = self.header.copies_len else { return Ok(None) };
        if copies_len > MAX_TEXT {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "journal copy numbers too long"));
        }
        let mut text = vec![0u8; copies_len as usize];
        file.read_exact_at(&mut text, self.copies_at)?;
        let text = String::from_utf8(text);
        text.map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "journal copy numbers are not text"))
    }
}

/// The pieces a map lists, if they follow the header line in order,
/// without overlapping, end before the map and add up to `data_len`.
fn parse_map(text: &str, line_len: u64, map_at: u64, data_len: u64) -> Option<Vec<Span>> {
    let (mut pieces, mut end, mut total) = (Vec::new(), line_len, 0u64);
    for line in text.lines() {
        let (at, len) = line.split_once(' ')?;
        let span = Span { at: at.parse().ok()?, len: len.parse().ok()? };
        if span.at < end || span.len == 0 {
            return None;
        }
        end = span.at.checked_add(span.len)?;
        total = total.checked_add(span.len)?;
        pieces.push(span);
    }
    let whole_lines = text.is_empty() || text.ends_with('\n');
    (total == data_len && end <= map_at && whole_lines).then_some(pieces)
}

/// The map text of `pieces`.
pub fn map_text(pieces: &[Span]) -> String {
    pieces.iter().map(|s| format!("{} {}\n", s.at, s.len)).collect()
}

/// Where a journal holds pieces that lie at `sources` (start, length) in
/// their files: from `HEADER_ROOM` on, in order. A piece that covers at
/// least one whole `align`-sized block starts at the next offset congruent
/// to its start modulo `align`, so that its whole blocks can be cloned;
/// any other follows the one before directly.
pub fn place(sources: impl Iterator<Item = (u64, u64)>, align: u64) -> Vec<Span> {
    let mut end = HEADER_ROOM;
    let mut pieces = Vec::new();
    for (start, len) in sources {
        let at = if head_len(start, align) + align <= len {
            end + (start % align + align - end % align) % align
        } else {
            end
        };
        pieces.push(Span { at, len });
        end = at + len;
    }
    pieces
}

/// Octets from `at` to the next multiple of `align` (0 on one).
pub fn head_len(at: u64, align: u64) -> u64 {
    (align - at % align) % align
}

/// The block size a clone between `file` and a journal must respect: the
/// file's I/O block size (st_blksize: the filesystem block on btrfs, XFS and
/// ext4, the record size on ZFS), where it is a power of two a clone could
/// use; 1 (no alignment) otherwise.
pub fn clone_align(file: &File) -> u64 {
    match file.metadata().map(|m| m.blksize()) {
        Ok(b) if b.is_power_of_two() && (512..=1 << 20).contains(&b) => b,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            progress: Progress::Pending,
            ino: 2,
            first: 3,
            old_len: 40,
            new_len: 5,
            copies_len: Some(9),
            map: Some((4096, 12)),
        };
        assert_eq!(Header::parse(&h.line()), Some(h.clone()));
        assert!(h.line().starts_with("POP3D-JOURNAL-5 P "));
        let m = Header { progress: Progress::Marked, ..h.clone() };
        assert_eq!(Header::parse(&m.line()), Some(m.clone()));
        assert_eq!(h.line().as_bytes()[STATE_AT as usize], b'P');
        assert_eq!(m.line().as_bytes()[STATE_AT as usize], b'M');
        let v4 = Header { map: None, ..m.clone() };
        assert!(v4.line().starts_with("POP3D-JOURNAL-4 M "));
        assert_eq!(v4.line().as_bytes()[STATE_AT as usize], b'M');
        assert_eq!(Header::parse(&v4.line()), Some(v4.clone()));
        assert_eq!(Header::parse("garbage"), None);
        assert_eq!(Header::parse(&Header { first: 6, ..h.clone() }.line()), None, "data of negative length");
        assert_eq!(Header::parse(&Header { new_len: 41, ..h.clone() }.line()), None, "a file that grew");
        assert_eq!(Header::parse(&h.line().replace(" P ", " X ")), None, "an unknown state");
        assert_eq!(Header::parse(&h.line().replace(" 4096 12", " 4096")), None, "a map without its length");
        let v3 = Header { progress: Progress::Legacy([7; 16]), map: None, ..h.clone() };
        assert_eq!(Header::parse(&v3.line()), Some(v3.clone()));
        let v2 = Header { copies_len: None, ..v3 };
        assert_eq!(Header::parse("POP3D-JOURNAL-2 2 3 40 5 07070707070707070707070707070707\n"), Some(v2));
        let longest = Header { ino: u64::MAX, first: u64::MAX - 1, old_len: u64::MAX, new_len: u64::MAX - 1, ..h };
        let longest = Header { copies_len: Some(u64::MAX), map: Some((u64::MAX, u64::MAX)), ..longest };
        assert!(longest.line().len() as u64 <= HEADER_ROOM);
    }

    /// Pieces that span a whole block sit at offsets congruent to their
    /// sources'; smaller ones follow on; none overlap.
    #[test]
    fn pieces_are_placed_congruent_where_a_block_can_be_cloned() {
        let sources = [(1000, 10_000), (20_000, 100), (30_001, 4096), (40_000, 8191), (50_000, 5000)];
        let pieces = place(sources.iter().copied(), 4096);
        let mut end = HEADER_ROOM;
        for ((start, len), p) in sources.iter().zip(&pieces) {
            assert_eq!(p.len, *len);
            assert!(p.at >= end && p.at < end + 4096, "{p:?} after {end}");
            if head_len(*start, 4096) + 4096 <= *len {
                assert_eq!(p.at % 4096, start % 4096, "{p:?} holds a whole block of {start}");
            } else {
                assert_eq!(p.at, end, "a piece with no whole block follows on");
            }
            end = p.at + p.len;
        }
        let text = map_text(&pieces);
        let total = sources.iter().map(|s| s.1).sum();
        assert_eq!(parse_map(&text, 100, end, total), Some(pieces.clone()));
        assert_eq!(parse_map(&text, 100, end - 1, total), None, "a piece over the map");
        assert_eq!(parse_map(&text, 100, end, total + 1), None, "pieces that do not add up");
        assert_eq!(parse_map(&text, pieces[0].at + 1, end, total), None, "a piece over the header line");
        assert_eq!(parse_map(&text[..text.len() - 1], 100, end, total), None, "a torn last line");
        assert_eq!(parse_map("", 100, 100, 0), Some(vec![]), "nothing kept after the first deleted message");
        // No alignment (a block size a clone cannot use): one run.
        let flat = place(sources.iter().copied(), 1);
        assert!(flat.windows(2).all(|w| w[0].at + w[0].len == w[1].at) && flat[0].at == HEADER_ROOM);
    }
}
