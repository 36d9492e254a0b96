//! Stored message bytes (mbox or Maildir) as line segments and POP3 wire lines, for indexing and streaming.
//!
//! Shared by both, so sizes always match what is sent.
//!
//! A segment is a line's content with its line end (LF, CRLF or a lone CR)
//! removed, or a piece of a line longer than the block size. Both the index
//! scan and RETR/TOP use this one reader and `WireLine::of`, so the size that
//! LIST announces is, by construction, what RETR sends.

use std::io::{self, Read};
use std::sync::Mutex;

use crate::limits::{SPARE_STORE_BLOCKS, STORE_BLOCK};

/// How a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    Lf,
    CrLf,
    /// A lone CR: a line end on the wire, but not an mbox line end.
    Cr,
    /// No line end: a piece of a long line, or the last line of the input.
    None,
}

impl LineEnd {
    /// Raw octets of the line end in the file.
    pub fn len(self) -> u64 {
        match self {
            LineEnd::Lf | LineEnd::Cr => 1,
            LineEnd::CrLf => 2,
            LineEnd::None => 0,
        }
    }
}

/// What precedes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follows {
    /// The start of the input or an LF/CRLF: an mbox line start.
    MboxLine,
    /// A lone CR: a line start on the wire only.
    Cr,
    /// A piece of the same line.
    Piece,
}

/// One segment, borrowed from the reader's buffer.
pub struct Segment<'a> {
    pub content: &'a [u8],
    pub end: LineEnd,
    pub follows: Follows,
    /// Offset of the first content byte in the input.
    pub offset: u64,
}

impl Segment<'_> {
    /// Raw octets this segment covers in the input.
    pub fn raw_len(&self) -> u64 {
        self.content.len() as u64 + self.end.len()
    }

    /// A `From ` line at an mbox line start: a message separator.
    pub fn is_separator(&self) -> bool {
        self.follows == Follows::MboxLine && self.content.starts_with(b"From ")
    }

    /// An empty line with a line end at a wire line start.
    pub fn is_blank(&self) -> bool {
        self.follows != Follows::Piece && self.content.is_empty() && self.end != LineEnd::None
    }
}

/// How `>From ` lines in the store are read: unquoted as in an mbox, or
/// sent as they are (a Maildir message file is not quoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromQuoting {
    /// One `>` is removed from any line matching `>+From `.
    Mboxrd,
    /// `>From ` becomes `From `; deeper quoting is left alone.
    Mboxo,
    /// Not an mbox: every line is sent as it is (a Maildir message file).
    Verbatim,
}

/// A segment as it goes on the wire: the content after unquoting, whether it
/// needs a stuffed `.` before it, and whether CRLF follows it.
pub struct WireLine<'a> {
    pub content: &'a [u8],
    pub stuff_dot: bool,
    pub crlf: bool,
}

impl<'a> WireLine<'a> {
    /// Maps a segment to its wire form. A message whose last segment has no
    /// line end gets a CRLF after it (see `Message::size`).
    pub fn of(seg: &Segment<'a>, quoting: FromQuoting) -> WireLine<'a> {
        let mut content = seg.content;
        if seg.follows == Follows::MboxLine && is_quoted_from(content, quoting) {
            content = &content[1..];
        }
        let stuff_dot = seg.follows != Follows::Piece && content.first() == Some(&b'.');
        WireLine { content, stuff_dot, crlf: seg.end != LineEnd::None }
    }

    /// Octets on the wire before byte-stuffing (the size LIST reports).
    pub fn size(&self) -> u64 {
        self.content.len() as u64 + if self.crlf { 2 } else { 0 }
    }
}

fn is_quoted_from(line: &[u8], quoting: FromQuoting) -> bool {
    match quoting {
        FromQuoting::Verbatim => false,
        FromQuoting::Mboxo => line.starts_with(b">From "),
        FromQuoting::Mboxrd => {
            let gts = line.iter().take_while(|&&b| b == b'>').count();
            gts > 0 && line[gts..].starts_with(b"From ")
        }
    }
}

/// What `Segments::skip_body` consumed: whole lines of a message body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BodyRun {
    /// Octets consumed (whole lines, each ending in LF or CRLF).
    pub raw: u64,
    /// Lines consumed: each adds one octet on the wire (CRLF for LF)...
    pub lines: u64,
    /// ...but those among them that end in CRLF already.
    pub crlf: u64,
    /// Quoted `>From ` lines among them: each sent one octet shorter.
    pub unquoted: u64,
    /// Input offset of the last line if it was empty (the blank line that
    /// may separate the message from the next).
    pub last_blank: Option<u64>,
}

