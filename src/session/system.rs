//! A session with a system account: its home for `%h`, the mailbox owner check, the permissions hint, and what the relay on the other side of a hand-over needs.

use std::io;
use std::os::unix::fs::MetadataExt;

use super::Session;
use crate::conn::Relayed;
use crate::maildrop::{Location, MaildropError};
use crate::transport::Transport;

/// inetd mode with system accounts: after a successful check the helper's
/// process has become the user, and this session only relays between its
/// client and it. `pending` is what the client sent after its login command.
pub trait HandOver {
    fn relay(&self, conn: &mut dyn Relayed, pending: &[u8]) -> io::Result<()>;
}

impl<T: Transport> Session<'_, T> {
    /// The account's home directory (`%h`); empty for users-file accounts.
    pub(super) fn home(&self) -> &str {
        self.account.as_ref().map_or("", |a| a.home.as_str())
    }

    /// A system account's mailbox must be its own: a file of another uid at
    /// that path (a link is refused later anyway) is never served.
    pub(super) fn owned_by_account(&self, location: &Location) -> Result<(), String> {
        let Some(account) = &self.account else { return Ok(()) };
        let path = match location {
            Location::Mbox(p) | Location::Maildir(p) => p,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.uid() != account.uid => {
                Err(format!("it belongs to uid {}, not to the account's uid {}", m.uid(), account.uid))
            }
            _ => Ok(()),
        }
    }

    /// For the log: what a system account's mailbox needs when the daemon's
    /// sessions (all running as `user`) are refused access to it.
    pub(super) fn access_hint(&self, e: &MaildropError) -> String {
        let denied = e.to_string().contains(&io::Error::from(io::ErrorKind::PermissionDenied).to_string())
            || matches!(e, MaildropError::Io(io) if io.kind() == io::ErrorKind::PermissionDenied);
        match (&self.account, self.config.user.as_deref()) {
            (Some(_), Some(user)) if denied && !self.start.relayed => format!(
                "; sessions run as `{user}`, which must be able to read and write the mailbox and create \
                 files beside it: e.g. the spool directory 2775 root:mail, the mailbox 0660 USER:mail, `user = mail`"
            ),
            _ => String::new(),
        }
    }
}
