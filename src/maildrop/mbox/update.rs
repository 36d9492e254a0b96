//! UPDATE for an mbox: removes deleted messages in place through a journal, so a crash at any moment loses no mail.
//!
//! In place (not a new file and a rename) so that the inode, owner and mode
//! stay, and a delivery agent that opened the mailbox before locking it
//! still appends to the live file. The steps, all under the mailbox locks:
//!
//! 1. The bytes from the first deleted message to the end of the file, less
//!    the deleted messages, are written to a journal (a temporary file, fsync,
//!    rename): `first`, the old length, the new length and an MD5 of the old
//!    bytes in `new_len..old_len`, which step 2 never touches; after the
//!    data, the copy numbers of identical messages for `USER.uids`.
//! 2. The journal data is written over the mailbox at `first`, fsync.
//! 3. The mailbox is truncated to the new length, fsync; `USER.uids` is
//!    written from the journal; the journal removed.
//!
//! A journal found later (under the locks, before the mailbox is read) is
//! finished: if the file is shorter than the old length, or its bytes in
//! `new_len..old_len` no longer match the MD5, step 3 had happened: the
//! copy numbers are written again and the journal removed. Otherwise steps
//! 2-3 are redone, carrying along any mail a delivery agent appended after
//! the crash. Either way the ids and the mailbox change together.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use md5::{Digest, Md5};

use super::index::Index;
use crate::hex;
use crate::limits::STORE_BLOCK;

const MAGIC: &str = "POP3D-JOURNAL-3";

/// What a journal says about the rewrite it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    ino: u64,
    first: u64,
    old_len: u64,
    new_len: u64,
    /// Octets of copy-number text after the data; None in a format-2
    /// journal (an earlier pop3d), which leaves `USER.uids` alone.
    copies_len: Option<u64>,
    tail_md5: [u8; 16],
}

impl Header {
    fn line(&self) -> String {
        let hex = hex::encode(&self.tail_md5);
        let Header { ino, first, old_len, new_len, copies_len, .. } = self;
        let copies_len = copies_len.map_or("-".to_string(), |n| n.to_string());
        format!("{MAGIC} {ino} {first} {old_len} {new_len} {copies_len} {hex}\n")
    }

    fn parse(line: &str) -> Option<Header> {
        let mut f = line.split_ascii_whitespace();
        // Format 2 (an earlier pop3d) carries no copy numbers.
        let with_copies = match f.next()? {
            MAGIC => true,
            "POP3D-JOURNAL-2" => false,
            _ => return None,
        };
        let mut field = || f.next();
        let mut num = || field()?.parse::<u64>().ok();
        let (ino, first, old_len, new_len) = (num()?, num()?, num()?, num()?);
        let copies_len = match with_copies {
            true => match f.next()? {
                "-" => None,
                n => Some(n.parse().ok()?),
            },
            false => None,
        };
        let tail_md5 = hex::decode(f.next()?)?;
        // An update only shrinks the file, from `first` on.
        (first <= new_len && new_len <= old_len).then_some(Header {
            ino,
            first,
            old_len,
            new_len,
            copies_len,
            tail_md5,
        })
    }
}

/// A piece of the new mailbox content after `first`: bytes `start..end` of a file.
struct Piece<'a>(&'a File, u64, u64);

impl Piece<'_> {
    fn len(&self) -> u64 {
        self.2 - self.1
    }
}

/// Where an update is journaled, and the copy-number file it rewrites.
pub struct UpdatePaths<'a> {
    pub journal: &'a Path,
    pub copies: &'a Path,
}

/// Removes the messages whose `keep` flag is false from the mbox `file`
/// (opened read-write, exclusively locked), which must be the file `index`
/// was built from, and writes `copies` (the copy numbers of identical
/// messages that stay) with it. The journal's directory must be writable.
/// Returns false, changing nothing, when nothing is deleted.
pub fn remove_messages(
    file: &File,
    index: &Index,
    keep: &[bool],
    paths: &UpdatePaths,
    copies: &str,
) -> io::Result<bool> {
    let Some(first_gone) = keep.iter().position(|k| !k) else {
        return Ok(false);
    };
    let meta = file.metadata()?;
    let old_len = meta.len();
    let first = index.messages[first_gone].start;
    let pieces = build_pieces(file, index, keep, first_gone, old_len);
    // At least one message (its `From ` line) goes: the file shrinks, which
    // the journal's recovery rule relies on.
    let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
    let tail_md5 = md5_range(file, new_len, old_len)?;
    let copies_len = Some(copies.len() as u64);
    let header = Header { ino: meta.ino(), first, old_len, new_len, copies_len, tail_md5 };
    write_journal(paths.journal, &header, &pieces, copies.as_bytes())?;
    if let Err(e) = apply(file, paths, &header) {
        // The journal is complete: finishing it now, still under the locks,
        // beats leaving a half-rewritten mailbox until the next login.
        log::error!("rewriting the mailbox failed ({e}); finishing it from the journal");
        recover(file, paths).map_err(|e2| {
            io::Error::new(e2.kind(), format!("{e}; the deletion stays pending in {} ({e2})", paths.journal.display()))
        })?;
    }
    Ok(true)
}

