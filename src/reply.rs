//! Replies: typed response codes (RFC 2449/3206), status lines, and the reply buffer that batches answers.
//!
//! The buffer collects answers so pipelined commands leave in few writes,
//! grows only while a reply needs it, and is given back when the session
//! waits.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

use crate::limits::{IDLE_WRITE_BUFFER, SPARE_REPLY_BUFFERS, WRITE_BUFFER};

/// A response code (RFC 2449 RESP-CODES, RFC 3206), sent in brackets after
/// `-ERR` so a client can tell what to do without reading the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The maildrop is open in another session.
    InUse,
    /// A passing problem on the server: try again later.
    SysTemp,
    /// A lasting problem on the server: trying again will not help.
    SysPerm,
    /// The credentials were wrong, or may not be used here.
    Auth,
    /// Logged in again sooner than LOGIN-DELAY allows (RFC 2449 section 8.1.1).
    LoginDelay,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Code::InUse => "[IN-USE]",
            Code::SysTemp => "[SYS/TEMP]",
            Code::SysPerm => "[SYS/PERM]",
            Code::Auth => "[AUTH]",
            Code::LoginDelay => "[LOGIN-DELAY]",
        })
    }
}

/// Full-size reply buffers given back by sessions that went idle, for the
/// next RETR of any session: taking a fresh 128 KiB block for every message
/// costs an mmap, page faults and an munmap each time with musl's malloc
/// (and glibc's with a fixed mmap threshold). Idle sessions hold none.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn take_spare() -> Option<Vec<u8>> {
    SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop()
}

/// Keeps a full-size buffer for later (emptied: a Vec shows nothing past its
/// length, so no session can see what another one sent); drops the rest.
fn give_spare(mut buf: Vec<u8>) {
    if buf.capacity() != WRITE_BUFFER {
        return;
    }
    buf.clear();
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < SPARE_REPLY_BUFFERS {
        spare.push(buf);
    }
}

/// A command the session has read and not answered yet. The one way to an
/// `Answered` is to hand it to one of `ReplyWriter`'s answers, which takes
/// it by value: every command gets exactly one answer, by construction.
#[must_use = "every command is answered once"]
pub struct Pending(());

impl Pending {
    /// One per command line, made by the session's read loop (or, in inetd
    /// mode with system accounts, for the login the relayed session answers).
    pub(crate) fn new() -> Pending {
        Pending(())
    }
}

impl Pending {
    /// The command is answered elsewhere: in inetd mode with system
    /// accounts the login is answered by the user's own process, to which
    /// the client goes on.
    pub fn delegate(self) -> Answered {
        Answered(())
    }
}

/// Proof that a command was answered.
pub struct Answered(());

/// Buffers writes to `W` up to `WRITE_BUFFER` octets. Unlike `BufWriter`,
/// memory is taken as replies need it, and `release` frees a large buffer,
/// so an idle session holds almost none. Commands are answered through it
/// (`ok`, `err`, `err_code`, `listing`, `challenge`), each taking the
/// command's `Pending`; lines no command asked for (the greeting, a farewell
/// before closing) have their own methods.
pub struct ReplyWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ReplyWriter<W> {
    pub fn new(inner: W) -> Self {
        ReplyWriter { inner, buf: Vec::new() }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The stream, for reading and for switching to TLS. Flush first: bytes
    /// still buffered are written later, to whatever the stream is then.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// `+OK text`, the answer to `_command`.
    pub fn ok(&mut self, _command: Pending, text: impl fmt::Display) -> io::Result<Answered> {
        self.line(format_args!("+OK {text}")).map(|_| Answered(()))
    }

    /// `+OK` alone (NOOP's answer).
    pub fn ok_bare(&mut self, _command: Pending) -> io::Result<Answered> {
        write!(Raw(self), "+OK\r\n").map(|_| Answered(()))
    }

    /// `-ERR text`, the answer to `_command`.
    pub fn err(&mut self, _command: Pending, text: impl fmt::Display) -> io::Result<Answered> {
        self.line(format_args!("-ERR {text}")).map(|_| Answered(()))
    }

    /// `-ERR [CODE] text`, the answer to `_command`.
    pub fn err_code(&mut self, _command: Pending, code: Code, text: impl fmt::Display) -> io::Result<Answered> {
        self.line(format_args!("-ERR {code} {text}")).map(|_| Answered(()))
    }

    /// `+ data`: a SASL challenge, the answer to `_command` (the client's
    /// next line is the exchange's next step).
    pub fn challenge(&mut self, _command: Pending, data: impl fmt::Display) -> io::Result<Answered> {
        self.line(format_args!("+ {data}")).map(|_| Answered(()))
    }

    /// `+OK first`, then the lines of a multi-line answer to `_command`,
    /// ended by `Listing::end`.
    pub fn listing(&mut self, _command: Pending, first: impl fmt::Display) -> io::Result<Listing<'_, W>> {
        self.line(format_args!("+OK {first}"))?;
        Ok(Listing { writer: self })
    }

