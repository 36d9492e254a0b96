//! The persistent mbox index in state_dir (`USER.index`): read at login so only mail appended since is scanned; a cache, never a source of truth.
//!
//! It is used only when it describes the file as it is: the same inode and
//! `>From ` format, and either nothing changed since (same length and
//! ctime), or the file only grew: the first and last indexed messages'
//! `From ` lines are still where they were and what follows the indexed part
//! starts a message (`From `, or `\nFrom ` from an agent that writes the
//! separator first). The last indexed message is then scanned again with
//! everything after it, so its end is what a full scan finds. Anything
//! else (a shorter file, an edit that kept the length, a replaced file, a
//! corrupt, truncated, foreign or older cache) means a full scan. The one
//! change this cannot see is a same-length edit of a message in the middle
//! followed by an append before the next login: its size and id stay as
//! indexed (RETR re-reads the file, and a message whose size or `From `
//! line no longer matches drops the cache for the next login).
//!
//! Written after a scan that found something new, atomically (a temporary
//! file renamed into place) and without fsync: a cache lost or torn by a
//! power cut fails its checksum and costs one full scan, never wrong data.
//! UPDATE removes it before its journal is written (the journal's directory
//! sync makes that durable), so no crash can leave an index of the old
//! content, and writes the index of what it kept once it is done.
//!
//! Format (little-endian): `MAGIC`, inode, indexed length, ctime seconds and
//! nanoseconds, format byte, message count, then per message `RECORD_LEN`
//! octets (start, content, end, size, digest, copy number, head), then the
//! MD5 of everything before it.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use md5::{Digest, Md5};

use super::index::{self, head_matches, CopyNumbers, Index, ScanError};
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
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut out = Hashing { inner: BufWriter::with_capacity(64 * 1024, file), md5: Md5::new() };
        out.write_all(MAGIC)?;
        for n in [stamp.ino, stamp.len, stamp.ctime.0 as u64, stamp.ctime.1 as u64] {
            out.write_all(&n.to_le_bytes())?;
        }
        out.write_all(&[stamp.quoting])?;
        out.write_all(&(messages.len() as u64).to_le_bytes())?;
        for m in messages {
            for n in [m.start, m.content, m.end, m.size] {
                out.write_all(&n.to_le_bytes())?;
            }
            out.write_all(&m.uid.digest)?;
            out.write_all(&m.uid.copy.to_le_bytes())?;
            out.write_all(&m.head.to_le_bytes())?;
        }
        let sum: [u8; 16] = out.md5.finalize_reset().into();
        out.inner.write_all(&sum)?;
        out.inner.flush()?;
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
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let size = file.metadata()?.len();
    let mut input = Hashing { inner: BufReader::with_capacity(64 * 1024, file), md5: Md5::new() };
    let mut magic = [0u8; MAGIC.len()];
    let mut header = [0u8; HEADER_LEN];
    if size < (MAGIC.len() + HEADER_LEN + 16) as u64 {
        return Ok(None);
    }
    input.read_exact(&mut magic)?;
    input.read_exact(&mut header)?;
    let num = |i: usize| u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let stamp = Stamp { ino: num(0), len: num(1), ctime: (num(2) as i64, num(3) as i64), quoting: header[32] };
    let count = u64::from_le_bytes(header[33..41].try_into().unwrap_or_default());
    let expected = (MAGIC.len() + HEADER_LEN + 16) as u64 + count.saturating_mul(RECORD_LEN as u64);
    if &magic != MAGIC || count > max_messages as u64 || size != expected {
        return Ok(None);
    }
    let mut messages = Vec::with_capacity(count as usize);
    let mut record = [0u8; RECORD_LEN];
    let mut previous_end = 0;
    for _ in 0..count {
        input.read_exact(&mut record)?;
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
    let sum: [u8; 16] = input.md5.finalize_reset().into();
    let mut stored = [0u8; 16];
    input.inner.read_exact(&mut stored)?;
    Ok((sum == stored).then_some((stamp, messages)))
}

/// Hashes what passes through it.
struct Hashing<T> {
    inner: T,
    md5: Md5,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