/// The new content after `first` (the start of message `first_gone`, the
/// first deleted one): every kept message's raw block, unchanged, then mail
/// appended since the scan.
fn build_pieces<'a>(file: &'a File, index: &Index, keep: &[bool], first_gone: usize, len: u64) -> Vec<Piece<'a>> {
    let mut pieces: Vec<Piece> = (first_gone..index.messages.len())
        .filter(|&i| keep[i])
        .map(|i| Piece(file, index.messages[i].start, index.block_end(i)))
        .collect();
    if len > index.scanned_end {
        pieces.push(Piece(file, index.scanned_end, len));
    }
    pieces
}

/// Writes the journal under a temporary name, syncs it, then renames it into place.
fn write_journal(journal: &Path, header: &Header, pieces: &[Piece], copies: &[u8]) -> io::Result<()> {
    let tmp = journal.with_extension("journal-new");
    let result = (|| {
        let mut out = crate::nofollow::create_temp(&tmp)?;
        out.write_all(header.line().as_bytes())?;
        let mut buf = vec![0u8; STORE_BLOCK];
        for piece in pieces {
            copy_range(piece.0, piece.1, piece.2, &mut out, &mut buf)?;
        }
        out.write_all(copies)?;
        out.sync_all()?;
        fs::rename(&tmp, journal)?;
        sync_dir(journal)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The copy numbers a journal carries (after its header line and data).
fn journal_copies(jfile: &File, header_len: u64, header: &Header) -> io::Result<Option<String>> {
    let Some(copies_len) = header.copies_len else { return Ok(None) };
    if copies_len > 1 << 24 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "journal copy numbers too long"));
    }
    let mut text = vec![0u8; copies_len as usize];
    jfile.read_exact_at(&mut text, header_len + (header.new_len - header.first))?;
    let text = String::from_utf8(text);
    text.map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "journal copy numbers are not text"))
}

/// Writes the copy-number file atomically (removes it when there is nothing to keep).
fn save_copies(path: &Path, text: &str) -> io::Result<()> {
    if text.is_empty() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("uids-new");
    let mut f = crate::nofollow::create_temp(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Steps 2 and 3: journal data over the mailbox, truncate, the copy
/// numbers, remove the journal.
fn apply(file: &File, paths: &UpdatePaths, header: &Header) -> io::Result<()> {
    let jfile = crate::nofollow::open_state(paths.journal)?;
    let mut reader = BufReader::new(&jfile);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let header_len = line.len() as u64;
    let mut data = reader.take(header.new_len - header.first);
    let mut pos = header.first;
    let mut buf = vec![0u8; STORE_BLOCK];
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    if pos != header.new_len {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "journal is shorter than it says"));
    }
    file.sync_data()?;
    file.set_len(header.new_len)?;
    file.sync_all()?;
    finish(paths, journal_copies(&jfile, header_len, header)?.as_deref())
}

/// The end of step 3: the copy numbers written, then the journal removed.
/// A copy-number file that cannot be written is removed instead: the ids
/// stay unique (identical copies are numbered afresh), the mailbox is
/// already rewritten, and the journal must not stay to fail every login.
fn finish(paths: &UpdatePaths, copies: Option<&str>) -> io::Result<()> {
    if let Some(copies) = copies {
        if let Err(e) = save_copies(paths.copies, copies) {
            log::warn!(
                "cannot write {} ({e}): removed; identical copies will be numbered afresh",
                paths.copies.display()
            );
            let _ = fs::remove_file(paths.copies.with_extension("uids-new"));
            save_copies(paths.copies, "")?;
        }
    }
    fs::remove_file(paths.journal)?;
    sync_dir(paths.journal)
}

