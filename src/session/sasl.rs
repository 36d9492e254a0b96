//! AUTH in the AUTHORIZATION state (RFC 5034): the mechanism list, the exchange's steps, `*` to cancel, and how each step's outcome ends in a login or not.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Instant;

use super::authorization::{Checked, Verdict};
use super::{Next, Session, State};
use crate::limits::AUTH_FAIL_DELAY;
use crate::sasl::{self, scram::ScramKeys, Exchange, Outcome};
use crate::transport::Transport;
use crate::users;

/// The answer to a SCRAM exchange for a name without SCRAM keys.
pub(super) const NO_SCRAM_KEYS: &str =
    "SCRAM cannot succeed for this user (no SCRAM keys stored): use another mechanism";

impl<T: Transport> Session<'_, T> {
    /// A bare AUTH: the mechanisms usable now, one per line.
    pub(super) fn auth_mechanisms(&mut self) -> io::Result<Next> {
        let mut text = String::from("+OK SASL mechanisms follow\r\n");
        for m in self.sasl_offer().mechanisms() {
            let _ = write!(text, "{m}\r\n");
        }
        text.push_str(".\r\n");
        self.out.write_all(text.as_bytes()).map(|_| Next::Continue)
    }

    /// AUTH with a mechanism, and its initial response if one was given.
    pub(super) fn auth_start(&mut self, mechanism: &str, initial: Option<Vec<u8>>) -> io::Result<Next> {
        let initial = match initial.map(|i| sasl::decode(&i)) {
            Some(None) => return self.refuse("malformed base64"),
            Some(Some(data)) => Some(data),
            None => None,
        };
        let offer = self.sasl_offer();
        // Not a credentials failure: no [AUTH], no delay, not counted, so a
        // client falls back to another mechanism without asking its user
        // for a new password (RFC 3206).
        if let Some(why) = offer.refusal(mechanism) {
            if mechanism == "EXTERNAL" && crate::loglimit::allow(self.peer.map(|p| p.ip())) {
                log::info!(
                    "AUTH EXTERNAL refused: no verified client certificate with a subject CN on this connection"
                );
            }
            return self.refuse(why);
        }
        let started = Instant::now();
        let (exchange, outcome) = Exchange::start(mechanism, initial, &offer, |name| self.scram_keys(name));
        self.sasl_outcome(exchange, outcome, started)
    }

    /// A client line during a SASL exchange: `*` cancels (RFC 5034).
    pub(super) fn sasl_response(&mut self, line: &[u8]) -> io::Result<Next> {
        let State::Authorization { sasl, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        let Some(exchange) = sasl.take() else {
            return Ok(Next::Continue);
        };
        if line == b"*" {
            self.out.err("authentication cancelled")?;
            return Ok(Next::Continue);
        }
        let started = Instant::now();
        let Some(data) = sasl::decode(line) else {
            return self.sasl_outcome(None, Outcome::Failure("malformed base64 response"), started);
        };
        let (exchange, outcome) = exchange.step(&data, |name| self.scram_keys(name));
        self.sasl_outcome(exchange, outcome, started)
    }

    /// An unusable line during a SASL exchange ends the exchange.
    pub(super) fn sasl_abort(&mut self, why: &str) -> io::Result<Next> {
        if let State::Authorization { sasl, .. } = &mut self.state {
            *sasl = None;
        }
        self.out.err(why).map(|_| Next::Continue)
    }

    /// Acts on a step of a SASL exchange that began at `started`.
    fn sasl_outcome(&mut self, exchange: Option<Exchange>, outcome: Outcome, started: Instant) -> io::Result<Next> {
        if let State::Authorization { sasl, .. } = &mut self.state {
            *sasl = exchange;
        }
        match outcome {
            Outcome::Challenge(data) => {
                write!(self.out, "+ {}\r\n", sasl::encode(&data))?;
                Ok(Next::Continue)
            }
            Outcome::CheckPassword { user, password } => {
                let (user, password) = self.credentials(&user, &password);
                let checked = self.check_password(&user, &password);
                self.login(user, checked)
            }
            Outcome::Success { user, .. } => {
                // SCRAM proved the keys; EXTERNAL needs an account too.
                let result = if self.config.accounts == crate::config::AccountSource::System {
                    // Never offered with system accounts: no keys to prove.
                    Ok(Verdict::Wrong("no SASL mechanism but PLAIN and LOGIN with system accounts"))
                } else if users::valid_name(&user) {
                    users::lookup(&self.config.users_file, &user).map(|s| match s {
                        Some(_) => Verdict::Right,
                        None => Verdict::Wrong("unknown user"),
                    })
                } else {
                    Ok(Verdict::Wrong("invalid user name"))
                };
                self.login(user, Checked::done(started, result))
            }
            Outcome::Rejected { user, why } => self.login(user, Checked::done(started, Ok(Verdict::Wrong(why)))),
            Outcome::Failure(why) => {
                if crate::loglimit::allow(self.peer.map(|p| p.ip())) {
                    log::info!("SASL authentication failed: {why}");
                }
                self.login(String::new(), Checked::done(started, Ok(Verdict::Wrong(why))))
            }
            Outcome::NoKeys => self.never_for_this_name(started),
            // The users file could not be read for the exchange: [SYS/TEMP],
            // not an exchange going on with made-up keys.
            Outcome::Unavailable(e) => self.login(String::new(), Checked::done(started, Err(e))),
        }
    }

    /// SCRAM for a name without SCRAM keys could never have succeeded,
    /// whatever the password: not a failed password (no penalty, not counted
    /// in the session), and an answer without `[AUTH]` that tells the client
    /// to use another mechanism. Unknown names take this path too, so it
    /// tells a name stored with another scheme from no name at all in no way;
    /// it answers after the delay of a first failure, from the exchange's start.
    fn never_for_this_name(&mut self, started: Instant) -> io::Result<Next> {
        if crate::loglimit::allow(self.peer.map(|p| p.ip())) {
            log::info!("SASL SCRAM for a name without SCRAM keys: refused, not counted as a failed login");
        }
        // Waited like a failure's delay: admission may close the session meanwhile.
        self.turn(super::Turn::Penalty);
        if !self.pause(started + AUTH_FAIL_DELAY) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.turn(super::Turn::Server);
        self.out.err(NO_SCRAM_KEYS).map(|_| Next::Continue)
    }

    /// A user's SCRAM keys: None for an invalid or unknown name or a user
    /// without them.
    fn scram_keys(&self, name: &str) -> io::Result<Option<ScramKeys>> {
        if !users::valid_name(name) {
            return Ok(None);
        }
        Ok(users::lookup(&self.config.users_file, name)?.and_then(|s| s.scram()))
    }
}