/// The searcher of `skip_body`, built once.
fn from_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"From "))
}

/// Where the first separator (`From ` at a line start) in `run` starts
/// (`run.len()` if none), and how many quoted `From ` lines come before it.
/// Every separator and quoted line holds `From `: one search finds both
/// (the `>`s before it, back to a line start, tell which). `run` starts at
/// a line start.
fn separator_and_quoted(run: &[u8], quoting: FromQuoting) -> (usize, u64) {
    let mut unquoted = 0;
    for i in from_finder().find_iter(run) {
        let gts = run[..i].iter().rev().take_while(|&&b| b == b'>').count();
        let at = i - gts;
        if at > 0 && run[at - 1] != b'\n' {
            continue;
        }
        if gts == 0 {
            return (at, unquoted);
        }
        unquoted += u64::from(is_quoted_from(&run[at..], quoting));
    }
    (run.len(), unquoted)
}

/// The searcher for a blank line after a line end, built once.
fn blank_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"\n\n"))
}

/// The LF octets in `bytes` (memchr's vector count).
fn count_lf(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Read blocks of finished readers, for the next one (RETR, a scan): zeroing
/// a fresh 64 KiB block per message was the largest single cost of RETR.
/// What a block held before is never seen: a reader hands out only bytes it
/// read itself (`buf[start..end]`), whatever lies past `end`.
static SPARE_BLOCKS: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

fn take_block() -> Box<[u8]> {
    let spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    spare.unwrap_or_else(|| vec![0; STORE_BLOCK].into_boxed_slice())
}

fn give_block(block: Box<[u8]>) {
    let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < SPARE_STORE_BLOCKS {
        spare.push(block);
    }
}

/// memchr's LF searcher for this CPU (AVX2), called directly: the generic
/// `memchr_iter` picks an implementation on every call, which in RETR's
/// loop of one search per line cost a third of its time. None without
/// AVX2; other CPUs use `memchr_iter`.
#[cfg(target_arch = "x86_64")]
fn lf_searcher() -> Option<&'static memchr::arch::x86_64::avx2::memchr::One> {
    static ONE: std::sync::OnceLock<Option<memchr::arch::x86_64::avx2::memchr::One>> = std::sync::OnceLock::new();
    ONE.get_or_init(|| memchr::arch::x86_64::avx2::memchr::One::new(b'\n')).as_ref()
}

/// `wire_lines` with the LF searcher this CPU does best (`lf_searcher`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn wire_lines_here(window: &[u8], cr: usize, quoting: FromQuoting, out: &mut Vec<u8>) -> WireRun {
    match lf_searcher() {
        Some(one) => wire_lines(window, cr, quoting, out, one.iter(window)),
        None => wire_lines(window, cr, quoting, out, memchr::memchr_iter(b'\n', window)),
    }
}

/// `wire_lines` with memchr's LF search.
#[cfg(not(target_arch = "x86_64"))]
fn wire_lines_here(window: &[u8], cr: usize, quoting: FromQuoting, out: &mut Vec<u8>) -> WireRun {
    wire_lines(window, cr, quoting, out, memchr::memchr_iter(b'\n', window))
}

/// What `wire_lines` converted: raw octets, lines, octets fewer on the wire
/// than `raw + lines` (CRLF ends, unquoted lines), and the first CR after.
struct WireRun {
    raw: usize,
    lines: u64,
    shorter: u64,
    cr: usize,
}

