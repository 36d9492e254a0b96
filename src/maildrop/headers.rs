//! What the header options need of each message (its X-UIDL, a missing end of header), read in one pass and cached.
//!
//! `workarounds = oe-ns-eoh` needs to know which messages lack the blank
//! line that ends a header, and `uidl_from_x_uidl` each message's first
//! `X-UIDL:`; one sink finds both in a message's TOP n 0. What it found is
//! kept in state_dir (`USER.headers`, beside the index cache) by message id
//! and size, so a login reads the header only of the messages it has not
//! read before; DESIGN.md ("Performance") has the figures and the format.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::checksum::Checksum;
use super::message::Message;
use crate::reply::MessageSink;

/// A header line longer than this is not an X-UIDL line (RFC 1939 ids are
/// at most 70 characters); it is skipped without being kept.
const MAX_HEADER_LINE: usize = 1024;

const MAGIC: &[u8; 16] = b"POP3D-HEADERS-1\n";

/// What the header options read of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The value of its first `X-UIDL:` line, if that is a usable id.
    pub x_uidl: Option<String>,
    /// Its header does not end with a blank line (the message is all header).
    pub no_end: bool,
}

/// A usable id: 1 to 70 characters in 0x21..=0x7E (RFC 1939 section 7).
pub fn valid_id(id: &[u8]) -> bool {
    (1..=70).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A sink for TOP n 0 (the header in its wire form, CRLF line ends) that
/// notes its first `X-UIDL:` value and whether an empty line ends it,
/// holding no more than a line (and a block) at a time.
#[derive(Default)]
pub struct HeaderScan {
    pending: Vec<u8>,
    /// Inside a line too long to be an X-UIDL line.
    skipping: bool,
    x_uidl: Option<Vec<u8>>,
    end: bool,
}

impl HeaderScan {
    fn scan(&mut self) {
        let mut start = 0;
        while let Some(len) = memchr::memchr(b'\n', &self.pending[start..]) {
            let line = &self.pending[start..start + len];
            if !self.skipping {
                if line == b"\r" {
                    self.end = true;
                } else if self.x_uidl.is_none() && line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"x-uidl:") {
                    self.x_uidl = Some(line[7..].trim_ascii().to_vec());
                }
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

    /// What the header said, once it has all gone through.
    pub fn finish(mut self) -> Header {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            self.scan();
        }
        let x_uidl = self.x_uidl.filter(|id| valid_id(id)).map(|id| String::from_utf8_lossy(&id).into_owned());
        Header { x_uidl, no_end: !self.end }
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

/// A message as the cache knows it: its id and wire size.
type Key = ([u8; 16], u32, u64);

fn key(m: &Message) -> Key {
    (m.uid.digest, m.uid.copy, m.size)
}

/// The headers of `messages`: from the cache at `path` where it has them,
/// by `read` (the message's index: its TOP n 0 into a `HeaderScan`)
/// otherwise; None for a message that could not be read (it counts as
/// having nothing to say, and is read again next time). The cache is
/// written again when anything was read or the maildrop lost messages.
pub fn headers(messages: &[Message], path: &Path, mut read: impl FnMut(usize) -> Option<Header>) -> Vec<Header> {
    let mut cached = Cached {
        in_order: load(path, messages.len()).unwrap_or_else(|e| {
            if e.kind() != io::ErrorKind::NotFound {
                log::info!("header cache {} not used: {e}", path.display());
            }
            Vec::new()
        }),
        next: 0,
        rest: None,
    };
    let mut read_any = false;
    let found: Vec<Option<Header>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            cached.take(&key(m)).or_else(|| {
                read_any = true;
                count_read();
                read(i)
            })
        })
        .collect();
    // Also once the order changed (messages deleted): the next login takes them in order.
    if read_any || cached.rest.is_some() {
        save(path, messages, &found);
    }
    found.into_iter().map(Option::unwrap_or_default).collect()
}

/// The cache's entries, asked for in the maildrop's order: while that is
/// the cache's own order (nothing deleted since), each is the next entry;
/// from the first that is not, they are looked up.
struct Cached {
    in_order: Vec<(Key, Header)>,
    next: usize,
    rest: Option<HashMap<Key, Header>>,
}

impl Cached {
    fn take(&mut self, key: &Key) -> Option<Header> {
        if self.rest.is_none() {
            match self.in_order.get_mut(self.next) {
                Some((k, header)) if k == key => {
                    self.next += 1;
                    return Some(std::mem::take(header));
                }
                None => return None,
                Some(_) => self.rest = Some(self.in_order.drain(self.next..).collect()),
            }
        }
        self.rest.as_mut()?.remove(key)
    }
}

// Header reads, counted per thread for the tests.
#[cfg(test)]
thread_local! {
    pub static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_read() {
    #[cfg(test)]
    READS.with(|r| r.set(r.get() + 1));
}

/// Writes the cache atomically (a failure only costs the next login the
/// reading), leaving out the messages that could not be read.
fn save(path: &Path, messages: &[Message], found: &[Option<Header>]) {
    let tmp = temp_path(path);
    let written = (|| {
        let mut buf = MAGIC.to_vec();
        for (m, h) in messages.iter().zip(found) {
            let Some(h) = h else { continue };
            buf.extend_from_slice(&m.uid.digest);
            buf.extend_from_slice(&m.uid.copy.to_le_bytes());
            buf.extend_from_slice(&m.size.to_le_bytes());
            buf.push(u8::from(h.no_end));
            let id = h.x_uidl.as_deref().unwrap_or_default().as_bytes();
            buf.push(id.len() as u8);
            buf.extend_from_slice(id);
        }
        let mut sum = Checksum::default();
        sum.add(&buf);
        buf.extend_from_slice(&sum.0.to_le_bytes());
        let mut out = crate::nofollow::create_temp(&tmp)?;
        out.write_all(&buf)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        log::warn!("cannot write the header cache {}: {e}", path.display());
        let _ = fs::remove_file(&tmp);
    }
}

fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("headers-new")
}

/// Octets of one entry before its id.
const ENTRY_LEN: usize = 16 + 4 + 8 + 1 + 1;

/// Reads the cache's entries: none for a cache that is not whole, not this
/// format, or bigger than `max` messages could make it; Err for one that
/// cannot be read.
fn load(path: &Path, max: usize) -> io::Result<Vec<(Key, Header)>> {
    let file = crate::nofollow::open_state(path)?;
    let limit = (MAGIC.len() + 8 + max * (ENTRY_LEN + 70)) as u64;
    let len = file.metadata()?.len();
    if len > limit || len < (MAGIC.len() + 8) as u64 {
        return Ok(Vec::new());
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    let (body, stored) = buf.split_at(buf.len().saturating_sub(8));
    let mut sum = Checksum::default();
    sum.add(body);
    if !body.starts_with(MAGIC) || stored != sum.0.to_le_bytes() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(max);
    let mut rest = &body[MAGIC.len()..];
    while rest.len() >= ENTRY_LEN {
        let (entry, more) = rest.split_at(ENTRY_LEN);
        let id_len = usize::from(entry[ENTRY_LEN - 1]);
        if more.len() < id_len || entry[28] > 1 || !(id_len == 0 || valid_id(&more[..id_len])) {
            return Ok(Vec::new());
        }
        let digest = entry[..16].try_into().unwrap_or_default();
        let copy = u32::from_le_bytes(entry[16..20].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(entry[20..28].try_into().unwrap_or_default());
        let x_uidl = (id_len > 0).then(|| String::from_utf8_lossy(&more[..id_len]).into_owned());
        out.push(((digest, copy, size), Header { x_uidl, no_end: entry[28] == 1 }));
        rest = &more[id_len..];
    }
    Ok(if rest.is_empty() { out } else { Vec::new() })
}

#[cfg(test)]
mod tests;