/// Finishes an interrupted UPDATE recorded in `paths.journal`, if there is
/// one. `file` is the mailbox, opened read-write and exclusively locked.
pub fn recover(file: &File, paths: &UpdatePaths) -> io::Result<bool> {
    let journal = paths.journal;
    let jfile = match crate::nofollow::open_state(journal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut line = String::new();
    BufReader::new(&jfile).take(512).read_line(&mut line)?;
    let meta = file.metadata()?;
    let header = match Header::parse(&line) {
        // The inode, not the device: device numbers can change across a
        // reboot (btrfs subvolumes, USB disks), which is when this runs.
        Some(h) if h.ino == meta.ino() => h,
        _ => {
            // Not for this file (the mailbox was replaced): keep it for the
            // operator, under a name no later journal overwrites.
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let aside = journal.with_extension(format!("journal-stale-{stamp}"));
            fs::rename(journal, &aside)?;
            log::error!("journal {} does not match its mailbox; kept as {}", journal.display(), aside.display());
            return Ok(false);
        }
    };
    let header_len = line.len() as u64;
    let copies = journal_copies(&jfile, header_len, &header)?;
    let len = meta.len();
    if len < header.old_len || md5_range(file, header.new_len, header.old_len)? != header.tail_md5 {
        // Truncated already: the rewrite was complete.
        finish(paths, copies.as_deref())?;
        log::warn!("finished an interrupted update: journal {} was already applied", journal.display());
        return Ok(true);
    }
    // Not truncated: redo it with a new journal that also carries the mail
    // appended after the old length.
    let data_len = header.new_len - header.first;
    let redo = Header {
        new_len: header.new_len + (len - header.old_len),
        old_len: len,
        tail_md5: md5_range(file, header.new_len + (len - header.old_len), len)?,
        ..header.clone()
    };
    let pieces = [Piece(&jfile, header_len, header_len + data_len), Piece(file, header.old_len, len)];
    write_journal(journal, &redo, &pieces, copies.as_deref().unwrap_or("").as_bytes())?;
    apply(file, paths, &redo)?;
    log::warn!("finished an interrupted update of {} bytes from journal {}", data_len, journal.display());
    Ok(true)
}

fn copy_range(src: &File, mut start: u64, end: u64, out: &mut impl Write, buf: &mut [u8]) -> io::Result<()> {
    while start < end {
        let want = buf.len().min((end - start) as usize);
        let n = src.read_at(&mut buf[..want], start)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "mailbox shrank while being copied"));
        }
        out.write_all(&buf[..n])?;
        start += n as u64;
    }
    Ok(())
}