/// `take_wire_lines` on `window`, whose first CR is at `cr` (`window.len()`
/// if none), with `lfs` its LF positions.
fn wire_lines(
    window: &[u8],
    mut cr: usize,
    quoting: FromQuoting,
    out: &mut Vec<u8>,
    lfs: impl Iterator<Item = usize>,
) -> WireRun {
    let (mut pos, mut lines, mut shorter) = (0, 0u64, 0u64);
    for lf in lfs {
        let mut line = &window[pos..lf];
        if cr < lf {
            if cr + 1 != lf {
                break; // a lone CR: `next`'s
            }
            line = &line[..line.len() - 1];
            shorter += 1;
            cr = memchr::memchr(b'\r', &window[lf + 1..]).map_or(window.len(), |i| lf + 1 + i);
        }
        match line.first() {
            Some(b'.') => out.push(b'.'),
            Some(b'>') if is_quoted_from(line, quoting) => {
                line = &line[1..];
                shorter += 1;
            }
            _ => {}
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        pos = lf + 1;
        lines += 1;
    }
    WireRun { raw: pos, lines, shorter, cr }
}

/// Reads segments from `R` through a fixed block buffer.
pub struct Segments<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    /// Input offset of `buf[start]`.
    offset: u64,
    follows: Follows,
    /// Index in `buf` of the first CR at or after `cr_from` (`end` if none),
    /// so the bulk path does not search the same bytes again.
    cr_at: usize,
    cr_from: usize,
}

impl<R: Read> Segments<R> {
    /// `offset` is the input offset of the first byte `inner` yields; it must
    /// be an mbox line start.
    pub fn new(inner: R, offset: u64) -> Self {
        Segments {
            inner,
            buf: take_block(),
            start: 0,
            end: 0,
            eof: false,
            offset,
            follows: Follows::MboxLine,
            cr_at: 0,
            cr_from: usize::MAX,
        }
    }

