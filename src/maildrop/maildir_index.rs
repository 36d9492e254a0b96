//! The Maildir listing kept in state_dir (`USER.index`), so a login reads no unchanged directory again.
//!
//! Names, lengths and wire sizes: a login reads no message it has measured
//! before, and lists no directory that has not changed.
//!
//! A Maildir message never changes once delivered; only names come and go
//! (deliveries, a mail reader moving or flagging, deletions), and every such
//! change updates the directory's mtime. So when `cur/` and `new/` are the
//! same directories with the same mtimes as when the listing was saved, the
//! listing is used as it is. Directory times are coarse (a clock tick), so a
//! listing is trusted that way only when both mtimes were at least
//! `SETTLED` old when it was taken; otherwise the directories are read
//! again, and only files the listing does not hold (by the unique part of
//! the name, which a move to `cur/` keeps, and the length) are read for
//! their size. Like the mbox index it is written
//! atomically without fsync: a torn one fails its checksum and costs one
//! full listing. Its format: DESIGN.md ("Files in state_dir").

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::checksum::Checksum;
use crate::limits::MAILDIR_SETTLED as SETTLED;

const MAGIC: &[u8; 14] = b"POP3D-MDIDX-1\n";

/// A directory as the listing saw it: inode and mtime.
pub type DirStamp = (u64, i64, i64);

/// One listed message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub subdir: usize,
    pub name: OsString,
    pub len: u64,
    pub size: u64,
}

/// A saved listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub dirs: [DirStamp; 2],
    /// Both directories had settled when it was taken.
    pub trusted: bool,
    pub files: Vec<Listed>,
}

impl Listing {
    /// Whether it can stand for the directories as they are now.
    pub fn current(&self, now: &[DirStamp; 2]) -> bool {
        self.trusted && self.dirs == *now
    }

    /// The wire sizes it knows, by the unique part of a message's name
    /// (given by `unique`: a message moved to `cur/` or flagged keeps it)
    /// and its length.
    pub fn sizes<'a>(&'a self, unique: impl Fn(&'a OsStr) -> &'a [u8]) -> HashMap<(&'a [u8], u64), u64> {
        self.files.iter().map(|f| ((unique(f.name.as_os_str()), f.len), f.size)).collect()
    }
}

/// The stamps of the held directories (`cur/`, `new/`), and whether both
/// have settled.
pub fn stamps(dirs: &[Option<OwnedFd>; 2]) -> io::Result<([DirStamp; 2], bool)> {
    let mut out = [(0, 0, 0); 2];
    let mut settled = true;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    for (stamp, dir) in out.iter_mut().zip(dirs) {
        if let Some(dir) = dir {
            let meta = File::from(dir.try_clone()?).metadata()?;
            *stamp = (meta.ino(), meta.mtime(), meta.mtime_nsec());
            let mtime = Duration::new(meta.mtime().max(0) as u64, meta.mtime_nsec().clamp(0, 999_999_999) as u32);
            settled &= now.saturating_sub(mtime) >= SETTLED;
        }
    }
    Ok((out, settled))
}

/// Reads the listing at `path`; an empty one when there is none or it is
/// not whole, not this format, or over `max_files`.
pub fn load(path: &Path, max_files: usize) -> Listing {
    match read(path, max_files) {
        Ok(Some(listing)) => listing,
        Ok(None) => Listing::default(),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::info!("Maildir listing {} not used: {e}", path.display());
            }
            Listing::default()
        }
    }
}

fn read(path: &Path, max_files: usize) -> io::Result<Option<Listing>> {
    let mut file = crate::nofollow::open_state(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let Some(body_len) = bytes.len().checked_sub(8) else { return Ok(None) };
    let (body, sum) = bytes.split_at(body_len);
    if checksum(body).to_le_bytes() != sum || !body.starts_with(MAGIC) {
        return Ok(None);
    }
    let mut r = &body[MAGIC.len()..];
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = (r.get(..n)?, r.get(n..)?);
        r = rest;
        Some(head)
    };
    let mut parse = || -> Option<Listing> {
        let mut u64_at = || Some(u64::from_le_bytes(take(8)?.try_into().ok()?));
        let mut dirs = [(0, 0, 0); 2];
        for d in &mut dirs {
            *d = (u64_at()?, u64_at()? as i64, u64_at()? as i64);
        }
        let trusted = take(1)?[0] == 1;
        let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
        if count > max_files as u64 {
            return None;
        }
        let mut files = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let subdir = usize::from(take(1)?[0]).min(1);
            let name_len = u16::from_le_bytes(take(2)?.try_into().ok()?);
            let name = OsString::from_vec(take(usize::from(name_len))?.to_vec());
            let len = u64::from_le_bytes(take(8)?.try_into().ok()?);
            let size = u64::from_le_bytes(take(8)?.try_into().ok()?);
            files.push(Listed { subdir, name, len, size });
        }
        Some(Listing { dirs, trusted, files })
    };
    Ok(parse())
}

/// Writes the listing atomically; a failure only costs the next login a
/// full listing.
pub fn save(path: &Path, listing: &Listing) {
    let mut body = MAGIC.to_vec();
    for (ino, secs, nanos) in listing.dirs {
        for n in [ino, secs as u64, nanos as u64] {
            body.extend_from_slice(&n.to_le_bytes());
        }
    }
    body.push(u8::from(listing.trusted));
    body.extend_from_slice(&(listing.files.len() as u64).to_le_bytes());
    for f in &listing.files {
        let name = f.name.as_bytes();
        let Ok(name_len) = u16::try_from(name.len()) else { return };
        body.push(f.subdir as u8);
        body.extend_from_slice(&name_len.to_le_bytes());
        body.extend_from_slice(name);
        body.extend_from_slice(&f.len.to_le_bytes());
        body.extend_from_slice(&f.size.to_le_bytes());
    }
    body.extend_from_slice(&checksum(&body).to_le_bytes());
    let tmp = path.with_extension("index-new");
    let written =
        crate::nofollow::create_temp(&tmp).and_then(|mut f| f.write_all(&body)).and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = written {
        log::warn!("cannot write the Maildir listing {}: {e}", path.display());
        let _ = fs::remove_file(&tmp);
    }
}

/// The checksum of a whole listing (added in one piece).
fn checksum(bytes: &[u8]) -> u64 {
    let mut sum = Checksum::default();
    sum.add(bytes);
    sum.0
}
