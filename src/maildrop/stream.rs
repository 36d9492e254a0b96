//! Streams a stored message (RETR) or its header and first lines (TOP), byte-stuffed, in blocks.
//!
//! It also counts the message's wire size.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::lines::{FromQuoting, Segments, WireLine};
use super::message::{Message, Part};
use crate::reply::MessageSink;

/// Reads a byte range of a file with positioned reads, leaving the file's
/// offset alone.
struct Range<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos).try_into().unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The octets `send` reports for the whole of `input` (`Part::Whole`), read
/// the same way: LIST's size for a message file (Maildir).
pub fn wire_size<R: Read>(input: R, quoting: FromQuoting) -> io::Result<u64> {
    let mut segs = Segments::new(input, 0);
    let mut size = 0;
    let mut last_has_crlf = true;
    loop {
        let (raw, lines) = segs.take_plain_lines(u64::MAX, |_| Ok(()))?;
        if lines > 0 {
            size += raw + lines;
            last_has_crlf = true;
            continue;
        }
        let Some(seg) = segs.next()? else { break };
        let wire = WireLine::of(&seg, quoting);
        size += wire.size();
        last_has_crlf = wire.crlf;
    }
    Ok(if last_has_crlf { size } else { size + 2 })
}

/// Writes the message's wire form, byte-stuffed, without the final `.` line.
/// Returns the octets sent before stuffing (equal to `msg.size` for `Whole`).
pub fn send(
    file: &File,
    msg: &Message,
    quoting: FromQuoting,
    part: Part,
    out: &mut dyn MessageSink,
) -> io::Result<u64> {
    let range = Range { file, pos: msg.content, end: msg.end };
    let mut segs = Segments::new(range, msg.content);
    let mut sent = 0;
    let mut in_header = true;
    let mut body_lines = 0u32;
    let mut last_has_crlf = true;
    loop {
        // Lines TOP may still send (header lines do not count).
        let room = match part {
            Part::Top(limit) if !in_header => u64::from(limit.saturating_sub(body_lines)),
            _ => u64::MAX,
        };
        if room == 0 {
            return Ok(sent);
        }
        // Fast paths, appending straight to the reply buffer. RETR: every
        // line up to a CR converted in bulk (a line of n octets and its LF
        // become at most n + 3 octets, at most twice the input for n = 0).
        // TOP, which counts body lines: ordinary lines, which need only CRLF
        // for LF (n >= 1 octets become n + 2: at most 3/2 the input).
        let buffered = segs.buffered();
        if let Part::Whole = part {
            let (raw, wire) = segs.take_wire_lines(quoting, out.append_room(2 * buffered)?);
            if raw > 0 {
                sent += wire;
                last_has_crlf = true;
                continue;
            }
        }
        let buf = out.append_room(buffered + buffered / 2)?;
        let (raw, lines) = segs.take_plain_lines(room, |line| {
            buf.extend_from_slice(line);
            buf.extend_from_slice(b"\r\n");
            Ok(())
        })?;
        if lines > 0 {
            sent += raw + lines;
            last_has_crlf = true;
            if !in_header {
                body_lines += lines as u32;
            }
            continue;
        }
        let Some(seg) = segs.next()? else { break };
        let wire = WireLine::of(&seg, quoting);
        if wire.stuff_dot {
            out.write_all(b".")?;
        }
        out.write_all(wire.content)?;
        if wire.crlf {
            out.write_all(b"\r\n")?;
            if !in_header {
                body_lines += 1;
            }
        }
        sent += wire.size();
        last_has_crlf = wire.crlf;
        if in_header && seg.is_blank() {
            in_header = false;
        }
    }
    if !last_has_crlf {
        out.write_all(b"\r\n")?;
        sent += 2;
    }
    Ok(sent)
}
