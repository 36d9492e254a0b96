//! A maildrop as a session sees it, mbox or Maildir: the messages listed at login with their deletion marks, RETR/TOP from the store behind them, and UPDATE at QUIT.

use std::io;
use std::path::PathBuf;

use crate::maildir::Maildir;
pub use crate::mbox::{MaildropError, Message, Part, StatePaths};
use crate::mbox::{Mbox, MboxSettings};
use crate::reply::MessageSink;

/// Where a user's mail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Mbox(PathBuf),
    Maildir(PathBuf),
}

/// The messages as they were at login, numbered from 1, with the marks DELE
/// sets and RSET clears. Stores provide the three accessors.
pub trait Listed {
    fn messages(&self) -> &[Message];
    fn marks(&self) -> &[bool];
    fn marks_mut(&mut self) -> &mut [bool];

    /// Number of messages at login, deleted ones included (the highest number).
    fn len(&self) -> usize {
        self.messages().len()
    }

    /// Message `n` (1-based) unless it does not exist or is marked deleted.
    fn get(&self, n: u32) -> Option<&Message> {
        let i = (n as usize).checked_sub(1)?;
        if *self.marks().get(i)? {
            return None;
        }
        self.messages().get(i)
    }

    /// Whether message `n` exists and is marked deleted.
    fn is_deleted(&self, n: u32) -> bool {
        (n as usize).checked_sub(1).and_then(|i| self.marks().get(i)).copied().unwrap_or(false)
    }

    /// Messages not marked deleted, with their numbers.
    fn live(&self) -> impl Iterator<Item = (u32, &Message)> {
        self.messages()
            .iter()
            .zip(self.marks())
            .enumerate()
            .filter(|(_, (_, d))| !**d)
            .map(|(i, (m, _))| (i as u32 + 1, m))
    }

    /// Count and total size of the messages not marked deleted.
    fn stat(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    /// Marks message `n` deleted; false if it does not exist or already is.
    fn delete(&mut self, n: u32) -> bool {
        if self.get(n).is_none() {
            return false;
        }
        self.marks_mut()[n as usize - 1] = true;
        true
    }

    /// Unmarks every message.
    fn reset(&mut self) {
        self.marks_mut().iter_mut().for_each(|d| *d = false);
    }

    /// Marked messages and their total size.
    fn marked(&self) -> (usize, u64) {
        let (live, size) = self.stat();
        (self.len() - live, self.messages().iter().map(|m| m.size).sum::<u64>() - size)
    }
}

/// One user's maildrop for the length of a session.
pub enum Maildrop {
    Mbox(Mbox),
    Maildir(Maildir),
}

impl Maildrop {
    /// Lists the maildrop at `location` (an mbox uses `state` for its update
    /// journal and the ids of identical copies).
    pub fn open(location: Location, state: StatePaths, settings: &MboxSettings) -> Result<Maildrop, MaildropError> {
        Ok(match location {
            Location::Mbox(path) => Maildrop::Mbox(Mbox::open(path, state, settings)?),
            Location::Maildir(path) => Maildrop::Maildir(Maildir::open(path, settings)?),
        })
    }

    /// Sends message `n` byte-stuffed (without the final `.` line).
    /// Returns the octets sent, or None if there is no such message.
    pub fn send<W: MessageSink>(&self, n: u32, part: Part, out: &mut W) -> Option<io::Result<u64>> {
        match self {
            Maildrop::Mbox(m) => m.send(n, part, out),
            Maildrop::Maildir(m) => m.send(n, part, out),
        }
    }

    /// Whether message `n` is still where it was listed (false when another
    /// program rewrote the mbox, or removed the Maildir file, since login).
    pub fn still_indexed(&self, n: u32) -> io::Result<bool> {
        match self {
            Maildrop::Mbox(m) => m.still_indexed(n),
            Maildrop::Maildir(m) => Ok(m.still_listed(n)),
        }
    }

    /// UPDATE: removes the marked messages. Returns how many were removed.
    pub fn commit(self) -> Result<usize, MaildropError> {
        match self {
            Maildrop::Mbox(m) => m.commit(),
            Maildrop::Maildir(m) => m.commit(),
        }
    }
}

impl Listed for Maildrop {
    fn messages(&self) -> &[Message] {
        match self {
            Maildrop::Mbox(m) => m.messages(),
            Maildrop::Maildir(m) => m.messages(),
        }
    }

    fn marks(&self) -> &[bool] {
        match self {
            Maildrop::Mbox(m) => m.marks(),
            Maildrop::Maildir(m) => m.marks(),
        }
    }

    fn marks_mut(&mut self) -> &mut [bool] {
        match self {
            Maildrop::Mbox(m) => m.marks_mut(),
            Maildrop::Maildir(m) => m.marks_mut(),
        }
    }
}
