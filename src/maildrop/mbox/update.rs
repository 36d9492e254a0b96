//! UPDATE for an mbox: removes deleted messages in place through a journal, so a crash at any moment loses no mail.
//!
//! In place (not a new file and a rename) so that the inode, owner and mode
//! stay, and a delivery agent that opened the mailbox before locking it
//! still appends to the live file. The steps, all under the mailbox locks:
//!
//! 1. The bytes from the first deleted message to the end of the file, less
//!    the deleted messages, are copied to a journal in `state_dir` (a
//!    temporary file, fsync, rename), with `first`, the old length, the new
//!    length, and the copy numbers of identical messages for `USER.uids`.
//!    Each piece lies in the journal at an offset congruent to its place in
//!    the mailbox (`journal` has the format): where the filesystem shares
//!    blocks between files (btrfs, XFS with reflink), the copy is a clone
//!    that writes no data. Its state is `P` (pending): the mailbox is not
//!    cut yet.
//! 2. The pieces are written over the mailbox from `first` on, then a
//!    marker (`CUT_MARK`, NUL first) at the new length, inside the old tail
//!    that is about to go; fsync. The update that wrote the journal moves
//!    them down inside the mailbox, where they are the journal's octets and
//!    usually in the page cache (a clone's are not: copying from the
//!    journal would read them from the disk); recovery copies them from the
//!    journal. (The tail's new place is not block-congruent to its old one:
//!    this is where it is written, once.)
//! 3. The journal's state becomes `M` (marked), fsync; the mailbox is
//!    truncated to the new length, fsync; `USER.uids` is written from the
//!    journal; the journal removed.
//!
//! A journal found later (under the locks, before the mailbox is read) is
//! finished from what it recorded, never from what the mailbox content
//! looks like: in state `P` nothing was cut, so steps 2-3 are redone (mail
//! appended after the crash lies past the old length and is carried
//! along). In state `M` the cut may have happened: the marker still at the
//! new length says it did not (no delivery starts with a NUL); anything
//! else there, or nothing, is mail appended after the cut, however much it
//! looks like what was deleted. Journals of earlier versions (formats 2 to
//! 4) are finished too: DESIGN.md ("Files in state_dir").

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use md5::{Digest, Md5};

use super::index::Index;
use super::journal::{self, Header, Journal, Progress, HEADER_ROOM, STATE_AT};
use crate::limits::{STORE_BLOCK, UPDATE_MOVE_BLOCK};
use crate::maildrop::store::MaildropError;

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
) -> Result<bool, MaildropError> {
    let Some(first_gone) = keep.iter().position(|k| !k) else {
        return Ok(false);
    };
    let meta = file.metadata()?;
    let old_len = meta.len();
    let first = index.messages[first_gone].start;
    let pieces = build_pieces(file, index, keep, first_gone, old_len);
    // At least one message (its `From ` line) goes: the file shrinks, which
    // leaves room for the cut marker.
    let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
    let copies_len = Some(copies.len() as u64);
    let header =
        Header { progress: Progress::Pending, ino: meta.ino(), first, old_len, new_len, copies_len, map: None };
    let free = crate::sys::free_space(file.as_fd()).ok();
    write_journal(paths.journal, &header, &pieces, copies.as_bytes(), journal::clone_align(file))?;
    if let Err(e) = room_to_move(file, paths.journal, free, new_len - first) {
        // Nothing is applied yet: the journal goes, the mailbox stays as it is.
        fs::remove_file(paths.journal).and_then(|_| sync_dir(paths.journal)).map_err(MaildropError::Journal)?;
        return Err(e);
    }
    if let Err(e) = open_and_apply(file, paths, Content::Mailbox(&pieces)) {
        // The journal is complete: finishing it now, still under the locks,
        // beats leaving a half-rewritten mailbox until the next login.
        log::error!("rewriting the mailbox failed ({e}); finishing it from the journal {}", paths.journal.display());
        recover(file, paths).map_err(|e2| {
            log::error!("the deletion stays pending in {}: {e2}", paths.journal.display());
            e
        })?;
    }
    Ok(true)
}