    /// Moves unread bytes to the front and reads until the buffer is full or
    /// the input ends. Returns false when nothing could be added.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof || (self.start == 0 && self.end == self.buf.len()) {
            return Ok(false);
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.cr_from = usize::MAX;
        let before = self.end;
        while self.end < self.buf.len() {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end > before)
    }

    /// Octets read and not yet consumed: the most `take_plain_lines` can consume.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Consumes the run of "plain" lines at the front of the buffer, at
    /// most `max_lines`: whole lines at an mbox line start that end in a bare
    /// LF, contain no CR and start with none of `F` (a separator), `>`
    /// (quoting), `.` (stuffing), LF or CR (blank). Each is exactly what
    /// `next` would return with `LineEnd::Lf`, needing no change on the wire
    /// but CRLF for LF, so a wire size one more than its raw size. `each`
    /// gets every line without its LF. Returns (raw octets, lines). This is
    /// the fast path of the index scan and of RETR/TOP.
    pub fn take_plain_lines(
        &mut self,
        max_lines: u64,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<(u64, u64)> {
        if self.follows != Follows::MboxLine {
            return Ok((0, 0));
        }
        let limit = self.first_cr() - self.start;
        let window = &self.buf[self.start..self.end];
        let (mut pos, mut lines) = (0, 0u64);
        while lines < max_lines && pos < limit && !matches!(window[pos], b'F' | b'>' | b'.' | b'\n' | b'\r') {
            let Some(i) = memchr::memchr(b'\n', &window[pos..limit]) else { break };
            each(&window[pos..pos + i])?;
            pos += i + 1;
            lines += 1;
        }
        self.start += pos;
        self.offset += pos as u64;
        Ok((pos as u64, lines))
    }

    /// Index in `buf` of the first CR at or after `start` (`end` if none),
    /// searched once per buffer fill.
    fn first_cr(&mut self) -> usize {
        if self.cr_from > self.start || self.cr_at < self.start {
            self.cr_at = memchr::memchr(b'\r', &self.buf[self.start..self.end]).map_or(self.end, |i| self.start + i);
            self.cr_from = self.start;
        }
        self.cr_at
    }

    /// RETR's fast path: the whole lines at the front of the buffer, from
    /// an mbox line start up to the first lone CR, appended to `out` in
    /// their wire form, line by line as `WireLine::of` maps them: an LF or
    /// CRLF line end becomes CRLF, a line starting with `.` gets another, a
    /// quoted `From ` line loses one `>`. Blank lines and `From ` lines are
    /// sent as they are (a message's bytes hold no separator). Returns (raw
    /// octets consumed, wire octets before stuffing); `out` grows by at most
    /// twice the raw octets.
    pub fn take_wire_lines(&mut self, quoting: FromQuoting, out: &mut Vec<u8>) -> (u64, u64) {
        if self.follows != Follows::MboxLine {
            return (0, 0);
        }
        let cr = self.first_cr() - self.start;
        let window = &self.buf[self.start..self.end];
        let WireRun { raw, lines, shorter, cr } = wire_lines_here(window, cr, quoting, out);
        self.cr_at = self.start + cr;
        self.start += raw;
        self.cr_from = self.start;
        self.offset += raw as u64;
        (raw as u64, (raw as u64 + lines) - shorter)
    }

    /// The index scan's fast path through a message body: the whole lines
    /// at the front of the buffer, from an mbox line start, up to the first
    /// lone CR or message separator (`From ` at a line start), summed in
    /// bulk: the line ends counted, CRs looked at only where there are any,
    /// and only lines with `From ` after `>`s looked at (for quoting).
    /// Blank lines and dots change nothing in the size, so they do not stop
    /// it; everything else is `next`'s.
    pub fn skip_body(&mut self, quoting: FromQuoting) -> BodyRun {
        self.bulk_lines(quoting, false).0
    }

    /// The same through a message header, stopping also before a blank
    /// line (the header's end) and at any CR. Gives the lines' raw octets
    /// too: each is a line's content and its LF, what the header's digest
    /// is taken over.
    pub fn skip_header(&mut self, quoting: FromQuoting) -> (BodyRun, &[u8]) {
        let (run, from) = self.bulk_lines(quoting, true);
        (run, &self.buf[from..self.start])
    }

    /// `skip_body` and `skip_header`: the run and where it starts in `buf`.
    fn bulk_lines(&mut self, quoting: FromQuoting, header: bool) -> (BodyRun, usize) {
        let from = self.start;
        if self.follows != Follows::MboxLine {
            return (BodyRun::default(), from);
        }
        let mut cr = self.first_cr() - from;
        let all = &self.buf[from..self.end];
        let mut window = all;
        if header {
            // No CR, and up to the LF that ends the line before the first blank one.
            window = &all[..cr];
            if window.first() == Some(&b'\n') {
                return (BodyRun::default(), from);
            }
            if let Some(i) = blank_finder().find(window) {
                window = &window[..=i];
            }
        }
        // Whole lines only, and none from a separator on.
        let Some(last_lf) = memchr::memrchr(b'\n', window) else { return (BodyRun::default(), from) };
        let mut run = &window[..=last_lf];
        let (cut, mut unquoted) = separator_and_quoted(run, quoting);
        run = &run[..cut];
        // CRs in the run: each must end its line (CRLF), the first lone one
        // ends the run before its line.
        let mut crlf = 0;
        while cr < run.len() {
            if run[cr + 1] != b'\n' {
                run = &run[..memchr::memrchr(b'\n', &run[..cr]).map_or(0, |i| i + 1)];
                unquoted = separator_and_quoted(run, quoting).1;
                break;
            }
            crlf += 1;
            cr = memchr::memchr(b'\r', &all[cr + 1..]).map_or(all.len(), |i| cr + 1 + i);
        }
        let lines = count_lf(run);
        let n = run.len();
        let last_blank = match run {
            [.., b'\n', b'\n'] | [b'\n'] => Some(n - 1),
            [.., b'\n', b'\r', b'\n'] | [b'\r', b'\n'] => Some(n - 2),
            _ => None,
        };
        self.cr_at = from + cr;
        self.start += n;
        self.cr_from = self.start;
        self.offset += n as u64;
        let last_blank = last_blank.map(|i| self.offset - (n - i) as u64);
        (BodyRun { raw: n as u64, lines, crlf, unquoted, last_blank }, from)
    }

    /// The next segment, or `None` at the end of the input.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> io::Result<Option<Segment<'_>>> {
        let (len, end) = loop {
            let window = &self.buf[self.start..self.end];
            let found = memchr::memchr2(b'\n', b'\r', window).map(|i| (i, window[i], window.get(i + 1).copied()));
            match found {
                Some((i, b'\n', _)) => break (i, LineEnd::Lf),
                Some((i, _, Some(b'\n'))) => break (i, LineEnd::CrLf),
                Some((i, _, Some(_))) => break (i, LineEnd::Cr),
                // A CR at the end of the buffer: its LF may follow.
                Some((i, _, None)) => {
                    if self.eof {
                        break (i, LineEnd::Cr);
                    }
                    if !self.refill()? {
                        // The buffer is full of one long line ending in CR:
                        // hand out the piece before the CR and keep the CR.
                        break (i, LineEnd::None);
                    }
                }
                None => {
                    if self.start == self.end && self.eof {
                        return Ok(None);
                    }
                    if !self.refill()? {
                        // Full buffer without a line end, or the last line at EOF.
                        if self.start == self.end {
                            return Ok(None);
                        }
                        break (self.end - self.start, LineEnd::None);
                    }
                }
            }
        };
        let seg_start = self.start;
        let consumed = len + end.len() as usize;
        self.start += consumed;
        let offset = self.offset;
        self.offset += consumed as u64;
        let follows = self.follows;
        self.follows = match end {
            LineEnd::Lf | LineEnd::CrLf => Follows::MboxLine,
            LineEnd::Cr => Follows::Cr,
            LineEnd::None => Follows::Piece,
        };
        Ok(Some(Segment { content: &self.buf[seg_start..seg_start + len], end, follows, offset }))
    }
}

