//! What every store lists: a message's place, wire size and unique id, and which part of it RETR or TOP sends.

use std::fmt;

use crate::hex;

/// A message's unique id: an MD5 (of an mbox message's `From ` line and
/// header, of a Maildir file's unique name) and its copy number among
/// byte-identical messages (shown as `<md5>` for the first, `<md5>-2`,
/// `<md5>-3`... for later copies). Unique by construction, and at most 43
/// characters in 0x21..=0x7E (RFC 1939 allows 70).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uid {
    pub digest: [u8; 16],
    pub copy: u32,
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.digest))?;
        if self.copy > 0 {
            write!(f, "-{}", self.copy + 1)?;
        }
        Ok(())
    }
}

/// One message as listed at login.
#[derive(Debug, Clone)]
pub struct Message {
    /// Offset of the `From ` line (0 in a Maildir file).
    pub start: u64,
    /// Offset of the first header byte (after an mbox `From ` line).
    pub content: u64,
    /// Offset just past the message content (the blank line that separates
    /// it from the next mbox message is not part of it).
    pub end: u64,
    /// Octets RETR sends before byte-stuffing, counted with CRLF line ends.
    pub size: u64,
    pub uid: Uid,
    /// A fingerprint of the mbox `From ` line, which UPDATE and RETR check
    /// against the file (0 for a Maildir file).
    pub head: u64,
}

/// What to send of a message.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Whole,
    /// The header, the blank line, then this many body lines.
    Top(u32),
}