    /// `+OK text` that no command asked for: the greeting.
    pub fn greeting(&mut self, text: impl fmt::Display) -> io::Result<()> {
        self.line(format_args!("+OK {text}"))
    }

    /// `-ERR [CODE] text` that no command asked for, before the session
    /// closes: an autologout, a refusal before the greeting.
    pub fn farewell(&mut self, code: Option<Code>, text: impl fmt::Display) -> io::Result<()> {
        match code {
            Some(code) => self.line(format_args!("-ERR {code} {text}")),
            None => self.line(format_args!("-ERR {text}")),
        }
    }

    fn line(&mut self, text: fmt::Arguments<'_>) -> io::Result<()> {
        write!(Raw(self), "{text}\r\n")
    }

    /// Writes out what is buffered, without flushing the stream.
    fn write_buffered(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let result = self.inner.write_all(&self.buf);
            self.buf.clear();
            result?;
        }
        Ok(())
    }

    /// Writes out what is buffered and flushes the stream (before the
    /// session waits for input, switches to TLS or closes).
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        self.inner.flush()
    }

    /// Gives up a buffer grown past the idle size (call while waiting for
    /// input); a full-size one goes to the spares.
    pub fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > IDLE_WRITE_BUFFER {
            give_spare(std::mem::take(&mut self.buf));
        }
    }

    /// Appends `data`, writing out first when the buffer would pass its size.
    fn write_raw(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.write_buffered()?;
            if data.len() >= WRITE_BUFFER {
                return self.inner.write(data);
            }
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    /// Writes out what is buffered first if `room` more would pass
    /// `WRITE_BUFFER`. A buffer short of room becomes a spare full-size one
    /// if there is one, else is taken at full size at once when the piece is
    /// large (so a big message never makes it grow, and copy, step by step)
    /// and grows as a Vec does for small ones.
    fn room(&mut self, room: usize) -> io::Result<&mut Vec<u8>> {
        if self.buf.len() + room > WRITE_BUFFER {
            self.write_buffered()?;
        }
        if self.buf.capacity() - self.buf.len() < room {
            match take_spare() {
                Some(mut spare) => {
                    spare.extend_from_slice(&self.buf);
                    self.buf = spare;
                }
                None if self.buf.len() + room > WRITE_BUFFER / 4 => {
                    self.buf.reserve_exact(WRITE_BUFFER.max(self.buf.len() + room) - self.buf.len())
                }
                None => self.buf.reserve(room),
            }
        }
        Ok(&mut self.buf)
    }
}

impl<W: Write> Drop for ReplyWriter<W> {
    fn drop(&mut self) {
        give_spare(std::mem::take(&mut self.buf));
    }
}

/// The writer's buffer as a `Write`, inside this file only: answers go
/// through the methods above.
struct Raw<'a, W: Write>(&'a mut ReplyWriter<W>);

impl<W: Write> Write for Raw<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write_raw(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A multi-line answer being written: lines (or a message's octets, for
/// RETR and TOP, already byte-stuffed by the maildrop), then `end`.
pub struct Listing<'a, W: Write> {
    writer: &'a mut ReplyWriter<W>,
}

impl<W: Write> Listing<'_, W> {
    /// One line of the listing (which starts with no `.`: CAPA, LIST, UIDL).
    pub fn line(&mut self, text: impl fmt::Display) -> io::Result<()> {
        self.writer.line(format_args!("{text}"))
    }

    /// The terminating `.`: the command is answered.
    pub fn end(self) -> io::Result<Answered> {
        self.writer.write_raw(b".\r\n").map(|_| Answered(()))
    }
}

impl<W: Write> Write for Listing<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writer.write_raw(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> MessageSink for Listing<'_, W> {
    fn append_room(&mut self, room: usize) -> io::Result<&mut Vec<u8>> {
        self.writer.room(room)
    }
}

/// Where RETR and TOP write a message: a `Write` that also lends its
/// buffer, so the LF to CRLF copy appends to it directly instead of going
/// through two `write` calls per line.
pub trait MessageSink: Write {
    /// A buffer with room to append `room` octets without growing.
    fn append_room(&mut self, room: usize) -> io::Result<&mut Vec<u8>>;
}

