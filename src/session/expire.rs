//! EXPIRE and LOGIN-DELAY in a session (RFC 2449): CAPA's lines, the login spacing, retrieval times, UPDATE's expiry.

use std::io;

use crate::config::{AccountSource, Config};
use crate::maildrop::Maildrop;
use crate::policy::{self, Overrides, Policy};
use crate::records::{self, LastLogin, Retrievals};
use crate::users;

/// A logged-in user's policy and what it keeps in state_dir.
pub(super) struct Expiry {
    pub policy: Policy,
    /// Retrieval times, when messages expire at all.
    retrievals: Option<Retrievals>,
    /// Recorded once the maildrop is open, when logins are spaced.
    last_login: Option<LastLogin>,
}

impl Expiry {
    /// A successful login: recorded for LOGIN-DELAY.
    pub fn logged_in(&self) {
        if let Some(last) = &self.last_login {
            if let Err(e) = last.record(records::now()) {
                log::warn!("cannot record the login time in state_dir: {e}");
            }
        }
    }

    /// A whole message was sent (RETR, or a TOP that reached its end): its
    /// first retrieval time is kept.
    pub fn retrieved(&mut self, uid: &str) {
        if let Some(r) = &mut self.retrievals {
            if let Err(e) = r.note(uid, records::now()) {
                log::warn!("cannot record a retrieval in state_dir: {e}");
            }
        }
    }

    /// Marks deleted in `maildrop` the messages first retrieved at least EXPIRE
    /// ago (EXPIRE 0: every retrieved message); returns how many.
    pub fn mark_expired(&self, maildrop: &mut Maildrop) -> usize {
        let (Some(r), Some(age)) = (&self.retrievals, self.policy.expire.seconds()) else { return 0 };
        let now = records::now();
        let due: Vec<u32> = maildrop
            .live()
            .filter(|&(n, _)| maildrop.uidl(n).and_then(|u| r.get(&u)).is_some_and(|t| t.saturating_add(age) <= now))
            .map(|(n, _)| n)
            .collect();
        for &n in &due {
            maildrop.delete(n);
        }
        due.len()
    }

    /// Whether retrieval times are kept (EXPIRE is set): only then does
    /// UPDATE need the ids of the messages that stay.
    pub fn tracks_retrievals(&self) -> bool {
        self.retrievals.is_some()
    }

    /// After UPDATE: forgets the messages that are gone.
    pub fn updated(&mut self, kept: &[String]) {
        if let Some(r) = &mut self.retrievals {
            if let Err(e) = r.keep_only(kept.iter().map(String::as_str)) {
                log::warn!("cannot rewrite the retrieval times in state_dir: {e}");
            }
        }
    }
}

/// Why a login policy refuses a login now.
pub(super) enum Refused {
    /// LOGIN-DELAY: `wait` seconds of the user's `delay` left.
    Delay { delay: u64, wait: u64 },
    /// The records in state_dir cannot be read.
    Records(io::Error),
}

/// CAPA's EXPIRE and LOGIN-DELAY lines: the user's own after login
/// (`expiry`); before it, the lowest of all users', tagged USER where they
/// differ.
pub(super) fn capa(config: &Config, expiry: Option<&Expiry>) -> String {
    if let Some(expiry) = expiry {
        return policy::capa(config.policy, &[], Some(expiry.policy));
    }
    let all: Vec<Overrides> =
        users::overrides(&config.users_file).map(|v| v.into_iter().map(|(_, o)| o).collect()).unwrap_or_default();
    policy::capa(config.policy, &all, None)
}

/// After the credentials were checked and the maildrop locked: the user's
/// policy, or why the login is refused.
pub(super) fn login_policy(config: &Config, name: &str) -> Result<Expiry, Refused> {
    let state_dir = &config.state_dir;
    // System accounts have no overrides: the configured policy holds.
    let found = match config.accounts {
        AccountSource::System => Ok(Default::default()),
        AccountSource::UsersFile => users::overrides(&config.users_file)
            .map(|all| all.into_iter().find(|(n, _)| n == name).map(|(_, o)| o).unwrap_or_default()),
    };
    let prepared = found.and_then(|overrides| {
        let policy = overrides.apply(config.policy);
        let last_login = (policy.login_delay > 0).then(|| LastLogin::new(state_dir, name));
        let wait = match &last_login {
            Some(last) => last.wait(policy.login_delay, records::now())?,
            None => 0,
        };
        let retrievals = match policy.expire.seconds() {
            Some(_) => Some(Retrievals::load(state_dir, name)?),
            None => None,
        };
        Ok((Expiry { policy, retrievals, last_login }, wait))
    });
    match prepared {
        Ok((expiry, 0)) => Ok(expiry),
        Ok((expiry, wait)) => Err(Refused::Delay { delay: expiry.policy.login_delay, wait }),
        Err(e) => Err(Refused::Records(e)),
    }
}
