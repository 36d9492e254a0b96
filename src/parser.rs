//! Pure, resumable POP3 command parser: bytes in, typed commands out, no I/O.
//!
//! Lines end at LF (an optional CR before it is dropped). A line longer than
//! `MAX_LINE` octets yields exactly one `LineTooLong` and is discarded to its
//! end, so no command is ever taken from the middle of an overlong line.

use crate::limits::{MAX_ARG, MAX_LINE, MAX_SASL_LINE};

/// A POP3 command with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line after `PASS `, spaces included (RFC 1939 s.7).
    Pass(Vec<u8>),
    Apop {
        name: String,
        digest: String,
    },
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Top {
        msg: u32,
        lines: u32,
    },
    Uidl(Option<u32>),
    Capa,
    Stls,
    /// RFC 6856: UTF-8 mode (AUTHORIZATION only).
    Utf8,
    /// RFC 6856: LANG alone lists the languages; LANG tag (or `*`) selects one.
    Lang(Option<String>),
    /// AUTH alone lists the SASL mechanisms; otherwise a mechanism and an
    /// optional initial response (RFC 5034), still base64.
    Auth(Option<(String, Option<Vec<u8>>)>),
}

/// Why a line is not a command; each gets one `-ERR` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    LineTooLong,
    /// NUL or a bare CR inside the line.
    BadBytes,
    Unknown,
    /// Too few or too many arguments, or an argument that is not valid.
    BadArguments,
    ArgumentTooLong,
    /// Not a decimal number in 1..=4294967295 (0 allowed for TOP's count).
    BadNumber,
}

impl ParseError {
    /// The text after `-ERR ` for this error.
    pub fn message(self) -> &'static str {
        match self {
            ParseError::LineTooLong => "line too long",
            ParseError::BadBytes => "invalid characters in command",
            ParseError::Unknown => "unknown command",
            ParseError::BadArguments => "invalid arguments",
            ParseError::ArgumentTooLong => "argument too long",
            ParseError::BadNumber => "invalid message number",
        }
    }

    /// Whether the line is no POP3 command at all (another protocol's
    /// request, binary noise): only those count toward `max_bad_commands`.
    /// A known keyword with bad arguments is a POP3 client's mistake.
    pub fn is_foreign(self) -> bool {
        matches!(self, ParseError::LineTooLong | ParseError::BadBytes | ParseError::Unknown)
    }
}

/// Accumulates at most one partial line between calls.
#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    /// `line` holds a whole line already handed out; cleared on the next call.
    complete: bool,
    /// Discarding the rest of an overlong line (its error was reported).
    skipping: bool,
}

impl Parser {
    pub fn new() -> Self {
        Parser { line: Vec::with_capacity(MAX_LINE), complete: false, skipping: false }
    }

    /// Consumes bytes from `input` up to and including the end of one line
    /// and returns its command or error; returns `None` when `input` is used
    /// up without completing a line (the partial line is kept).
    pub fn next(&mut self, input: &mut &[u8]) -> Option<Result<Command, ParseError>> {
        Some(self.line(input, MAX_LINE)?.and_then(parse_line))
    }

    /// Like `next`, for the client's lines during a SASL exchange: the line
    /// as sent, without its line end.
    pub fn next_sasl(&mut self, input: &mut &[u8]) -> Option<Result<Vec<u8>, ParseError>> {
        Some(self.line(input, MAX_SASL_LINE)?.and_then(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().any(|&b| b == 0 || b == b'\r') {
                return Err(ParseError::BadBytes);
            }
            Ok(line.to_vec())
        }))
    }

    /// One line of at most `limit` octets including its LF, returned without the LF.
    fn line(&mut self, input: &mut &[u8], limit: usize) -> Option<Result<&[u8], ParseError>> {
        if self.complete {
            self.line.clear();
            self.complete = false;
        }
        while !input.is_empty() {
            let (chunk, found_lf) = match memchr::memchr(b'\n', input) {
                Some(i) => (&input[..i], true),
                None => (&input[..], false),
            };
            *input = &input[chunk.len() + usize::from(found_lf)..];
            if self.skipping {
                if found_lf {
                    self.skipping = false;
                }
                continue;
            }
            // The line plus its LF must fit in `limit` octets.
            if self.line.len() + chunk.len() + 1 > limit {
                self.line.clear();
                self.skipping = !found_lf;
                return Some(Err(ParseError::LineTooLong));
            }
            self.line.extend_from_slice(chunk);
            if found_lf {
                self.complete = true;
                return Some(Ok(&self.line));
            }
        }
        None
    }
}