/// Whether the mailbox's filesystem has room for the move of `data_len`
/// octets, where the journal just written shares the mailbox's blocks (on
/// the same filesystem, it took less than half its data from the `free`
/// octets there before it: a clone). Overwriting shared blocks writes new
/// ones (copy on write), so the move needs that room, which the journal did
/// not take: without it the move would stop half-way on a full disk (the
/// journal would finish it once there is room), so it is refused now,
/// before the mailbox is touched, as a journal that did not fit would be.
fn room_to_move(file: &File, journal: &Path, free: Option<u64>, data_len: u64) -> Result<(), MaildropError> {
    let (Some(before), Ok(after), Ok(jmeta)) =
        (free, crate::sys::free_space(file.as_fd()), fs::symlink_metadata(journal))
    else {
        return Ok(());
    };
    let shared = jmeta.dev() == file.metadata()?.dev() && before.saturating_sub(after) < data_len / 2;
    if !shared || after >= data_len {
        return Ok(());
    }
    log::error!("no room to move {data_len} bytes in the mailbox ({after} free, the journal shares its blocks)");
    Err(MaildropError::Io(io::Error::from_raw_os_error(libc::ENOSPC)))
}

/// The new content after `first` (the start of message `first_gone`, the
/// first deleted one): every kept message's raw block, unchanged, then mail
/// appended since the scan.
/// Blocks that follow each other in the file are one piece (one copy).
fn build_pieces<'a>(file: &'a File, index: &Index, keep: &[bool], first_gone: usize, len: u64) -> Vec<Piece<'a>> {
    let mut pieces: Vec<Piece> = Vec::new();
    let blocks =
        (first_gone..index.messages.len()).filter(|&i| keep[i]).map(|i| (index.messages[i].start, index.block_end(i)));
    let appended = (len > index.scanned_end).then_some((index.scanned_end, len));
    for (start, end) in blocks.chain(appended) {
        match pieces.last_mut() {
            Some(last) if last.2 == start => last.2 = end,
            _ => pieces.push(Piece(file, start, end)),
        }
    }
    pieces
}