fn md5_range(file: &File, start: u64, end: u64) -> io::Result<[u8; 16]> {
    struct HashWriter(Md5);
    impl Write for HashWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut h = HashWriter(Md5::new());
    copy_range(file, start, end.max(start), &mut h, &mut vec![0u8; STORE_BLOCK])?;
    Ok(h.0.finalize().into())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildrop::lines::FromQuoting;
    use crate::maildrop::mbox::index::{scan, CopyNumbers};
    use crate::testkit::TempDir;
    use std::fs::OpenOptions;

    const MBOX: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n";

    /// MBOX without its second message.
    const KEPT: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom c\nSubject: 3\n\nthree\n\n";

    /// Copy numbers as `USER.uids` holds them (what they say does not matter here).
    const COPIES: &str = "0123456789abcdef0123456789abcdef 1 2\n";

    /// A fresh directory holding MBOX as `mbox`, the mailbox opened
    /// read-write, and its index.
    fn mailbox(name: &str) -> (TempDir, std::path::PathBuf, File, Index) {
        let dir = TempDir::new(name);
        let path = dir.join("mbox");
        fs::write(&path, MBOX).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let index = scan(File::open(&path).unwrap(), FromQuoting::Mboxrd, 100, &CopyNumbers::default()).unwrap();
        (dir, path, file, index)
    }

    #[test]
    fn removes_in_place_and_keeps_appended_mail() {
        let (dir, path, file, index) = mailbox("inplace");
        let ino = file.metadata().unwrap().ino();
        // A delivery after the scan.
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"From d\n\nfour\n\n").unwrap();
        let (journal, copies) = (dir.join("j"), dir.join("uids"));
        let paths = UpdatePaths { journal: &journal, copies: &copies };
        assert!(remove_messages(&file, &index, &[true, false, true], &paths, COPIES).unwrap());
        let after = fs::read(&path).unwrap();
        assert_eq!(after, b"From a\nSubject: 1\n\none\n\nFrom c\nSubject: 3\n\nthree\n\nFrom d\n\nfour\n\n");
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino);
        assert!(!journal.exists());
        assert_eq!(fs::read_to_string(&copies).unwrap(), COPIES);
        // Nothing left to number: the copies file goes.
        let index = scan(File::open(&path).unwrap(), FromQuoting::Mboxrd, 100, &CopyNumbers::default()).unwrap();
        assert!(remove_messages(&file, &index, &[false, true, true], &paths, "").unwrap());
        assert!(!copies.exists());
    }

    /// Simulates a crash after the journal is written, at every point of
    /// step 2 and 3, with and without a delivery after the crash.
    #[test]
    fn recovery_from_every_crash_point() {
        let expected: &[u8] = KEPT;
        let new_mail: &[u8] = b"From e\n\nlate\n\n";
        for delivered in [false, true] {
            for written in 0..=expected.len() - 24 {
                for truncated in [false, true] {
                    if truncated && written != expected.len() - 24 {
                        continue;
                    }
                    let (dir, path, file, index) = mailbox(&format!("crash-{delivered}-{written}-{truncated}"));
                    let journal = dir.join("j");
                    let pieces = build_pieces(&file, &index, &[true, false, true], 1, MBOX.len() as u64);
                    let first = index.messages[1].start;
                    let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
                    let meta = file.metadata().unwrap();
                    let header = Header {
                        ino: meta.ino(),
                        first,
                        old_len: meta.len(),
                        new_len,
                        copies_len: Some(COPIES.len() as u64),
                        tail_md5: md5_range(&file, new_len, meta.len()).unwrap(),
                    };
                    write_journal(&journal, &header, &pieces, COPIES.as_bytes()).unwrap();
                    // The ids of the last update, which the crash left in place.
                    let copies = dir.join("uids");
                    fs::write(&copies, "old\n").unwrap();
                    // The crash: part of step 2 done, maybe step 3.
                    file.write_all_at(&expected[24..24 + written], first).unwrap();
                    if truncated {
                        file.set_len(new_len).unwrap();
                    }
                    if delivered {
                        OpenOptions::new().append(true).open(&path).unwrap().write_all(new_mail).unwrap();
                    }
                    assert!(recover(&file, &UpdatePaths { journal: &journal, copies: &copies }).unwrap());
                    let want = [expected, if delivered { new_mail } else { b"" }].concat();
                    assert_eq!(String::from_utf8_lossy(&fs::read(&path).unwrap()), String::from_utf8_lossy(&want));
                    assert!(!journal.exists());
                    assert_eq!(fs::read_to_string(&copies).unwrap(), COPIES, "the ids change with the mailbox");
                }
            }
        }
    }

    #[test]
    fn header_round_trip() {
        let h = Header { ino: 2, first: 3, old_len: 40, new_len: 5, copies_len: Some(9), tail_md5: [7; 16] };
        assert_eq!(Header::parse(&h.line()), Some(h.clone()));
        assert_eq!(Header::parse("garbage"), None);
        assert_eq!(Header::parse(&Header { first: 6, ..h.clone() }.line()), None, "data of negative length");
        assert_eq!(Header::parse(&Header { new_len: 41, ..h.clone() }.line()), None, "a file that grew");
        let v2 = Header { copies_len: None, ..h };
        assert_eq!(Header::parse("POP3D-JOURNAL-2 2 3 40 5 07070707070707070707070707070707\n"), Some(v2.clone()));
        assert_eq!(Header::parse(&v2.line()), Some(v2), "redone from format 2: still no copy numbers");
    }

    /// A copy-number file that cannot be written (here: its directory is
    /// gone) must not keep the journal, which would fail every later login.
    #[test]
    fn an_unwritable_copies_file_is_dropped_not_fatal() {
        let (dir, path, file, index) = mailbox("nocopies");
        let journal = dir.join("j");
        let copies = dir.join("gone").join("uids");
        let paths = UpdatePaths { journal: &journal, copies: &copies };
        assert!(remove_messages(&file, &index, &[true, false, true], &paths, COPIES).unwrap());
        assert_eq!(fs::read(&path).unwrap(), KEPT);
        assert!(!journal.exists() && !copies.exists());
    }

    /// A journal of an earlier pop3d (format 2) is finished and leaves the
    /// copy numbers as they are.
    #[test]
    fn a_format_2_journal_is_finished_and_keeps_the_copy_numbers() {
        let (dir, path, file, index) = mailbox("v2");
        let pieces = build_pieces(&file, &index, &[true, false, true], 1, MBOX.len() as u64);
        let first = index.messages[1].start;
        let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
        let old_len = MBOX.len() as u64;
        let tail_md5 = md5_range(&file, new_len, old_len).unwrap();
        let ino = file.metadata().unwrap().ino();
        let header = Header { ino, first, old_len, new_len, copies_len: None, tail_md5 };
        let journal = dir.join("j");
        write_journal(&journal, &header, &pieces, b"").unwrap();
        let hex = hex::encode(&tail_md5);
        let mut text = fs::read(&journal).unwrap();
        let end = text.iter().position(|&b| b == b'\n').unwrap();
        text.splice(..end, format!("POP3D-JOURNAL-2 {ino} {first} {old_len} {new_len} {hex}").into_bytes());
        fs::write(&journal, text).unwrap();
        let copies = dir.join("uids");
        fs::write(&copies, COPIES).unwrap();
        assert!(recover(&file, &UpdatePaths { journal: &journal, copies: &copies }).unwrap());
        assert_eq!(fs::read(&path).unwrap(), KEPT);
        assert_eq!(fs::read_to_string(&copies).unwrap(), COPIES);
        assert!(!journal.exists());
    }
}
