//! The X-UIDL migration option: ids that qpopper or mailutils wrote in `X-UIDL:` headers are reused as UIDLs, so clients moving from those servers download nothing twice. Any sender can write the header, so it is off by default, and a malformed, duplicate or colliding one falls back to pop3d's own id: ids stay unique.

use std::collections::HashMap;
use std::io::{self, Write};

use super::{Maildrop, Part};
use crate::reply::MessageSink;

/// A header line longer than this is not an X-UIDL line (RFC 1939 ids are
/// at most 70 characters); it is skipped without being kept.
const MAX_HEADER_LINE: usize = 1024;

/// A sink for TOP n 0 that keeps only the first `X-UIDL:` value, holding
/// no more than a line (and a block) of the header at a time.
#[derive(Default)]
struct HeaderScan {
    pending: Vec<u8>,
    /// Inside a line too long to be an X-UIDL line.
    skipping: bool,
    found: Option<Vec<u8>>,
}

impl HeaderScan {
    fn scan(&mut self) {
        let mut start = 0;
        while let Some(len) = memchr::memchr(b'\n', &self.pending[start..]) {
            let line = &self.pending[start..start + len];
            if !self.skipping && self.found.is_none() && line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"x-uidl:") {
                self.found = Some(line[7..].trim_ascii().to_vec());
            }
            self.skipping = false;
            start += len + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_HEADER_LINE {
            self.pending.clear();
            self.skipping = true;
        }
    }
}

impl Write for HeaderScan {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(data);
        self.scan();
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MessageSink for HeaderScan {
    fn append_room(&mut self, room: usize) -> io::Result<&mut Vec<u8>> {
        self.scan();
        self.pending.reserve(room);
        Ok(&mut self.pending)
    }
}

/// A usable id: 1 to 70 characters in 0x21..=0x7E (RFC 1939 section 7).
fn valid(id: &[u8]) -> bool {
    (1..=70).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// For each message of `drop` (by index), the X-UIDL id to use, if its
/// header has a valid one that no other message has and that is no other
/// message's own id.
pub fn ids(drop: &Maildrop) -> Vec<Option<String>> {
    let found: Vec<Option<String>> = (1..=drop.len() as u32)
        .map(|n| {
            let mut scan = HeaderScan::default();
            match drop.send(n, Part::Top(0), &mut scan) {
                Some(Ok(_)) => {
                    scan.pending.push(b'\n');
                    scan.scan();
                    scan.found.filter(|id| valid(id)).map(|id| String::from_utf8_lossy(&id).into_owned())
                }
                _ => None,
            }
        })
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in found.iter().flatten() {
        *count.entry(id).or_default() += 1;
    }
    let own: std::collections::HashSet<String> = drop.store.messages().iter().map(|m| m.uid.to_string()).collect();
    found
        .iter()
        .map(|id| id.as_ref().filter(|id| count[id.as_str()] == 1 && !own.contains(id.as_str())).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_x_uidl_of_the_header_only() {
        let mut s = HeaderScan::default();
        s.write_all(b"Subject: a\r\nx-uidl:  abc123 \r\nX-UIDL: second\r\n").unwrap();
        assert_eq!(s.found.as_deref(), Some(&b"abc123"[..]));
        let mut s = HeaderScan::default();
        let long = [b"Subject: ".to_vec(), vec![b'a'; 5000], b"X-UIDL: hidden\r\n".to_vec()].concat();
        for chunk in long.chunks(700) {
            s.write_all(chunk).unwrap();
        }
        assert_eq!(s.found, None, "an X-UIDL inside a long line is no header");
        assert!(valid(b"0123456789abcdef") && !valid(b"") && !valid(&[b'a'; 71]) && !valid(b"a b"));
    }
}