/// Writes the journal of `header` (which gets its map here) under a
/// temporary name, each piece where `journal::place` puts it for blocks of
/// `align` octets, syncs it, then renames it into place. Errors name the
/// journal's directory and, when it is full, the space it needed (in the
/// log; the error says what failed).
fn write_journal(
    journal: &Path,
    header: &Header,
    pieces: &[Piece],
    copies: &[u8],
    align: u64,
) -> Result<(), MaildropError> {
    let spans = journal::place(pieces.iter().map(|p| (p.1, p.len())), align);
    let map = journal::map_text(&spans);
    let map_at = spans.last().map_or(HEADER_ROOM, |s| s.at + s.len);
    let header = Header { map: Some((map_at, map.len() as u64)), ..header.clone() };
    let tmp = journal.with_extension("journal-new");
    let result = (|| {
        let mut out = crate::nofollow::create_temp(&tmp)?;
        for (&Piece(from, start, end), span) in pieces.iter().zip(&spans) {
            if copy_piece(from, start, &out, span.at, end - start, align)? < end - start {
                let shrank = io::Error::new(io::ErrorKind::UnexpectedEof, "mailbox shrank while being copied");
                return Err(Source::Mailbox(shrank));
            }
        }
        // Plain writes at the file's offset (no pwrite): the first pwrite of
        // an update is the cut marker, which the crash suite kills at.
        out.seek(SeekFrom::Start(map_at))?;
        out.write_all(map.as_bytes())?;
        out.write_all(copies)?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(header.line().as_bytes())?;
        out.sync_all()?;
        fs::rename(&tmp, journal)?;
        sync_dir(journal)?;
        Ok::<(), Source>(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| match e {
        Source::Mailbox(e) => MaildropError::Io(e),
        Source::Journal(e) => {
            let dir = journal.parent().unwrap_or(Path::new("."));
            let size = map_at + map.len() as u64 + copies.len() as u64;
            if e.raw_os_error() == Some(libc::ENOSPC) {
                log::error!("no space in {} for the {size}-byte update journal {}", dir.display(), journal.display());
            } else {
                log::error!("cannot write the update journal {}: {e}", journal.display());
            }
            MaildropError::Journal(e)
        }
    })
}

/// Which file an error of `write_journal` came from.
enum Source {
    Mailbox(io::Error),
    Journal(io::Error),
}

impl From<io::Error> for Source {
    fn from(e: io::Error) -> Source {
        Source::Journal(e)
    }
}

/// Copies `len` octets from `from_at` in `from` to `to_at` in `to`, in the
/// kernel where it can: `io::copy` between files uses copy_file_range(2)
/// on Linux (falling back to a buffered copy where the kernel has none).
/// In two calls, split where `from` reaches a multiple of `align`: a
/// filesystem that shares blocks clones only from a block boundary on (a
/// range that starts inside a block it copies whole), so the second call
/// is a clone wherever `to_at` is congruent to `from_at`, and a copy in the
/// page cache elsewhere. Returns the octets copied (fewer: `from` ended).
fn copy_piece(from: &File, from_at: u64, to: &File, to_at: u64, len: u64, align: u64) -> io::Result<u64> {
    let head = journal::head_len(from_at, align).min(len);
    let mut done = 0;
    for part in [head, len - head] {
        if part == 0 {
            continue;
        }
        let (mut src, mut dst) = (from, to);
        src.seek(SeekFrom::Start(from_at + done))?;
        dst.seek(SeekFrom::Start(to_at + done))?;
        let n = io::copy(&mut src.take(part), &mut dst)?;
        done += n;
        if n < part {
            break;
        }
    }
    Ok(done)
}

/// Moves `len` octets at `from` in `file` down to `to` (not after `from`),
/// front to back through `buf`: each block is read before anything at or
/// after it is written over.
fn move_down(file: &File, from: u64, to: u64, len: u64, buf: &mut [u8]) -> io::Result<()> {
    debug_assert!(to <= from);
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], from + done)?;
        file.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
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

/// Where step 2 takes the new content from.
enum Content<'a> {
    /// The pieces where they still are in the mailbox: the update that has
    /// just written the journal from them, under the same locks.
    Mailbox(&'a [Piece<'a>]),
    /// The journal's copies (recovery: the mailbox may be half rewritten).
    Journal,
}

/// Reads the journal just written and applies it (steps 2 and 3).
fn open_and_apply(file: &File, paths: &UpdatePaths, content: Content) -> Result<(), MaildropError> {
    let jfile = crate::nofollow::open_state_rw(paths.journal).map_err(MaildropError::Journal)?;
    let unreadable = || io::Error::new(io::ErrorKind::InvalidData, "journal unreadable just after it was written");
    let journal = Journal::read(&jfile).map_err(MaildropError::Journal)?.ok_or_else(unreadable);
    apply(file, paths, jfile, &journal.map_err(MaildropError::Journal)?, content)
}

/// Steps 2 and 3 of a pending journal (read from `jfile`): the new content
/// over the mailbox, the cut marker, the state `M`, the cut, the copy
/// numbers, the journal removed.
fn apply(
    file: &File,
    paths: &UpdatePaths,
    jfile: File,
    journal: &Journal,
    content: Content,
) -> Result<(), MaildropError> {
    let header = &journal.header;
    let mut to = header.first;
    match content {
        Content::Mailbox(pieces) => {
            let mut buf = vec![0u8; UPDATE_MOVE_BLOCK];
            for &Piece(_, start, end) in pieces {
                move_down(file, start, to, end - start, &mut buf)?;
                to += end - start;
            }
        }
        Content::Journal => {
            let align = journal::clone_align(file);
            for span in &journal.pieces {
                if copy_piece(&jfile, span.at, file, to, span.len, align)? != span.len {
                    let short = io::Error::new(io::ErrorKind::InvalidData, "journal is shorter than it says");
                    return Err(MaildropError::Journal(short));
                }
                to += span.len;
            }
        }
    }
    if to != header.new_len {
        let wrong = io::Error::new(io::ErrorKind::InvalidData, "the pieces do not fill the new length");
        return Err(MaildropError::Journal(wrong));
    }
    file.write_all_at(header.cut_mark(), header.new_len)?;
    file.sync_data()?;
    jfile.write_all_at(b"M", STATE_AT).and_then(|_| jfile.sync_data()).map_err(MaildropError::Journal)?;
    let done = cut(file, paths, &jfile, journal);
    close_later(jfile);
    done
}

