//! A session with a system account: its home for `%h`, the permissions hint, and the hand-over to the relay.

use std::io;

use super::Session;
use crate::conn::Relayed;
use crate::maildrop::MaildropError;
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

    /// For the log: what a system account's mailbox needs when the daemon's
    /// sessions (all running as `user`) are refused access to it.
    pub(super) fn access_hint(&self, e: &MaildropError) -> String {
        // EACCES from the system itself (not a refusal of ours, such as a link).
        let eacces = io::Error::from_raw_os_error(libc::EACCES).to_string();
        let denied = match e {
            MaildropError::Io(io) => io.raw_os_error() == Some(libc::EACCES),
            _ => e.to_string().contains(&eacces),
        };
        match (&self.account, self.config.user.as_deref()) {
            (Some(_), Some(user)) if denied && !self.start.relayed => format!(
                "; sessions run as `{user}`, which must be able to read and write the mailbox and create \
                 files beside it: e.g. the spool directory 2775 root:mail, the mailbox 0660 USER:mail, `user = mail`"
            ),
            _ => String::new(),
        }
    }
}
