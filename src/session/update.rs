//! The UPDATE state (RFC 1939 section 6): QUIT after login removes the messages marked deleted, or nothing at all.

use std::io;

use super::authorization::code_of;
use super::{End, Next, Session, State};
use crate::reply::Code;
use crate::transport::Transport;

impl<T: Transport> Session<'_, T> {
    /// QUIT in TRANSACTION: commits the deletion marks and ends the session.
    pub(super) fn update(&mut self) -> io::Result<Next> {
        let state = std::mem::replace(&mut self.state, State::authorization(0, 0));
        let State::Transaction { user, mut drop, _lock, mut expiry } = state else {
            return Ok(Next::Close(End::Quit));
        };
        let expired = expiry.mark_expired(&mut drop);
        if expired > 0 {
            log::info!("{user}: {expired} messages expired (EXPIRE {})", expiry.policy.expire);
        }
        let (marked, marked_bytes) = drop.marked();
        // The daemon ends (SIGTERM) only between UPDATEs, never in one.
        let Some(_updating) = crate::shutdown::Updating::start() else {
            self.out.err_code(Code::SysTemp, "server shutting down: nothing deleted, try again")?;
            return Ok(Next::Close(End::UpdateFailed));
        };
        // The ids of the messages that stay, for the retrieval records only
        // (100,000 ids are megabytes: not built when EXPIRE is not set).
        let kept: Vec<String> = match expiry.tracks_retrievals() {
            true => drop.live().filter_map(|(n, _)| drop.uidl(n)).collect(),
            false => Vec::new(),
        };
        match drop.commit() {
            Ok(_) => {
                expiry.updated(&kept);
                self.stats.deleted = marked;
                self.stats.deleted_bytes = marked_bytes;
                self.out.ok(format_args!("bye, {marked} messages deleted"))?;
                Ok(Next::Close(End::Quit))
            }
            Err(e) => {
                log::error!(
                    "update of {user}'s maildrop failed: {e} (maildrop {})",
                    self.config.mailbox.location(&user, self.home())
                );
                self.out.err_code(code_of(&e), format_args!("could not remove deleted messages: {e}"))?;
                Ok(Next::Close(End::UpdateFailed))
            }
        }
    }
}
