//! The end of a successful login: the session lock, the login policy and the maildrop, opened: TRANSACTION begins.

use std::io;

use super::expire::{self, Refused};
use super::state::Transaction;
use super::{Session, Stop};
use crate::lock::{Records, SessionLock};
use crate::maildrop::{Bounds, Maildrop, MaildropError, StatePaths};
use crate::reply::{Answered, Code, Pending};
use crate::transport::Transport;

/// The answer to a login whose maildrop cannot be opened, whatever the reason.
const MAILDROP_UNAVAILABLE: &str = "maildrop cannot be opened; the reason is in the server's log";

/// After the credentials of `name` were right: takes the session lock,
/// applies the login policy and opens the maildrop, and answers the login
/// (`+OK maildrop has ...`, or why not). The TRANSACTION state when it
/// opened; None when the login was refused after all (the session stays in
/// AUTHORIZATION, or, resumed, ends).
pub(super) fn maildrop<T: Transport>(
    s: &mut Session<'_, T>,
    name: String,
    p: Pending,
) -> Result<(Answered, Option<Box<Transaction>>), Stop> {
    let config = s.config;
    let lock = match SessionLock::try_acquire(&config.state_dir, &name) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok((s.out.err_code(p, Code::InUse, "maildrop is in use by another session")?, None)),
        Err(e) => {
            log::error!("cannot lock maildrop of {name} in {}: {e}", config.state_dir.display());
            return Ok((s.out.err_code(p, Code::SysTemp, "maildrop unavailable, try later")?, None));
        }
    };
    let expiry = match expire::login_policy(config, &name) {
        Ok(expiry) => expiry,
        Err(Refused::Delay { delay, wait }) => {
            log::info!("login of {name} refused: {wait} s of its login delay left");
            let text = format_args!("{delay} seconds between logins: {wait} s left");
            return Ok((s.out.err_code(p, Code::LoginDelay, text)?, None));
        }
        Err(Refused::Records(e)) => {
            log::error!("cannot read {name}'s EXPIRE/LOGIN-DELAY records in {}: {e}", config.state_dir.display());
            return Ok((s.out.err_code(p, Code::SysTemp, "maildrop unavailable, try later")?, None));
        }
    };
    let state_dir = &config.state_dir;
    let state = StatePaths {
        journal: state_dir.join(format!("{name}.journal")),
        copies: state_dir.join(format!("{name}.uids")),
        dotlocks: Records { dir: Records::dir_in(state_dir), name: name.clone() },
        index: state_dir.join(format!("{name}.index")),
    };
    let home = s.account.as_ref().map_or("", |a| a.home.as_str());
    let fixed = config.mailbox.fixed_dir(home);
    let location = config.mailbox.location(&name, home);
    let bounds = Bounds { limits: &config.limits, owner: s.account.as_ref().map(|a| a.uid) };
    let mut maildrop = match Maildrop::open_owned(&fixed, location.clone(), state, bounds, &config.mbox) {
        Ok(maildrop) => maildrop,
        Err(e) => {
            log::error!("cannot open maildrop of {name}: {e} (maildrop {location}){}", access_hint(s, &e));
            // One answer for every way it cannot be opened (missing rights,
            // a link, a FIFO, not an mbox...): the reason is for the log,
            // not for whoever planted it. A lock held too long and a mailbox
            // over the limits keep theirs: they describe the user's own.
            let answered = match e {
                MaildropError::Locked(_) | MaildropError::TooLarge(_) => s.out.err_code(p, e.code(), &e)?,
                _ => s.out.err_code(p, Code::SysPerm, MAILDROP_UNAVAILABLE)?,
            };
            return Ok((answered, None));
        }
    };
    maildrop.set_maildir_separator(config.maildir_info_separator);
    maildrop.set_workarounds(config.workarounds);
    if config.uidl_from_x_uidl {
        maildrop.adopt_x_uidl();
    }
    let (n, size) = maildrop.stat();
    log::info!("login {name}: {n} messages, {size} octets");
    s.logged_in = Some(name.clone());
    if let Some(watch) = s.mode.watch() {
        watch.logged_in();
    }
    expiry.logged_in();
    s.out.get_mut().set_timeout(config.timeout_session)?;
    let answered = s.out.ok(p, format_args!("maildrop has {n} messages ({size} octets)"))?;
    Ok((answered, Some(Box::new(Transaction::new(name, maildrop, lock, expiry)))))
}

/// For the log: what a system account's mailbox needs when the daemon's
/// sessions (all running as `user`) are refused access to it by the system.
fn access_hint<T: Transport>(s: &Session<'_, T>, e: &MaildropError) -> String {
    let denied = e.os_error() == Some(libc::EACCES);
    match (&s.account, s.config.user.as_deref()) {
        (Some(_), Some(user)) if denied && !s.mode.relayed() => format!(
            "; sessions run as `{user}`, which must be able to read and write the mailbox and create \
             files beside it: e.g. the spool directory 2775 root:mail, the mailbox 0660 USER:mail, `user = mail`"
        ),
        _ => String::new(),
    }
}

impl From<MaildropError> for Stop {
    fn from(e: MaildropError) -> Stop {
        Stop::Io(io::Error::other(e.to_string()))
    }
}
