//! Maildir conventions other programs on the Maildir expect: `new/` to `cur/` as seen, `maildirsize`.
//!
//! A retrieved message moves from `new/` to `cur/` with the `2,S` info (as
//! Dovecot and Courier do, so a mail reader on the box sees it as read),
//! and Maildir++'s `maildirsize` quota file is told of the messages
//! deleted.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use super::{Entry, Maildir, SUBDIRS};
use crate::sys;

/// Indexes into `SUBDIRS`.
const CUR: usize = 0;
const NEW: usize = 1;

impl Maildir {
    /// The separator that starts the info in the names pop3d gives: `:`,
    /// or `;` for Maildirs on FAT or SMB file systems, which cannot hold a
    /// `:` (both are read whatever this says).
    pub fn set_separator(&mut self, separator: u8) {
        self.separator = separator;
    }

    /// After message `i` (0-based) was retrieved whole: if it is in
    /// `new/`, renames it to `cur/NAME:2,S` (seen). A message another
    /// program moved meanwhile is left where it is.
    pub fn mark_seen(&mut self, i: usize) -> io::Result<()> {
        let Some(entry) = self.entries.get(i) else { return Ok(()) };
        if entry.subdir != NEW || SUBDIRS[CUR] != "cur" {
            return Ok(());
        }
        let (Some(new), Some(cur)) = (&self.dirs[NEW], &self.dirs[CUR]) else { return Ok(()) };
        let mut name = entry.name.clone();
        if !name.as_bytes().iter().any(|&b| b == b':' || b == b';') {
            let mut info = vec![self.separator];
            info.extend_from_slice(b"2,S");
            name.push(std::ffi::OsStr::from_bytes(&info));
        }
        match sys::rename_at(new.as_fd(), &entry.name, cur.as_fd(), &name) {
            Ok(()) => {
                self.entries[i] = Entry { subdir: CUR, name };
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Appends `-bytes -count` to Maildir++'s `maildirsize`, where there is
    /// one, for the messages UPDATE removed (the delivery agent sums the
    /// lines against the quota). A failure is logged: the quota then counts
    /// too much until the file is recalculated, nothing worse.
    pub(super) fn note_removed(&self, bytes: u64, count: u64) {
        let Some(root) = &self.root_fd else { return };
        if count == 0 {
            return;
        }
        let appended = sys::open_append_at(root.as_fd(), std::ffi::OsStr::new("maildirsize"))
            .and_then(|mut f| f.write_all(format!("-{bytes} -{count}\n").as_bytes()));
        match appended {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}/maildirsize: {e}", self.root.display()),
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::Maildir;
    use crate::maildrop::Limits;
    use crate::testkit::TempDir;

    #[test]
    fn retrieved_messages_move_to_cur_and_maildirsize_learns_of_deletions() {
        let dir = TempDir::new("conventions");
        let root = dir.join("Maildir");
        for d in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("new/1700000001.M1P1.box"), b"Subject: a\n\nx\n").unwrap();
        fs::write(root.join("new/1700000002.M2P2.box"), b"Subject: b\n\nyy\n").unwrap();
        fs::write(root.join("cur/1700000003.M3P3.box:2,"), b"Subject: c\n\nz\n").unwrap();
        fs::write(root.join("maildirsize"), b"1000000S,100C\n44 3\n").unwrap();
        let limits = Limits { max_messages: 10, max_size: u64::MAX };
        let mut m = Maildir::open(
            root.clone(),
            dir.path(),
            crate::maildrop::Bounds { limits: &limits, owner: None },
            &dir.join("index"),
        )
        .unwrap();
        m.mark_seen(0).unwrap();
        m.mark_seen(2).unwrap();
        assert!(root.join("cur/1700000001.M1P1.box:2,S").exists());
        assert!(root.join("cur/1700000003.M3P3.box:2,").exists(), "cur/ messages are left alone");
        m.set_separator(b';');
        m.mark_seen(1).unwrap();
        assert!(root.join("cur/1700000002.M2P2.box;2,S").exists());
        let mut out = Vec::new();
        m.send(0, crate::maildrop::Part::Whole, &mut out).unwrap();
        assert_eq!(out, b"Subject: a\r\n\r\nx\r\n", "still served where it moved");
        m.commit(&[true, true, false]).unwrap();
        assert_eq!(fs::read_to_string(root.join("maildirsize")).unwrap(), "1000000S,100C\n44 3\n-29 -2\n");
        // Listed again: the `;` name has the same unique part, so the same id.
        let again = Maildir::open(
            root.clone(),
            dir.path(),
            crate::maildrop::Bounds { limits: &limits, owner: None },
            &dir.join("index"),
        )
        .unwrap();
        assert_eq!(again.messages().len(), 1);
    }
}