/// Parses one line without its LF.
fn parse_line(line: &[u8]) -> Result<Command, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(ParseError::BadBytes);
    }
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    let keyword = keyword.to_ascii_uppercase();
    if keyword == b"PASS" {
        // The password is everything after the single space, as sent.
        return if rest.is_empty() { Err(ParseError::BadArguments) } else { Ok(Command::Pass(rest.to_vec())) };
    }
    if keyword == b"AUTH" {
        return parse_auth(rest);
    }
    let args = split_args(rest)?;
    let cmd = match (&keyword[..], args.as_slice()) {
        (b"USER", [name]) => Command::User(utf8_text(name)?),
        (b"APOP", [name, digest]) => Command::Apop { name: utf8_text(name)?, digest: text(digest)? },
        (b"STAT", []) => Command::Stat,
        (b"LIST", []) => Command::List(None),
        (b"LIST", [n]) => Command::List(Some(msg_number(n)?)),
        (b"RETR", [n]) => Command::Retr(msg_number(n)?),
        (b"DELE", [n]) => Command::Dele(msg_number(n)?),
        (b"NOOP", []) => Command::Noop,
        (b"RSET", []) => Command::Rset,
        (b"QUIT", []) => Command::Quit,
        (b"TOP", [n, lines]) => Command::Top { msg: msg_number(n)?, lines: number(lines)? },
        (b"UIDL", []) => Command::Uidl(None),
        (b"UIDL", [n]) => Command::Uidl(Some(msg_number(n)?)),
        (b"CAPA", []) => Command::Capa,
        (b"STLS", []) => Command::Stls,
        (b"UTF8", []) => Command::Utf8,
        (b"LANG", []) => Command::Lang(None),
        (b"LANG", [tag]) => Command::Lang(Some(text(tag)?)),
        (
            b"USER" | b"APOP" | b"STAT" | b"LIST" | b"RETR" | b"DELE" | b"NOOP" | b"RSET" | b"QUIT" | b"TOP" | b"UIDL"
            | b"CAPA" | b"STLS" | b"UTF8" | b"LANG",
            _,
        ) => return Err(ParseError::BadArguments),
        _ => return Err(ParseError::Unknown),
    };
    Ok(cmd)
}

/// AUTH [mechanism [initial-response]]: the initial response is exempt from
/// the argument limit (RFC 5034 bounds it by the line limit).
fn parse_auth(rest: &[u8]) -> Result<Command, ParseError> {
    let args: Vec<&[u8]> = rest.split(|&b| b == b' ').filter(|a| !a.is_empty()).collect();
    let mech = |m: &[u8]| -> Result<String, ParseError> {
        if m.len() > MAX_ARG {
            return Err(ParseError::ArgumentTooLong);
        }
        Ok(text(m)?.to_ascii_uppercase())
    };
    match args.as_slice() {
        [] => Ok(Command::Auth(None)),
        [m] => Ok(Command::Auth(Some((mech(m)?, None)))),
        [m, initial] => Ok(Command::Auth(Some((mech(m)?, Some(initial.to_vec()))))),
        _ => Err(ParseError::BadArguments),
    }
}

/// Splits arguments on spaces (runs of spaces are tolerated, as clients
/// differ) and enforces the argument length limit.
fn split_args(rest: &[u8]) -> Result<Vec<&[u8]>, ParseError> {
    let args: Vec<&[u8]> = rest.split(|&b| b == b' ').filter(|a| !a.is_empty()).collect();
    if args.len() > 2 {
        return Err(ParseError::BadArguments);
    }
    if args.iter().any(|a| a.len() > MAX_ARG) {
        return Err(ParseError::ArgumentTooLong);
    }
    Ok(args)
}

/// A printable-ASCII argument as a string.
fn text(arg: &[u8]) -> Result<String, ParseError> {
    if arg.iter().all(|b| b.is_ascii_graphic()) {
        Ok(String::from_utf8_lossy(arg).into_owned())
    } else {
        Err(ParseError::BadArguments)
    }
}

/// A user name: printable ASCII or UTF-8 (RFC 6856), no control
/// characters or spaces; SASLprep is the session's business.
fn utf8_text(arg: &[u8]) -> Result<String, ParseError> {
    match std::str::from_utf8(arg) {
        Ok(s) if s.chars().all(|c| !c.is_control() && !c.is_whitespace()) => Ok(s.to_string()),
        _ => Err(ParseError::BadArguments),
    }
}