/// Closes a removed journal on a thread of its own: the last close of a
/// large unlinked file frees its blocks and drops its pages (40 ms for
/// 100 MB on the bench's VM), which the client waiting for QUIT's answer
/// need not wait for. Nothing depends on it: the journal is out of
/// state_dir by then (or, if the update failed, stays there for the next
/// login, whatever this descriptor does). Closed here if no thread starts,
/// or when the process runs `SIDE_THREADS` already.
fn close_later(jfile: File) {
    if jfile.metadata().map_or(true, |m| m.len() < 1 << 20) {
        return;
    }
    let Some(leave) = crate::side_threads::leave() else { return };
    let close = move || drop((jfile, leave));
    let _ = std::thread::Builder::new().name("close-journal".into()).stack_size(64 * 1024).spawn(close);
}

/// The cut and what follows it: truncate to the new length, sync, then
/// finish (copy numbers, journal removed).
fn cut(file: &File, paths: &UpdatePaths, jfile: &File, journal: &Journal) -> Result<(), MaildropError> {
    file.set_len(journal.header.new_len)?;
    file.sync_all()?;
    let copies = journal.copies(jfile).map_err(MaildropError::Journal)?;
    finish(paths, copies.as_deref()).map_err(MaildropError::Journal)
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

/// Removes what an update killed half-way leaves in `state_dir` besides its
/// journal: a journal or copy-number file still being written. Called under
/// the maildrop's locks, where no update of it can be running.
pub fn remove_leftovers(paths: &UpdatePaths) {
    for tmp in [paths.journal.with_extension("journal-new"), paths.copies.with_extension("uids-new")] {
        match fs::remove_file(&tmp) {
            Ok(()) => log::warn!("removed {}, left by an interrupted update", tmp.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot remove {}: {e}", tmp.display()),
        }
    }
}

/// Finishes an interrupted UPDATE recorded in `paths.journal`, if there is
/// one. `file` is the mailbox, opened read-write and exclusively locked.
pub fn recover(file: &File, paths: &UpdatePaths) -> Result<bool, MaildropError> {
    let journal = paths.journal;
    let jfile = match crate::nofollow::open_state_rw(journal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(MaildropError::Journal(e)),
    };
    let read = Journal::read(&jfile).map_err(MaildropError::Journal)?;
    let meta = file.metadata()?;
    let len = meta.len();
    let j = match read {
        // The inode, not the device: device numbers can change across a
        // reboot (btrfs subvolumes, USB disks), which is when this runs.
        // A pending update never shrank the file.
        Some(j)
            if j.header.ino == meta.ino() && (j.header.progress != Progress::Pending || len >= j.header.old_len) =>
        {
            j
        }
        _ => {
            // Not for this file (the mailbox was replaced or cut by someone
            // else), or not a journal this pop3d can read: keep it for the
            // operator, under a name no later journal overwrites.
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let aside = journal.with_extension(format!("journal-stale-{stamp}"));
            fs::rename(journal, &aside).map_err(MaildropError::Journal)?;
            log::error!("journal {} does not match its mailbox; kept as {}", journal.display(), aside.display());
            return Ok(false);
        }
    };
    let header = &j.header;
    let cut_done = match header.progress {
        Progress::Pending => false,
        Progress::Marked => {
            let mark = header.cut_mark();
            let mut here = vec![0u8; mark.len()];
            match file.read_exact_at(&mut here, header.new_len) {
                Ok(()) => here != mark,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => true,
                Err(e) => return Err(e.into()),
            }
        }
        Progress::Legacy(md5) => len < header.old_len || md5_range(file, header.new_len, header.old_len)? != md5,
    };
    if cut_done {
        let copies = j.copies(&jfile).map_err(MaildropError::Journal)?;
        finish(paths, copies.as_deref()).map_err(MaildropError::Journal)?;
        log::warn!("finished an interrupted update: journal {} was already applied", journal.display());
        return Ok(true);
    }
    let data_len = header.new_len - header.first;
    if len <= header.old_len && !matches!(header.progress, Progress::Legacy(_)) {
        // Nothing appended since: the journal as it is (no second one, so
        // no more space than the update itself took). Earlier formats have
        // no state byte to update: they are written anew in this format.
        match header.progress {
            Progress::Marked => cut(file, paths, &jfile, &j)?,
            _ => apply(file, paths, jfile, &j, Content::Journal)?,
        }
    } else {
        // Mail appended after the crash: a new journal that carries it too.
        let copies = j.copies(&jfile).map_err(MaildropError::Journal)?;
        let redo = Header {
            progress: Progress::Pending,
            new_len: header.new_len + (len - header.old_len),
            old_len: len,
            map: None,
            ..header.clone()
        };
        let mut pieces: Vec<Piece> = j.pieces.iter().map(|s| Piece(&jfile, s.at, s.at + s.len)).collect();
        pieces.extend((len > header.old_len).then_some(Piece(file, header.old_len, len)));
        let align = journal::clone_align(file);
        write_journal(journal, &redo, &pieces, copies.as_deref().unwrap_or("").as_bytes(), align)?;
        open_and_apply(file, paths, Content::Journal)?;
    }
    log::warn!("finished an interrupted update of {data_len} bytes from journal {}", journal.display());
    Ok(true)
}

fn copy_range(src: &File, mut start: u64, end: u64, out: &mut impl Write, buf: &mut [u8]) -> io::Result<()> {
    while start < end {
        let want = (end - start).min(buf.len() as u64) as usize;
        let n = read_some_at(src, &mut buf[..want], start)?;
        out.write_all(&buf[..n])?;
        start += n as u64;
    }
    Ok(())
}

/// Reads at least one byte at `pos` (the caller asks only for bytes it
/// knows are there): a file that ends sooner shrank under us.
fn read_some_at(src: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    match src.read_at(buf, pos)? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "mailbox shrank while being copied")),
        n => Ok(n),
    }
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
    use journal::CUT_MARK;
    use std::fs::OpenOptions;

    const MBOX: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom b\nSubject: 2\n\ntwo\n\nFrom c\nSubject: 3\n\nthree\n\n";

    /// MBOX without its second message.
    const KEPT: &[u8] = b"From a\nSubject: 1\n\none\n\nFrom c\nSubject: 3\n\nthree\n\n";

    /// Copy numbers as `USER.uids` holds them (what they say does not matter here).
    const COPIES: &str = "0123456789abcdef0123456789abcdef 1 2\n";

    /// A fresh directory holding `content` as `mbox`, the mailbox opened
    /// read-write, and its index.
    fn mailbox_of(name: &str, content: &[u8]) -> (TempDir, std::path::PathBuf, File, Index) {
        let dir = TempDir::new(name);
        let path = dir.join("mbox");
        fs::write(&path, content).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let index = scan(File::open(&path).unwrap(), FromQuoting::Mboxrd, 100, &CopyNumbers::default()).unwrap();
        (dir, path, file, index)
    }

    fn mailbox(name: &str) -> (TempDir, std::path::PathBuf, File, Index) {
        mailbox_of(name, MBOX)
    }

    /// A journal as an earlier pop3d wrote it (formats 2-4): the header
    /// line, the data in one run, the copy numbers.
    fn write_old_journal(path: &Path, header: &Header, data: &[u8], copies: &[u8]) {
        assert!(header.map.is_none());
        fs::write(path, [header.line().as_bytes(), data, copies].concat()).unwrap();
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

    /// Messages of a few blocks each, every other one deleted: the journal
    /// holds each kept piece where its whole blocks can be cloned, and the
    /// mailbox comes out as the kept messages, with mail appended since.
    #[test]
    fn several_pieces_each_placed_for_a_clone() {
        let msgs: Vec<Vec<u8>> = (0..7u8)
            .map(|n| {
                [format!("From m{n}\nSubject: {n}\n\n").as_bytes(), &vec![b'a' + n; 5000 + 977 * n as usize], b"\n\n"]
                    .concat()
            })
            .collect();
        let (dir, path, file, index) = mailbox_of("pieces", &msgs.concat());
        let keep = [true, false, true, false, true, false, true];
        let later = b"From late\n\nlate\n\n";
        OpenOptions::new().append(true).open(&path).unwrap().write_all(later).unwrap();
        let align = journal::clone_align(&file);
        let len = file.metadata().unwrap().len();
        let pieces = build_pieces(&file, &index, &keep, 1, len);
        assert_eq!(pieces.len(), 3, "messages 3, 5, and 7 with the new mail");
        let first = index.messages[1].start;
        let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
        let ino = file.metadata().unwrap().ino();
        let header =
            Header { progress: Progress::Pending, ino, first, old_len: len, new_len, copies_len: None, map: None };
        let jpath = dir.join("j");
        write_journal(&jpath, &header, &pieces, b"", align).unwrap();
        let jfile = File::open(&jpath).unwrap();
        let written = Journal::read(&jfile).unwrap().unwrap();
        for (piece, span) in pieces.iter().zip(&written.pieces) {
            assert_eq!(span.len, piece.len());
            if journal::head_len(piece.1, align) + align <= piece.len() {
                assert_eq!(span.at % align, piece.1 % align, "{span:?} from {}", piece.1);
            }
            let mut got = vec![0u8; span.len as usize];
            jfile.read_exact_at(&mut got, span.at).unwrap();
            assert_eq!(got, fs::read(&path).unwrap()[piece.1 as usize..piece.2 as usize]);
        }
        // Recovery copies from the journal; an update moves the pieces down
        // inside the mailbox: both give the kept messages and the new mail.
        let copies = dir.join("uids");
        let paths = UpdatePaths { journal: &jpath, copies: &copies };
        assert!(recover(&file, &paths).unwrap());
        let kept: Vec<u8> = msgs.iter().zip(keep).filter(|(_, k)| *k).flat_map(|(m, _)| m.clone()).collect();
        assert_eq!(fs::read(&path).unwrap(), [&kept[..], later].concat());
        assert!(!jpath.exists());
        fs::write(&path, [&msgs.concat()[..], later].concat()).unwrap();
        assert!(remove_messages(&file, &index, &keep, &paths, "").unwrap());
        assert_eq!(fs::read(&path).unwrap(), [&kept[..], later].concat());
        assert!(!jpath.exists());
    }

    /// A move down onto itself, in blocks smaller and larger than the
    /// distance: every octet lands where a memmove would put it.
    #[test]
    fn moves_down_over_itself() {
        let dir = TempDir::new("movedown");
        let path = dir.join("f");
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for (from, to, len, block) in [(100, 0, 9900, 7), (5000, 4999, 5000, 64), (3, 0, 9997, 4096), (10, 10, 50, 3)] {
            fs::write(&path, &content).unwrap();
            let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
            move_down(&file, from, to, len, &mut vec![0u8; block]).unwrap();
            let mut want = content.clone();
            want.copy_within(from as usize..(from + len) as usize, to as usize);
            assert!(fs::read(&path).unwrap() == want, "from {from} to {to}, blocks of {block}");
        }
    }

    /// The state a crash can leave: the journal written (state P), `written`
    /// bytes of its data and `marked` bytes of the cut marker over the
    /// mailbox, then maybe the state M, then maybe the cut.
    struct Crash {
        written: usize,
        marked: usize,
        state_m: bool,
        cut: bool,
    }

    /// Every crash point of an update of MBOX that deletes the messages not
    /// in `keep`, in order.
    fn crash_points(data_len: usize, mark_len: usize) -> Vec<Crash> {
        let mut out: Vec<Crash> =
            (0..=data_len).map(|w| Crash { written: w, marked: 0, state_m: false, cut: false }).collect();
        out.extend((1..=mark_len).map(|m| Crash { written: data_len, marked: m, state_m: false, cut: false }));
        out.push(Crash { written: data_len, marked: mark_len, state_m: true, cut: false });
        out.push(Crash { written: data_len, marked: mark_len, state_m: true, cut: true });
        out
    }

    /// Crashes an update of MBOX keeping `keep` at `crash`, its journal in
    /// this pop3d's format or (`format_4`) the one before, appends `later`
    /// (a delivery after the crash), recovers, and returns the mailbox.
    fn crash_and_recover(name: &str, keep: &[bool], crash: &Crash, later: &[u8], format_4: bool) -> Vec<u8> {
        let (dir, path, file, index) = mailbox(name);
        let journal = dir.join("j");
        let first_gone = keep.iter().position(|k| !k).unwrap();
        let pieces = build_pieces(&file, &index, keep, first_gone, MBOX.len() as u64);
        let first = index.messages[first_gone].start;
        let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
        let meta = file.metadata().unwrap();
        let (ino, old_len, copies_len) = (meta.ino(), meta.len(), Some(COPIES.len() as u64));
        let header = Header { progress: Progress::Pending, ino, first, old_len, new_len, copies_len, map: None };
        let data: Vec<u8> = pieces.iter().flat_map(|p| MBOX[p.1 as usize..p.2 as usize].to_vec()).collect();
        if format_4 {
            write_old_journal(&journal, &header, &data, COPIES.as_bytes());
        } else {
            write_journal(&journal, &header, &pieces, COPIES.as_bytes(), 16).unwrap();
        }
        // The ids of the last update, which the crash left in place.
        let copies = dir.join("uids");
        fs::write(&copies, "old\n").unwrap();
        file.write_all_at(&data[..crash.written], first).unwrap();
        file.write_all_at(&CUT_MARK[..crash.marked], new_len).unwrap();
        if crash.state_m {
            OpenOptions::new().write(true).open(&journal).unwrap().write_all_at(b"M", STATE_AT).unwrap();
        }
        if crash.cut {
            file.set_len(new_len).unwrap();
        }
        OpenOptions::new().append(true).open(&path).unwrap().write_all(later).unwrap();
        assert!(recover(&file, &UpdatePaths { journal: &journal, copies: &copies }).unwrap());
        assert!(!journal.exists());
        assert_eq!(fs::read_to_string(&copies).unwrap(), COPIES, "the ids change with the mailbox");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "only the mailbox and the ids: {left:?}");
        fs::read(&path).unwrap()
    }

    /// A crash at every point of steps 2 and 3, with and without a delivery
    /// after it, with a journal of this format (its piece at an offset of
    /// its own, 16-octet blocks here) and of format 4: the mailbox ends as
    /// the update meant, with the delivery.
    #[test]
    fn recovery_from_every_crash_point() {
        let new_mail: &[u8] = b"From e\n\nlate\n\n";
        let keep = [true, false, true];
        let data_len = KEPT.len() - 24;
        let mark_len = CUT_MARK.len().min(MBOX.len() - KEPT.len());
        for format_4 in [false, true] {
            for later in [&b""[..], new_mail] {
                for (i, crash) in crash_points(data_len, mark_len).iter().enumerate() {
                    let name = format!("crash-{format_4}-{}-{i}", later.len());
                    let got = crash_and_recover(&name, &keep, crash, later, format_4);
                    let want = [KEPT, later].concat();
                    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "crash point {i}");
                }
            }
        }
    }

    /// The last message deleted, the process killed after the cut, and the
    /// same message delivered again (a retried delivery): the redelivery is
    /// new mail and stays, however exactly it repeats the deleted bytes.
    #[test]
    fn a_byte_identical_redelivery_after_the_cut_is_kept() {
        let keep = [true, true, false];
        let last = &MBOX[MBOX.windows(6).position(|w| w == b"From c").unwrap()..];
        let before = &MBOX[..MBOX.len() - last.len()];
        for (i, crash) in crash_points(0, CUT_MARK.len().min(last.len())).iter().enumerate() {
            let got = crash_and_recover(&format!("redeliver-{i}"), &keep, crash, last, false);
            // Cut before the crash: the redelivery stays. Not cut: the
            // deleted message goes, the redelivery after it stays.
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&[before, last].concat()), "{i}");
        }
    }

    /// Writes `j` in `dir`: the pending journal (no copy numbers, blocks of
    /// 4096 octets) of an update of MBOX that deletes its second message.
    fn journal_without_b(dir: &TempDir, file: &File, index: &Index) -> (std::path::PathBuf, Header) {
        let journal = dir.join("j");
        let pieces = build_pieces(file, index, &[true, false, true], 1, MBOX.len() as u64);
        let first = index.messages[1].start;
        let new_len = first + pieces.iter().map(Piece::len).sum::<u64>();
        let meta = file.metadata().unwrap();
        let (ino, old_len) = (meta.ino(), meta.len());
        let header = Header { progress: Progress::Pending, ino, first, old_len, new_len, copies_len: None, map: None };
        write_journal(&journal, &header, &pieces, b"", 4096).unwrap();
        (journal, header)
    }

    /// Recovery with nothing appended needs no second journal: with room
    /// for one journal only, it still finishes.
    #[test]
    fn recovery_without_new_mail_writes_no_second_journal() {
        let (dir, path, file, index) = mailbox("onejournal");
        let (journal, _) = journal_without_b(&dir, &file, &index);
        // A second journal cannot be written: its temporary name is taken
        // by a directory.
        fs::create_dir(journal.with_extension("journal-new")).unwrap();
        let copies = dir.join("uids");
        let paths = UpdatePaths { journal: &journal, copies: &copies };
        assert!(recover(&file, &paths).unwrap());
        assert_eq!(fs::read(&path).unwrap(), KEPT);
        assert!(!journal.exists());
    }

    /// A journal whose map does not add up is set aside, not applied.
    #[test]
    fn a_journal_with_a_wrong_map_is_kept_aside() {
        let (dir, path, file, index) = mailbox("badmap");
        let (journal, Header { first, new_len, .. }) = journal_without_b(&dir, &file, &index);
        let text = fs::read(&journal).unwrap();
        let map_at = text.len() - format!("{} {}\n", HEADER_ROOM, new_len - first).len();
        assert_eq!(text[map_at..], *format!("{} {}\n", HEADER_ROOM, new_len - first).as_bytes());
        OpenOptions::new().write(true).open(&journal).unwrap().write_all_at(b"9", map_at as u64).unwrap();
        let copies = dir.join("uids");
        assert!(!recover(&file, &UpdatePaths { journal: &journal, copies: &copies }).unwrap());
        assert_eq!(fs::read(&path).unwrap(), MBOX, "nothing applied");
        assert!(!journal.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "the mailbox and the journal kept aside");
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
        let data: Vec<u8> = pieces.iter().flat_map(|p| MBOX[p.1 as usize..p.2 as usize].to_vec()).collect();
        let hex = crate::hex::encode(&tail_md5);
        let journal = dir.join("j");
        let line = format!("POP3D-JOURNAL-2 {ino} {first} {old_len} {new_len} {hex}\n");
        fs::write(&journal, [line.as_bytes(), &data].concat()).unwrap();
        let copies = dir.join("uids");
        fs::write(&copies, COPIES).unwrap();
        assert!(recover(&file, &UpdatePaths { journal: &journal, copies: &copies }).unwrap());
        assert_eq!(fs::read(&path).unwrap(), KEPT);
        assert_eq!(fs::read_to_string(&copies).unwrap(), COPIES);
        assert!(!journal.exists());
    }
}
