//! The UPDATE state (RFC 1939 section 6): QUIT after login removes the messages marked deleted, or nothing at all.

use super::state::Transaction;
use super::{End, Next, Session, Step, Stop};
use crate::reply::{Code, Pending};
use crate::transport::Transport;

/// QUIT in TRANSACTION: commits the deletion marks (and what EXPIRE
/// removes) and ends the session; the maildrop and its lock go with it.
pub(super) fn run<T: Transport>(s: &mut Session<'_, T>, t: Box<Transaction>, p: Pending) -> Result<Step, Stop> {
    let Transaction { user, mut maildrop, mut expiry, lock: _held } = *t;
    let expired = expiry.mark_expired(&mut maildrop);
    if expired > 0 {
        log::info!("{user}: {expired} messages expired (EXPIRE {})", expiry.policy.expire);
    }
    let (marked, marked_bytes) = maildrop.marked();
    // The daemon ends (SIGTERM) only between UPDATEs, never in one.
    let Some(_updating) = crate::shutdown::Updating::start() else {
        let answered = s.out.err_code(p, Code::SysTemp, "server shutting down: nothing deleted, try again")?;
        return Ok((answered, Next::Close(End::UpdateFailed)));
    };
    // The ids of the messages that stay, for the retrieval records only
    // (100,000 ids are megabytes: not built when EXPIRE is not set).
    let kept: Vec<String> = match expiry.tracks_retrievals() {
        true => maildrop.live().filter_map(|(n, _)| maildrop.uidl(n)).collect(),
        false => Vec::new(),
    };
    match maildrop.commit() {
        Ok(_) => {
            expiry.updated(&kept);
            s.stats.deleted = marked;
            s.stats.deleted_bytes = marked_bytes;
            Ok((s.out.ok(p, format_args!("bye, {marked} messages deleted"))?, Next::Close(End::Quit)))
        }
        Err(e) => {
            let home = s.account.as_ref().map_or("", |a| a.home.as_str());
            log::error!(
                "update of {user}'s maildrop failed: {e} (maildrop {})",
                s.config.mailbox.location(&user, home)
            );
            let answered = s.out.err_code(p, e.code(), format_args!("could not remove deleted messages: {e}"))?;
            Ok((answered, Next::Close(End::UpdateFailed)))
        }
    }
}
