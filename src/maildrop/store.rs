//! What every store (mbox, Maildir) shares besides its messages: size limits and errors.

use std::io;

use crate::lock::LockError;

/// Bounds on one maildrop (configuration keys `max_messages` and
/// `max_mailbox_size`), so one huge mailbox cannot stop the service.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_messages: usize,
    pub max_size: u64,
}

/// What a store is opened within: the configured limits, and for a system
/// account the uid its mailbox must belong to.
#[derive(Debug, Clone, Copy)]
pub struct Bounds<'a> {
    pub limits: &'a Limits,
    pub owner: Option<u32>,
}

/// Why a maildrop cannot be opened or updated; each maps to a response code.
#[derive(Debug)]
pub enum MaildropError {
    /// A delivery agent held the lock too long: try later ([SYS/TEMP]).
    Locked(LockError),
    /// Over a configured limit ([SYS/PERM]).
    TooLarge(String),
    /// Not an mbox, or not a Maildir ([SYS/PERM]).
    Corrupt(String),
    /// The file changed behind our back; nothing was deleted ([SYS/TEMP]).
    Changed,
    /// The mailbox itself could not be read or written ([SYS/TEMP]).
    Io(io::Error),
    /// The update journal in `state_dir` could not be written or read
    /// (typically a full filesystem there; the log names the path).
    Journal(io::Error),
    /// A system account's mailbox (the file or directory opened) belongs to
    /// another uid ([SYS/PERM]).
    Foreign { owner: u32, account: u32 },
}

impl MaildropError {
    /// True for problems that go away by themselves ([SYS/TEMP]).
    pub fn is_temporary(&self) -> bool {
        !matches!(self, MaildropError::TooLarge(_) | MaildropError::Corrupt(_) | MaildropError::Foreign { .. })
    }

    /// The response code for telling the client ([SYS/TEMP] or [SYS/PERM]).
    pub fn code(&self) -> crate::reply::Code {
        match self.is_temporary() {
            true => crate::reply::Code::SysTemp,
            false => crate::reply::Code::SysPerm,
        }
    }

    /// The system's error number behind it, if the system refused something
    /// (EACCES: the session's account may not read or write the mailbox).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            MaildropError::Io(e) | MaildropError::Journal(e) | MaildropError::Locked(LockError::Io(_, e)) => {
                e.raw_os_error()
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for MaildropError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaildropError::Locked(e) => write!(f, "mailbox locked: {e}"),
            MaildropError::TooLarge(why) => write!(f, "mailbox over limit: {why}"),
            MaildropError::Corrupt(why) => write!(f, "mailbox unreadable: {why}"),
            MaildropError::Changed => write!(f, "mailbox was changed by another program during the session"),
            MaildropError::Io(e) => write!(f, "mailbox I/O error: {e}"),
            MaildropError::Journal(e) => write!(f, "update journal in state_dir unusable: {e}"),
            MaildropError::Foreign { owner, account } => {
                write!(f, "mailbox belongs to uid {owner}, not to the account's uid {account}")
            }
        }
    }
}

/// Refuses an opened mailbox not owned by `owner` (when given).
pub fn check_owner(opened: &impl std::os::fd::AsFd, owner: Option<u32>) -> Result<(), MaildropError> {
    use std::os::unix::fs::MetadataExt;
    let Some(account) = owner else { return Ok(()) };
    let file = std::fs::File::from(opened.as_fd().try_clone_to_owned()?);
    match file.metadata()?.uid() {
        uid if uid == account => Ok(()),
        uid => Err(MaildropError::Foreign { owner: uid, account }),
    }
}

impl From<io::Error> for MaildropError {
    fn from(e: io::Error) -> Self {
        MaildropError::Io(e)
    }
}

impl From<LockError> for MaildropError {
    fn from(e: LockError) -> Self {
        MaildropError::Locked(e)
    }
}
