//! The mbox index kept in state_dir (`USER.index`): a login scans only what was appended since; a cache.
//!
//! A cache, never a source of truth: it is used only when it describes the
//! file as it is: the same inode and `>From ` format, and either nothing
//! changed since (same length and ctime), or the file only grew: the first
//! and last indexed messages' `From ` lines are still where they were and
//! what follows the indexed part starts a message (`From `, or `\nFrom `
//! from an agent that writes the separator first). The last indexed message
//! is then scanned again with everything after it, so its end is what a
//! full scan finds. Anything else (a shorter file, an edit that kept the
//! length, a replaced file, a corrupt, truncated, foreign or older cache)
//! means a full scan. The one change this cannot see is a same-length edit
//! of a message in the middle followed by an append before the next login:
//! its size and id stay as indexed (RETR re-reads the file, and a message
//! whose size or `From ` line no longer matches drops the cache for the
//! next login).
//!
//! Written after a scan that found something new, atomically (a temporary
//! file renamed into place) and without fsync: a cache lost or torn by a
//! power cut fails its checksum and costs one full scan, never wrong data.
//! UPDATE removes it before its journal is written (the journal's directory
//! sync makes that durable), so no crash can leave an index of the old
//! content, and writes the index of what it kept once it is done. Its
//! format: DESIGN.md ("Files in state_dir").

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::index::{self, head_matches, CopyNumbers, Index, ScanError};
use crate::limits::INDEX_BLOCK_RECORDS as RECORDS_PER_BLOCK;
use crate::maildrop::checksum::Checksum;
use crate::maildrop::lines::FromQuoting;
use crate::maildrop::message::{Message, Uid};

const MAGIC: &[u8; 14] = b"POP3D-INDEX-1\n";

/// Octets per message in the file.
pub const RECORD_LEN: usize = 8 * 4 + 16 + 4 + 8;

/// Octets of the fixed header after `MAGIC`.
const HEADER_LEN: usize = 8 * 4 + 1 + 8;

/// What the cache says about the file it indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    ctime: (i64, i64),
    quoting: u8,
}

impl Stamp {
    fn of(meta: &Metadata, len: u64, quoting: FromQuoting) -> Stamp {
        let quoting = match quoting {
            FromQuoting::Mboxrd => 1,
            FromQuoting::Mboxo => 2,
            FromQuoting::Verbatim => 3,
        };
        Stamp { ino: meta.ino(), len, ctime: (meta.ctime(), meta.ctime_nsec()), quoting }
    }
}

/// The index of `file` (the mbox, locked, `len` octets long): from the
/// cache at `path` where it still describes the file, scanning only what
/// it does not cover; by a full scan otherwise. Writes the cache when the
/// scan found anything it did not hold.
pub fn index(
    file: &File,
    len: u64,
    path: &Path,
    quoting: FromQuoting,
    max_messages: usize,
    copies: &CopyNumbers,
) -> Result<Index, ScanError> {
    let meta = file.metadata()?;
    let now = Stamp::of(&meta, len, quoting);
    let cached = load(path, max_messages).unwrap_or_else(|e| {
        if e.kind() != io::ErrorKind::NotFound {
            log::info!("index cache {} not used: {e}", path.display());
        }
        None
    });
    let (known, from) = match cached {
        Some((stamp, messages)) if stamp == now => {
            count(Use::Unchanged);
            return Ok(Index { messages, scanned_end: len });
        }
        Some((stamp, mut messages)) if grew_only(file, &stamp, &now, &messages)? => {
            count(Use::Appended);
            // Room for what was appended, at the mailbox's average message
            // size (twice over): the list grows once, not by doubling a
            // copy of 100,000 messages for the few new ones.
            let average = stamp.len / (messages.len() as u64).max(1);
            let room = ((len - stamp.len) / average.max(1) * 2 + 16).min(max_messages as u64);
            messages.reserve_exact(room as usize);
            // The last message again, with what follows it.
            let from = messages.pop().map_or(0, |m| m.start);
            (messages, from)
        }
        _ => {
            count(Use::FullScan);
            (Vec::new(), 0)
        }
    };
    let mut input = file;
    input.seek(SeekFrom::Start(from))?;
    let index = index::scan_after(known, input.take(len - from), from, quoting, max_messages, copies)?;
    save(path, &now, &index.messages);
    Ok(index)
}

/// How a login's index was made (counted per thread for the tests).
#[derive(Debug, Clone, Copy)]
pub enum Use {
    Unchanged,
    Appended,
    FullScan,
}

#[cfg(test)]
thread_local! {
    pub static USES: std::cell::Cell<[usize; 3]> = const { std::cell::Cell::new([0; 3]) };
}

fn count(how: Use) {
    #[cfg(test)]
    USES.with(|u| {
        let mut n = u.get();
        n[how as usize] += 1;
        u.set(n);
    });
    log::debug!("mbox index: {how:?}");
}

