//! What every store lists: a message's place, wire size and unique id, and which part of it RETR or TOP sends.

use std::fmt;

use crate::hex;

/// A message's unique id: an MD5 (of an mbox message's `From ` line and
/// header, of a Maildir file's unique name) and its copy number among
/// byte-identical messages (shown as `<md5>` for the first, `<md5>-2`,
/// `<md5>-3`... for later copies). Unique by construction, and at most 43
/// characters in 0x21..=0x7E (RFC 1939 allows 70).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uid {
    pub digest: [u8; 16],
    pub copy: u32,
}

impl Uid {
    /// The uid whose text (`Display`) is exactly `s`: `<32 lowercase hex>`,
    /// or `<32 lowercase hex>-N` with N >= 2 written plainly.
    pub fn parse(s: &str) -> Option<Uid> {
        let (hex, copy) = match s.split_once('-') {
            Some((hex, n)) if !n.starts_with('0') && !n.starts_with('+') => {
                (hex, n.parse::<u32>().ok().filter(|&n| n >= 2)? - 1)
            }
            Some(_) => return None,
            None => (s, 0),
        };
        Some(Uid { digest: hex::decode(hex)?, copy })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_reads_back_from_its_text_only() {
        for uid in
            [Uid { digest: [0xab; 16], copy: 0 }, Uid { digest: [7; 16], copy: 1 }, Uid { digest: [0; 16], copy: 41 }]
        {
            assert_eq!(Uid::parse(&uid.to_string()), Some(uid));
        }
        let hex = "ab".repeat(16);
        for other in
            [hex.to_uppercase(), format!("{hex}-1"), format!("{hex}-02"), format!("{hex}-+2"), format!("{hex}-")]
        {
            assert_eq!(Uid::parse(&other), None, "{other}");
        }
    }
}
