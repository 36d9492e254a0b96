//! A maildrop as a session sees it: the messages listed at login, numbered from 1, with DELE's marks.
//!
//! RETR/TOP and UPDATE go to the store behind it (mbox or Maildir).
//!
//! Below this module: `message` (what a store lists), `store` (limits and
//! errors), `lines` and `stream` (the wire conversion every store's messages
//! go through), and the two stores, `mbox` and `maildir`, which only list,
//! read and commit.

mod checksum;
mod headers;
mod lines;
mod maildir;
mod maildir_index;
mod mbox;
mod message;
mod store;
mod stream;
mod workarounds;
mod xuidl;

use std::io;
use std::path::{Path, PathBuf};

pub use lines::FromQuoting;
use maildir::Maildir;
use mbox::Mbox;
pub use mbox::{MboxSettings, StatePaths};
pub use message::{Message, Part};
pub use store::{Bounds, Limits, MaildropError};
pub use workarounds::Workarounds;

use crate::reply::MessageSink;

/// Where a user's mail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Mbox(PathBuf),
    Maildir(PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Mbox(path) => write!(f, "{}", path.display()),
            Location::Maildir(path) => write!(f, "maildir:{}", path.display()),
        }
    }
}

/// The store a maildrop's messages are read from and removed in.
enum Store {
    Mbox(Mbox),
    Maildir(Maildir),
}

/// One user's maildrop for the length of a session.
pub struct Maildrop {
    store: Store,
    /// DELE's marks, one per message listed at login; RSET clears them.
    deleted: Vec<bool>,
    /// What the header options read of each message (once, the first time
    /// one needs it), and where that is cached (`headers`).
    headers: Option<Vec<headers::Header>>,
    header_cache: PathBuf,
    /// Ids taken from X-UIDL headers (the migration option), by index.
    x_uidl: Vec<Option<String>>,
    /// The client workarounds on, and (oe-ns-eoh) the messages that get
    /// an end-of-headers line, by index.
    workarounds: Workarounds,
    eoh_added: Vec<bool>,
}

impl Maildrop {
    /// (Tests: the parent directory of the maildrop is the fixed part.)
    /// Lists the maildrop at `location` within `limits` (an mbox uses
    /// `state` for its update journal and the ids of identical copies).
    #[cfg(test)]
    pub fn open(
        location: Location,
        state: StatePaths,
        limits: &Limits,
        mbox: &MboxSettings,
    ) -> Result<Maildrop, MaildropError> {
        let (Location::Mbox(path) | Location::Maildir(path)) = &location;
        let fixed = path.parent().unwrap_or(path).to_path_buf();
        Maildrop::open_below(&fixed, location, state, limits, mbox)
    }

    /// `open` with no link followed below `fixed`, the part of the path the
    /// operator fixed (see `nofollow`).
    pub fn open_below(
        fixed: &Path,
        location: Location,
        state: StatePaths,
        limits: &Limits,
        mbox: &MboxSettings,
    ) -> Result<Maildrop, MaildropError> {
        Maildrop::open_owned(fixed, location, state, Bounds { limits, owner: None }, mbox)
    }

    /// `open_below`, refusing a mailbox (the mbox or the Maildir directory,
    /// as opened: no path is looked at twice) that does not belong to
    /// `owner` when one is given (system accounts).
    pub fn open_owned(
        fixed: &Path,
        location: Location,
        state: StatePaths,
        bounds: Bounds<'_>,
        mbox: &MboxSettings,
    ) -> Result<Maildrop, MaildropError> {
        let header_cache = state.index.with_extension("headers");
        let store = match location {
            Location::Mbox(path) => Store::Mbox(Mbox::open(path, fixed.to_path_buf(), state, mbox, bounds)?),
            Location::Maildir(path) => Store::Maildir(Maildir::open(path, fixed, bounds, &state.index)?),
        };
        let deleted = vec![false; store.messages().len()];
        Ok(Maildrop {
            store,
            deleted,
            headers: None,
            header_cache,
            x_uidl: Vec::new(),
            workarounds: Workarounds::default(),
            eoh_added: Vec::new(),
        })
    }

    /// Number of messages at login, deleted ones included (the highest number).
    pub fn len(&self) -> usize {
        self.deleted.len()
    }