/// A decimal number that fits in u32, built with checked arithmetic.
fn number(arg: &[u8]) -> Result<u32, ParseError> {
    if arg.is_empty() {
        return Err(ParseError::BadNumber);
    }
    arg.iter().try_fold(0u32, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(ParseError::BadNumber);
        }
        n.checked_mul(10).and_then(|n| n.checked_add(u32::from(b - b'0'))).ok_or(ParseError::BadNumber)
    })
}

/// A message number: a number of at least 1.
fn msg_number(arg: &[u8]) -> Result<u32, ParseError> {
    match number(arg)? {
        0 => Err(ParseError::BadNumber),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(parser: &mut Parser, bytes: &[u8]) -> Vec<Result<Command, ParseError>> {
        let mut input = bytes;
        let mut out = Vec::new();
        while let Some(r) = parser.next(&mut input) {
            out.push(r);
        }
        assert!(input.is_empty());
        out
    }

    /// Feeds `bytes` in chunks of `size` and returns every result.
    fn parse_chunked(bytes: &[u8], size: usize) -> Vec<Result<Command, ParseError>> {
        let mut parser = Parser::new();
        bytes.chunks(size).flat_map(|c| parse_all(&mut parser, c)).collect()
    }

    fn dialogue() -> (Vec<u8>, Vec<Result<Command, ParseError>>) {
        let long = format!("USER {}\r\n", "x".repeat(300));
        let mut bytes = Vec::new();
        let mut expect = Vec::new();
        let mut add = |line: &[u8], r: Result<Command, ParseError>| {
            bytes.extend_from_slice(line);
            expect.push(r);
        };
        add(b"CAPA\r\n", Ok(Command::Capa));
        add(b"user alice\r\n", Ok(Command::User("alice".into())));
        add(b"PASS pass with spaces \r\n", Ok(Command::Pass(b"pass with spaces ".to_vec())));
        add(
            b"APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n",
            Ok(Command::Apop { name: "bob".into(), digest: "c4c9334bac560ecc979e58001b3e22fb".into() }),
        );
        add(b"STAT\n", Ok(Command::Stat));
        add(b"LIST\r\n", Ok(Command::List(None)));
        add(b"LIST 4294967295\r\n", Ok(Command::List(Some(u32::MAX))));
        add(b"LIST 4294967297\r\n", Err(ParseError::BadNumber));
        add(b"LIST 0\r\n", Err(ParseError::BadNumber));
        add(b"LIST -1\r\n", Err(ParseError::BadNumber));
        add(b"LIST +1\r\n", Err(ParseError::BadNumber));
        add(b"retr 007\r\n", Ok(Command::Retr(7)));
        add(b"DELE 2\r\n", Ok(Command::Dele(2)));
        add(b"TOP 1 0\r\n", Ok(Command::Top { msg: 1, lines: 0 }));
        add(b"TOP 1\r\n", Err(ParseError::BadArguments));
        add(b"UIDL\r\n", Ok(Command::Uidl(None)));
        add(b"UIDL 3\r\n", Ok(Command::Uidl(Some(3))));
        add(b"NOOP\r\n", Ok(Command::Noop));
        add(b"NOOP extra\r\n", Err(ParseError::BadArguments));
        add(b"RSET\r\n", Ok(Command::Rset));
        add(b"GET / HTTP/1.1\r\n", Err(ParseError::Unknown));
        add(b"\r\n", Err(ParseError::Unknown));
        add(b"STAT\0\r\n", Err(ParseError::BadBytes));
        add(b"ST\rAT\r\n", Err(ParseError::BadBytes));
        add(long.as_bytes(), Err(ParseError::LineTooLong));
        add(format!("USER {}\r\n", "y".repeat(41)).as_bytes(), Err(ParseError::ArgumentTooLong));
        add(b"STLS\r\n", Ok(Command::Stls));
        add(b"AUTH\r\n", Ok(Command::Auth(None)));
        add(b"auth plain\r\n", Ok(Command::Auth(Some(("PLAIN".into(), None)))));
        let initial = format!("AUTH PLAIN {}\r\n", "A".repeat(200));
        add(initial.as_bytes(), Ok(Command::Auth(Some(("PLAIN".into(), Some("A".repeat(200).into_bytes()))))));
        add(b"QUIT\r\n", Ok(Command::Quit));
        (bytes, expect)
    }

    #[test]
    fn whole_dialogue_in_every_chunk_size() {
        let (bytes, expect) = dialogue();
        let mut size = 1;
        while size <= 512 {
            assert_eq!(parse_chunked(&bytes, size), expect, "chunk size {size}");
            size *= 2;
        }
        assert_eq!(parse_chunked(&bytes, bytes.len()), expect);
    }

    /// Random bytes (biased towards the octets that matter: CR, LF, NUL,
    /// space, digits, command letters) in random chunks, switching between
    /// command and SASL lines: no panic, and one answer per line end (and one
    /// for an unterminated last line already over its limit), so the parser
    /// never swallows a line or invents one.
    #[test]
    fn random_bytes_in_random_chunks_never_panic() {
        let mut rng = crate::testkit::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let alphabet = b"\r\n\0 0123456789RETRLISTDELEUSERPASS+-*";
        for _ in 0..300 {
            let len = (next() % 3000) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => next() as u8,
                    _ => alphabet[(next() % alphabet.len() as u64) as usize],
                })
                .collect();
            let mut p = Parser::new();
            let mut answers = 0usize;
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (mut chunk, tail) = rest.split_at(((next() % 300) as usize + 1).min(rest.len()));
                rest = tail;
                loop {
                    let got = if next() % 8 == 0 {
                        p.next_sasl(&mut chunk).map(|r| r.map(|_| ()))
                    } else {
                        p.next(&mut chunk).map(|r| r.map(|_| ()))
                    };
                    match got {
                        Some(_) => answers += 1,
                        None => break,
                    }
                }
                assert!(chunk.is_empty(), "input left unread");
            }
            let line_ends = bytes.iter().filter(|&&b| b == b'\n').count();
            // An unterminated last line gets its one answer early if it is
            // already over the limit of the mode it was read in.
            let tail = bytes.len() - bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let early = match tail + 1 {
                n if n <= MAX_LINE => 0..=0,
                n if n <= MAX_SASL_LINE => 0..=1,
                _ => 1..=1,
            };
            assert!(
                early.contains(&answers.wrapping_sub(line_ends)),
                "one answer per line: {answers} for {line_ends}, tail {tail}"
            );
        }
    }

    #[test]
    fn line_limit_counts_the_line_end() {
        // 253 octets + CRLF = 255: accepted. 254 + CRLF = 256: refused.
        let ok = format!("PASS {}\r\n", "p".repeat(248));
        assert_eq!(ok.len(), 255);
        assert!(matches!(parse_chunked(ok.as_bytes(), 7)[..], [Ok(Command::Pass(_))]));
        let long = format!("PASS {}\r\n", "p".repeat(249));
        assert_eq!(parse_chunked(long.as_bytes(), 7), vec![Err(ParseError::LineTooLong)]);
    }

    #[test]
    fn overlong_line_is_one_error_and_never_a_command() {
        // A command hidden in the middle of a long line must not run.
        let mut line = "A".repeat(1250).into_bytes();
        line.extend_from_slice(b"\rDELE 1\r\nQUIT\r\n");
        for size in [1, 3, 64, 4096] {
            assert_eq!(parse_chunked(&line, size), vec![Err(ParseError::LineTooLong), Ok(Command::Quit)]);
        }
    }

    #[test]
    fn sasl_lines_may_be_longer_but_are_bounded() {
        let mut p = Parser::new();
        let long = format!("{}\r\nSTAT\r\n", "B".repeat(4000));
        let mut input = long.as_bytes();
        assert_eq!(p.next_sasl(&mut input), Some(Ok("B".repeat(4000).into_bytes())));
        assert_eq!(p.next(&mut input), Some(Ok(Command::Stat)));
        let huge = format!("{}\r\n*\r\n", "B".repeat(MAX_SASL_LINE));
        let mut input = huge.as_bytes();
        assert_eq!(p.next_sasl(&mut input), Some(Err(ParseError::LineTooLong)));
        assert_eq!(p.next_sasl(&mut input), Some(Ok(b"*".to_vec())));
    }

    #[test]
    fn partial_line_is_kept() {
        let mut p = Parser::new();
        let mut input: &[u8] = b"NO";
        assert_eq!(p.next(&mut input), None);
        let mut input: &[u8] = b"OP\r\n";
        assert_eq!(p.next(&mut input), Some(Ok(Command::Noop)));
    }
}
