//! EXPIRE and LOGIN-DELAY in a session (RFC 2449): the CAPA lines, the login spacing checked after the credentials, retrieval times noted at RETR, and messages retrieved long enough ago removed at UPDATE.

use std::io;

use super::{Session, State};
use crate::config::AccountSource;
use crate::maildrop::Maildrop;
use crate::policy::{self, Overrides, Policy};
use crate::records::{self, LastLogin, Retrievals};
use crate::reply::Code;
use crate::transport::Transport;
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

    /// A whole message was sent (RETR): its first retrieval time is kept.
    pub fn retrieved(&mut self, uid: &str) {
        if let Some(r) = &mut self.retrievals {
            if let Err(e) = r.note(uid, records::now()) {
                log::warn!("cannot record a retrieval in state_dir: {e}");
            }
        }
    }

    /// Marks deleted in `drop` the messages first retrieved at least EXPIRE
    /// ago (EXPIRE 0: every retrieved message); returns how many.
    pub fn mark_expired(&self, drop: &mut Maildrop) -> usize {
        let (Some(r), Some(age)) = (&self.retrievals, self.policy.expire.seconds()) else { return 0 };
        let now = records::now();
        let due: Vec<u32> = drop
            .live()
            .filter(|&(n, _)| drop.uidl(n).and_then(|u| r.get(&u)).is_some_and(|t| t.saturating_add(age) <= now))
            .map(|(n, _)| n)
            .collect();
        for &n in &due {
            drop.delete(n);
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

impl<T: Transport> Session<'_, T> {
    /// CAPA's EXPIRE and LOGIN-DELAY lines: the user's own after login;
    /// before it, the lowest of all users', tagged USER where they differ.
    pub(super) fn policy_capa(&self) -> String {
        if let State::Transaction { expiry, .. } = &self.state {
            return policy::capa(self.config.policy, &[], Some(expiry.policy));
        }
        let all: Vec<Overrides> = users::overrides(&self.config.users_file)
            .map(|v| v.into_iter().map(|(_, o)| o).collect())
            .unwrap_or_default();
        policy::capa(self.config.policy, &all, None)
    }

    /// After the credentials were checked and the maildrop locked: the
    /// user's policy, or None once the login was refused with its reply
    /// (`[LOGIN-DELAY]`, or `[SYS/TEMP]` when state_dir cannot be read).
    pub(super) fn login_policy(&mut self, name: &str) -> io::Result<Option<Expiry>> {
        let state_dir = &self.config.state_dir;
        // System accounts have no overrides: the configured policy holds.
        let found = match self.config.accounts {
            AccountSource::System => Ok(Default::default()),
            AccountSource::UsersFile => users::overrides(&self.config.users_file)
                .map(|all| all.into_iter().find(|(n, _)| n == name).map(|(_, o)| o).unwrap_or_default()),
        };
        let prepared = found.and_then(|overrides| {
            let policy = overrides.apply(self.config.policy);
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
            Ok((expiry, 0)) => Ok(Some(expiry)),
            Ok((expiry, wait)) => {
                log::info!("login of {name} refused: {wait} s of its login delay left");
                let delay = expiry.policy.login_delay;
                self.out.err_code(Code::LoginDelay, format_args!("{delay} seconds between logins: {wait} s left"))?;
                Ok(None)
            }
            Err(e) => {
                log::error!("cannot read {name}'s EXPIRE/LOGIN-DELAY records in {}: {e}", state_dir.display());
                self.out.err_code(Code::SysTemp, "maildrop unavailable, try later")?;
                Ok(None)
            }
        }
    }
}