impl MessageSink for Vec<u8> {
    fn append_room(&mut self, room: usize) -> io::Result<&mut Vec<u8>> {
        self.reserve(room);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of every write.
    #[derive(Default)]
    struct Sink(Vec<usize>, Vec<u8>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.push(data.len());
            self.1.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn status_lines_and_codes() {
        let mut w = ReplyWriter::new(Sink::default());
        w.greeting("POP3 server ready").unwrap();
        w.ok(Pending::new(), "2 320").unwrap();
        w.err(Pending::new(), "no such message").unwrap();
        for code in [Code::InUse, Code::SysTemp, Code::SysPerm, Code::Auth, Code::LoginDelay] {
            w.err_code(Pending::new(), code, "x").unwrap();
        }
        w.challenge(Pending::new(), "AAA=").unwrap();
        let mut list = w.listing(Pending::new(), "2 messages").unwrap();
        list.line("1 120").unwrap();
        list.end().unwrap();
        w.farewell(None, "autologout: idle too long").unwrap();
        w.flush().unwrap();
        assert_eq!(
            String::from_utf8(w.get_ref().1.clone()).unwrap(),
            "+OK POP3 server ready\r\n+OK 2 320\r\n-ERR no such message\r\n-ERR [IN-USE] x\r\n\
             -ERR [SYS/TEMP] x\r\n-ERR [SYS/PERM] x\r\n-ERR [AUTH] x\r\n-ERR [LOGIN-DELAY] x\r\n+ AAA=\r\n\
             +OK 2 messages\r\n1 120\r\n.\r\n-ERR autologout: idle too long\r\n"
        );
    }

    #[test]
    fn collects_small_replies_into_one_write_and_frees_big_buffers() {
        let mut w = ReplyWriter::new(Sink::default());
        for _ in 0..100 {
            w.ok(Pending::new(), "").unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.get_ref().0, vec![600]);
        let big = vec![b'x'; WRITE_BUFFER * 2 + 7];
        let mut message = w.listing(Pending::new(), "big").unwrap();
        for chunk in big.chunks(1000) {
            message.write_all(chunk).unwrap();
        }
        message.end().unwrap();
        w.flush().unwrap();
        assert!(w.get_ref().0[1..].iter().all(|&n| n <= WRITE_BUFFER));
        assert_eq!(w.get_ref().1.len(), 600 + 9 + big.len() + 3);
        assert!(w.buf.capacity() > IDLE_WRITE_BUFFER);
        w.release();
        assert_eq!(w.buf.capacity(), 0);
    }

    #[test]
    fn a_spare_buffer_comes_back_empty() {
        let mut w = ReplyWriter::new(Sink::default());
        w.room(WRITE_BUFFER / 2).unwrap().extend_from_slice(b"someone else's mail");
        assert_eq!(w.buf.capacity(), WRITE_BUFFER);
        w.flush().unwrap();
        w.release();
        assert_eq!(w.buf.capacity(), 0, "an idle session holds no buffer");
        for _ in 0..SPARE_REPLY_BUFFERS + 1 {
            let mut other = ReplyWriter::new(Sink::default());
            let buf = other.room(WRITE_BUFFER / 2).unwrap();
            assert!(buf.is_empty() && buf.capacity() == WRITE_BUFFER);
        }
        assert!(SPARE.lock().unwrap().len() <= SPARE_REPLY_BUFFERS);
    }

    #[test]
    fn append_room_writes_out_first_when_the_buffer_would_pass_its_size() {
        let mut w = ReplyWriter::new(Sink::default());
        w.listing(Pending::new(), "3 octets").unwrap().append_room(100).unwrap().extend_from_slice(b"abc");
        assert!(w.get_ref().0.is_empty(), "nothing written while it fits");
        assert!(w.buf.capacity() >= 14 + 100);
        w.room(WRITE_BUFFER / 2).unwrap();
        assert_eq!(w.buf.capacity(), WRITE_BUFFER, "taken at full size for a large piece");
        assert!(w.get_ref().0.is_empty(), "nothing written while it fits");
        let room = WRITE_BUFFER - 5;
        let buf = w.room(room).unwrap();
        assert!(buf.is_empty() && buf.capacity() >= room);
        assert_eq!(w.get_ref().1, b"+OK 3 octets\r\nabc");
        w.flush().unwrap();
        assert_eq!(w.buf.capacity(), WRITE_BUFFER, "kept until the session waits");
    }
}