impl<R> Drop for Segments<R> {
    fn drop(&mut self) {
        give_block(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<(Vec<u8>, LineEnd, Follows, u64)> {
        let mut s = Segments::new(input, 0);
        let mut out = Vec::new();
        while let Some(seg) = s.next().unwrap() {
            out.push((seg.content.to_vec(), seg.end, seg.follows, seg.offset));
        }
        out
    }

    #[test]
    fn line_ends() {
        let segs = collect(b"a\nb\r\nc\rd");
        assert_eq!(
            segs,
            vec![
                (b"a".to_vec(), LineEnd::Lf, Follows::MboxLine, 0),
                (b"b".to_vec(), LineEnd::CrLf, Follows::MboxLine, 2),
                (b"c".to_vec(), LineEnd::Cr, Follows::MboxLine, 5),
                (b"d".to_vec(), LineEnd::None, Follows::Cr, 7),
            ]
        );
    }

    #[test]
    fn long_lines_come_in_pieces_and_cover_every_byte() {
        let mut input = vec![b'x'; STORE_BLOCK * 2 + 10];
        input[STORE_BLOCK - 1] = b'\r';
        input.extend_from_slice(b"\nshort\n");
        let segs = collect(&input);
        let total: usize = segs.iter().map(|s| s.0.len() + s.1.len() as usize).sum();
        assert_eq!(total, input.len());
        assert_eq!(segs[0].1, LineEnd::None);
        assert!(segs.iter().skip(1).all(|s| s.2 != Follows::MboxLine || s.0 == b"short"));
        assert_eq!(segs.last().unwrap().0, b"short");
    }

    #[test]
    fn plain_lines_in_bulk_match_one_by_one() {
        let input = b"plain one\nplain two\nFrom x\nafter\n>q\nz\n\ncr\r\nlast";
        let mut s = Segments::new(&input[..], 0);
        let plain = |s: &mut Segments<&[u8]>| s.take_plain_lines(u64::MAX, |_| Ok(())).unwrap();
        let first = s.next().unwrap().unwrap().content.to_vec();
        assert_eq!(first, b"plain one");
        assert_eq!(plain(&mut s), (10, 1));
        assert_eq!(s.next().unwrap().unwrap().content, b"From x");
        assert_eq!(plain(&mut s), (6, 1));
        assert_eq!(plain(&mut s), (0, 0), "a quoted line is not plain");
        assert_eq!(s.next().unwrap().unwrap().content, b">q");
        assert_eq!(plain(&mut s), (2, 1));
        assert_eq!(s.next().unwrap().unwrap().content, b"");
        assert_eq!(plain(&mut s), (0, 0), "a line with a CR is not plain");
        let seg = s.next().unwrap().unwrap();
        assert_eq!((seg.content, seg.end, seg.offset), (&b"cr"[..], LineEnd::CrLf, 39));
    }

    #[test]
    fn unquoting() {
        let seg = |c: &'static [u8]| Segment { content: c, end: LineEnd::Lf, follows: Follows::MboxLine, offset: 0 };
        let rd = FromQuoting::Mboxrd;
        assert_eq!(WireLine::of(&seg(b">From x"), rd).content, b"From x");
        assert_eq!(WireLine::of(&seg(b">>From x"), rd).content, b">From x");
        assert_eq!(WireLine::of(&seg(b">>From x"), FromQuoting::Mboxo).content, b">>From x");
        assert_eq!(WireLine::of(&seg(b">Fromx"), rd).content, b">Fromx");
        let dot = WireLine::of(&seg(b".hidden"), rd);
        assert!(dot.stuff_dot && dot.crlf && dot.size() == 9);
    }

    /// RETR's bulk path writes exactly what the segment path writes for the
    /// same lines, for any bytes, and stops only where a lone CR or a piece
    /// of a line needs `next`.
    #[test]
    fn wire_lines_in_bulk_match_one_by_one() {
        let mut rng = crate::testkit::Rng(0x0c0f_fee5);
        let alphabet: &[&[u8]] =
            &[b"\n", b"\r\n", b"\r", b"From ", b">From ", b">>From x", b">", b".", b"..", b"x", b"yz ", b"F"];
        for round in 0..3000 {
            let mut bytes = Vec::new();
            for _ in 0..rng.below(60) {
                if rng.below(8) == 0 {
                    bytes.push(rng.next() as u8);
                } else {
                    bytes.extend_from_slice(rng.pick(alphabet));
                }
            }
            for quoting in [FromQuoting::Mboxrd, FromQuoting::Mboxo, FromQuoting::Verbatim] {
                let mut fast = Segments::new(&bytes[..], 0);
                let mut slow = Segments::new(&bytes[..], 0);
                fast.refill().unwrap();
                let mut got = Vec::new();
                let (raw, wire) = fast.take_wire_lines(quoting, &mut got);
                let (mut want, mut want_raw, mut want_wire) = (Vec::new(), 0, 0);
                while want_raw < raw {
                    let seg = slow.next().unwrap().unwrap();
                    let line = WireLine::of(&seg, quoting);
                    assert!(line.crlf, "round {round}: whole lines only");
                    want.extend_from_slice(if line.stuff_dot { b"." } else { b"" });
                    want.extend_from_slice(line.content);
                    want.extend_from_slice(b"\r\n");
                    want_raw += seg.raw_len();
                    want_wire += line.size();
                }
                let shown = String::from_utf8_lossy(&bytes);
                assert_eq!((raw, wire, &got), (want_raw, want_wire, &want), "round {round} {quoting:?}: {shown:?}");
                // Where it stopped, the next line has a lone CR or no LF.
                let rest = &bytes[raw as usize..];
                let line = &rest[..rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1)];
                let lone_cr = line.iter().enumerate().any(|(i, &b)| b == b'\r' && line.get(i + 1) != Some(&b'\n'));
                assert!(!line.ends_with(b"\n") || lone_cr, "round {round} {quoting:?}: stopped early: {shown:?}");
            }
        }
    }

    /// The bulk body and header paths sum exactly what the segment path
    /// gives for the same lines, for any bytes: octets, line ends, unquoted
    /// lines and a last blank line (and the header's octets are its lines'
    /// contents each with an LF); they stop only where a separator, a lone
    /// CR (any CR in a header) or a blank line in a header needs `next`.
    /// Runs alternate with single segments, as in a scan.
    #[test]
    fn skip_body_sums_what_next_gives() {
        let mut rng = crate::testkit::Rng(0x5ca1_ab1e);
        let alphabet: &[&[u8]] =
            &[b"\n", b"\n", b"\r", b"\r\n", b"From ", b">From ", b">>From x", b">", b".", b"x", b"yz ", b"F"];
        for round in 0..3000 {
            let mut bytes = Vec::new();
            for _ in 0..rng.below(80) {
                if rng.below(8) == 0 {
                    bytes.push(rng.next() as u8);
                } else {
                    bytes.extend_from_slice(rng.pick(alphabet));
                }
            }
            let shown = String::from_utf8_lossy(&bytes);
            for quoting in [FromQuoting::Mboxrd, FromQuoting::Mboxo, FromQuoting::Verbatim] {
                let mut fast = Segments::new(&bytes[..], 0);
                let mut slow = Segments::new(&bytes[..], 0);
                fast.refill().unwrap();
                let (mut at, mut mid_line) = (0, false);
                for step in 0.. {
                    let header = step % 3 == 1;
                    let (run, hashed) = if header {
                        let (run, hashed) = fast.skip_header(quoting);
                        (run, hashed.to_vec())
                    } else {
                        (fast.skip_body(quoting), Vec::new())
                    };
                    let (mut want, mut want_hashed) = (BodyRun::default(), Vec::new());
                    while want.raw < run.raw {
                        let seg = slow.next().unwrap().unwrap();
                        assert!(seg.end == LineEnd::Lf || seg.end == LineEnd::CrLf, "round {round}: whole lines");
                        assert!(!seg.is_separator(), "round {round}: no separator in a run");
                        let wire = WireLine::of(&seg, quoting);
                        want.raw += seg.raw_len();
                        want.lines += 1;
                        want.crlf += u64::from(seg.end == LineEnd::CrLf);
                        want.unquoted += seg.content.len() as u64 + 2 - wire.size();
                        want.last_blank = seg.is_blank().then_some(seg.offset);
                        want_hashed.extend_from_slice(seg.content);
                        want_hashed.push(b'\n');
                    }
                    assert_eq!(run, want, "round {round} {quoting:?} at {at}: {shown:?}");
                    if header {
                        assert_eq!(hashed, want_hashed, "round {round}: header octets");
                        assert!(run.crlf == 0 && run.last_blank.is_none(), "round {round}: no CR, no blank line");
                    }
                    // Where it stopped, the rest starts with a separator, or
                    // its first line has a lone CR or no LF (in a header: a
                    // CR, or is blank): lines for `next`.
                    at += run.raw as usize;
                    let rest = &bytes[at..];
                    let line = &rest[..rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1)];
                    let lone_cr = line.iter().enumerate().any(|(i, &b)| b == b'\r' && line.get(i + 1) != Some(&b'\n'));
                    let header_stop = header && (line.contains(&b'\r') || line == b"\n");
                    let stop =
                        !line.ends_with(b"\n") || lone_cr || header_stop || rest.starts_with(b"From ") || mid_line;
                    assert!(
                        stop,
                        "round {round} {quoting:?} step {step}: stopped early at {at}: {:?} in {shown:?}",
                        String::from_utf8_lossy(line)
                    );
                    // One segment by the slow path on both, then on.
                    let Some(seg) = slow.next().unwrap() else { break };
                    let (offset, len) = (seg.offset, seg.raw_len());
                    mid_line = matches!(seg.end, LineEnd::Cr | LineEnd::None);
                    let other = fast.next().unwrap().unwrap();
                    assert_eq!((other.offset, other.raw_len()), (offset, len), "round {round}: in step");
                    at += len as usize;
                }
            }
        }
    }
}