    /// No messages at login.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty()
    }

    /// The 0-based index of message `n` unless it does not exist or is
    /// marked deleted.
    fn index(&self, n: u32) -> Option<usize> {
        let i = (n as usize).checked_sub(1)?;
        (!*self.deleted.get(i)?).then_some(i)
    }

    /// Message `n` (1-based) unless it does not exist or is marked deleted.
    pub fn get(&self, n: u32) -> Option<Message> {
        self.index(n).map(|i| self.message(i))
    }

    /// Message `i` (0-based) with its size as sent (workarounds included).
    fn message(&self, i: usize) -> Message {
        let mut m = self.store.messages()[i].clone();
        if self.eoh_added.get(i) == Some(&true) {
            m.size += 2;
        }
        m
    }

    /// Whether message `n` exists and is marked deleted.
    pub fn is_deleted(&self, n: u32) -> bool {
        (n as usize).checked_sub(1).and_then(|i| self.deleted.get(i)).copied().unwrap_or(false)
    }

    /// Messages not marked deleted, with their numbers.
    pub fn live(&self) -> impl Iterator<Item = (u32, Message)> + '_ {
        self.deleted.iter().enumerate().filter(|(_, d)| !**d).map(|(i, _)| (i as u32 + 1, self.message(i)))
    }

    /// Count and total size of the messages not marked deleted.
    pub fn stat(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    /// Marks message `n` deleted; false if it does not exist or already is.
    pub fn delete(&mut self, n: u32) -> bool {
        let Some(i) = self.index(n) else { return false };
        self.deleted[i] = true;
        true
    }

    /// Unmarks every message.
    pub fn reset(&mut self) {
        self.deleted.iter_mut().for_each(|d| *d = false);
    }

    /// Marked messages and their total size.
    pub fn marked(&self) -> (usize, u64) {
        let (live, size) = self.stat();
        (self.len() - live, (0..self.len()).map(|i| self.message(i).size).sum::<u64>() - size)
    }

    /// Sends message `n` byte-stuffed (without the final `.` line).
    /// Returns the octets sent, or None if there is no such message.
    pub fn send<W: MessageSink>(&self, n: u32, part: Part, out: &mut W) -> Option<io::Result<u64>> {
        let i = self.index(n)?;
        if self.workarounds.outlook_no_nuls {
            let sent = workarounds::NoNuls::new(out).and_then(|mut w| {
                let sent = self.send_raw(i, part, &mut w)?;
                w.finish().map(|_| sent)
            });
            return Some(sent);
        }
        Some(self.send_raw(i, part, out))
    }

    /// Sends message `i` (0-based), with the end-of-headers line where
    /// oe-ns-eoh adds one.
    fn send_raw<W: MessageSink>(&self, i: usize, part: Part, out: &mut W) -> io::Result<u64> {
        let sent = self.store.send(i, part, out)?;
        if self.eoh_added.get(i) == Some(&true) {
            out.write_all(b"\r\n")?;
            return Ok(sent + 2);
        }
        Ok(sent)
    }

    /// Turns on the client workarounds; oe-ns-eoh reads the header of every
    /// message not in the header cache, to find those without an
    /// end-of-header line.
    pub fn set_workarounds(&mut self, workarounds: Workarounds) {
        if workarounds.oe_ns_eoh {
            self.eoh_added = self.headers().iter().map(|h| h.no_end).collect();
        }
        self.workarounds = workarounds;
    }

    /// What the header options read of each message, from the header cache
    /// or the messages themselves (see `headers`); read once per session.
    fn headers(&mut self) -> &[headers::Header] {
        let (store, cache) = (&self.store, &self.header_cache);
        self.headers.get_or_insert_with(|| {
            headers::headers(store.messages(), cache, |i| {
                let mut scan = headers::HeaderScan::default();
                store.send(i, Part::Top(0), &mut scan).ok().map(|_| scan.finish())
            })
        })
    }

    /// Whether message `n` is still where it was listed (false when another
    /// program rewrote the mbox, or removed the Maildir file, since login).
    pub fn still_listed(&self, n: u32) -> io::Result<bool> {
        let Some(i) = self.index(n) else { return Ok(false) };
        match &self.store {
            Store::Mbox(m) => m.still_listed(i),
            Store::Maildir(m) => Ok(m.still_listed(i)),
        }
    }

    /// Reuses the ids in `X-UIDL:` headers (qpopper, mailutils) where they
    /// are valid and unique (see `xuidl`); reads the header of every message
    /// not in the header cache.
    pub fn adopt_x_uidl(&mut self) {
        self.headers();
        let headers = self.headers.as_deref().unwrap_or_default();
        self.x_uidl = xuidl::ids(headers, self.store.messages());
    }

    /// The UIDL of message `n` (1-based, deleted or not), if it exists.
    pub fn uidl(&self, n: u32) -> Option<String> {
        let i = (n as usize).checked_sub(1)?;
        match self.x_uidl.get(i) {
            Some(Some(id)) => Some(id.clone()),
            _ => self.store.messages().get(i).map(|m| m.uid.to_string()),
        }
    }

    /// After message `n` was sent whole (RETR, or a TOP reaching the end of
    /// the body): a Maildir message in `new/` moves to `cur/` as seen (see
    /// `maildir::conventions`).
    pub fn retrieved(&mut self, n: u32) {
        if let (Some(i), Store::Maildir(m)) = (self.index(n), &mut self.store) {
            if let Err(e) = m.mark_seen(i) {
                log::warn!("cannot move a retrieved message to cur/: {e}");
            }
        }
    }

    /// The separator (`:` or `;`) that starts the info in the Maildir
    /// names pop3d gives; nothing for an mbox.
    pub fn set_maildir_separator(&mut self, separator: u8) {
        if let Store::Maildir(m) = &mut self.store {
            m.set_separator(separator);
        }
    }

    /// UPDATE: removes the marked messages. Returns how many were removed.
    pub fn commit(self) -> Result<usize, MaildropError> {
        let (marked, _) = self.marked();
        if marked > 0 {
            match self.store {
                Store::Mbox(m) => m.commit(&self.deleted)?,
                Store::Maildir(m) => m.commit(&self.deleted)?,
            }
        }
        Ok(marked)
    }
}

impl Store {
    fn messages(&self) -> &[Message] {
        match self {
            Store::Mbox(m) => m.messages(),
            Store::Maildir(m) => m.messages(),
        }
    }

    /// Sends message `i` (0-based) as it is stored, byte-stuffed.
    fn send<W: MessageSink>(&self, i: usize, part: Part, out: &mut W) -> io::Result<u64> {
        match self {
            Store::Mbox(m) => m.send(i, part, out),
            Store::Maildir(m) => m.send(i, part, out),
        }
    }
}