/// Whether the file only grew since `then`: same inode and format, longer,
/// the first and last indexed `From ` lines where they were, and a message
/// starting where the indexed part ends.
fn grew_only(file: &File, then: &Stamp, now: &Stamp, messages: &[Message]) -> io::Result<bool> {
    if then.ino != now.ino || then.quoting != now.quoting || now.len <= then.len {
        return Ok(false);
    }
    for msg in [messages.first(), messages.last()].into_iter().flatten() {
        if !head_matches(file, msg)? {
            return Ok(false);
        }
    }
    let mut head = [0u8; 6];
    let n = (now.len - then.len).min(6) as usize;
    file.read_exact_at(&mut head[..n], then.len)?;
    Ok(head[..n].starts_with(b"From ") || head[..n].starts_with(b"\nFrom "))
}

/// Removes the cache (UPDATE does, before its journal; and any reader that
/// found the file no longer as indexed).
pub fn forget(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => log::warn!("cannot remove {}: {e}", path.display()),
        _ => {}
    }
}

/// Writes the index of `messages`, which cover `meta`'s file up to `len`,
/// as UPDATE leaves it. The last message is left out: the next login scans
/// it again with whatever follows, so its end is exact.
pub fn save_after_update(path: &Path, meta: &Metadata, quoting: FromQuoting, messages: &[Message]) {
    let (len, kept) = match messages.split_last() {
        Some((last, rest)) => (last.start, rest),
        None => (0, messages),
    };
    save(path, &Stamp::of(meta, len, quoting), kept);
}

/// Writes the cache atomically; a failure only costs the next login a scan.
fn save(path: &Path, stamp: &Stamp, messages: &[Message]) {
    let tmp = path.with_extension("index-new");
    let written = (|| {
        let mut out = crate::nofollow::create_temp(&tmp)?;
        let mut sum = Checksum::default();
        let mut buf = Vec::with_capacity(RECORDS_PER_BLOCK * RECORD_LEN);
        buf.extend_from_slice(MAGIC);
        for n in [stamp.ino, stamp.len, stamp.ctime.0 as u64, stamp.ctime.1 as u64] {
            buf.extend_from_slice(&n.to_le_bytes());
        }
        buf.push(stamp.quoting);
        buf.extend_from_slice(&(messages.len() as u64).to_le_bytes());
        sum.add(&buf);
        out.write_all(&buf)?;
        for block in messages.chunks(RECORDS_PER_BLOCK) {
            buf.clear();
            for m in block {
                for n in [m.start, m.content, m.end, m.size] {
                    buf.extend_from_slice(&n.to_le_bytes());
                }
                buf.extend_from_slice(&m.uid.digest);
                buf.extend_from_slice(&m.uid.copy.to_le_bytes());
                buf.extend_from_slice(&m.head.to_le_bytes());
            }
            sum.add(&buf);
            out.write_all(&buf)?;
        }
        out.write_all(&sum.0.to_le_bytes())?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        log::warn!("cannot write the index cache {}: {e}", path.display());
        let _ = fs::remove_file(&tmp);
    }
}

/// Reads the cache: None for a cache that is not there, not whole, not this
/// format, or over `max_messages`; Err for one that cannot be read.
fn load(path: &Path, max_messages: usize) -> io::Result<Option<(Stamp, Vec<Message>)>> {
    let mut file = crate::nofollow::open_state(path)?;
    let size = file.metadata()?.len();
    let mut head = [0u8; MAGIC.len() + HEADER_LEN];
    if size < (head.len() + 8) as u64 {
        return Ok(None);
    }
    file.read_exact(&mut head)?;
    let mut sum = Checksum::default();
    sum.add(&head);
    let (magic, header) = head.split_at(MAGIC.len());
    let num = |i: usize| u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let stamp = Stamp { ino: num(0), len: num(1), ctime: (num(2) as i64, num(3) as i64), quoting: header[32] };
    let count = u64::from_le_bytes(header[33..41].try_into().unwrap_or_default());
    let expected = (head.len() + 8) as u64 + count.saturating_mul(RECORD_LEN as u64);
    if magic != MAGIC || count > max_messages as u64 || size != expected {
        return Ok(None);
    }
    let mut messages = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; RECORDS_PER_BLOCK * RECORD_LEN];
    let mut previous_end = 0;
    let mut left = count as usize;
    while left > 0 {
        let block = &mut buf[..left.min(RECORDS_PER_BLOCK) * RECORD_LEN];
        file.read_exact(block)?;
        sum.add(block);
        for record in block.chunks_exact(RECORD_LEN) {
            let n = |i: usize| u64::from_le_bytes(record[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            let msg = Message {
                start: n(0),
                content: n(1),
                end: n(2),
                size: n(3),
                uid: Uid {
                    digest: record[32..48].try_into().unwrap_or_default(),
                    copy: u32::from_le_bytes(record[48..52].try_into().unwrap_or_default()),
                },
                head: u64::from_le_bytes(record[52..60].try_into().unwrap_or_default()),
            };
            // In order, inside the indexed part: anything else is not ours.
            if msg.start < previous_end || msg.start >= msg.content || msg.content > msg.end || msg.end > stamp.len {
                return Ok(None);
            }
            previous_end = msg.end;
            messages.push(msg);
        }
        left -= block.len() / RECORD_LEN;
    }
    let mut stored = [0u8; 8];
    file.read_exact(&mut stored)?;
    Ok((sum.0 == u64::from_le_bytes(stored)).then_some((stamp, messages)))
}
