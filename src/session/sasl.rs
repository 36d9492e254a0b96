//! AUTH in the AUTHORIZATION state (RFC 5034): the mechanism list, the exchange's steps, `*`, and each outcome's login.

use std::io;
use std::time::Instant;

use super::login::{self, Attempt, Check, Verdict};
use super::state::Authorization;
use super::{Session, Step, Stop};
use crate::config::AccountSource;
use crate::limits::AUTH_FAIL_DELAY;
use crate::parser::ParseError;
use crate::reply::{Answered, Pending};
use crate::sasl::{self, scram::Stored, Exchange, Outcome};
use crate::transport::Transport;
use crate::users;

/// The answer to a SCRAM exchange for a name without SCRAM keys.
pub(super) const NO_SCRAM_KEYS: &str =
    "SCRAM cannot succeed for this user (no SCRAM keys stored): use another mechanism";

/// A bare AUTH: the mechanisms usable now, one per line.
pub(super) fn mechanisms<T: Transport>(s: &mut Session<'_, T>, p: Pending) -> io::Result<Answered> {
    let mechanisms = s.sasl_offer().mechanisms();
    let mut listing = s.out.listing(p, "SASL mechanisms follow")?;
    for m in mechanisms {
        listing.line(m)?;
    }
    listing.end()
}

/// AUTH with a mechanism, and its initial response if one was given.
pub(super) fn start<T: Transport>(
    s: &mut Session<'_, T>,
    a: Authorization,
    mechanism: &str,
    initial: Option<Vec<u8>>,
    p: Pending,
) -> Result<Step, Stop> {
    let initial = match initial.map(|i| sasl::decode(&i)) {
        Some(None) => return Ok((s.out.err(p, "malformed base64")?, a.stay())),
        Some(Some(data)) => Some(data),
        None => None,
    };
    let offer = s.sasl_offer();
    // Not a credentials failure: no [AUTH], no delay, not counted, so a
    // client falls back to another mechanism without asking its user for
    // a new password (RFC 3206).
    if let Some(why) = offer.refusal(mechanism) {
        if mechanism == "EXTERNAL" && crate::loglimit::allow(s.peer.map(|p| p.ip())) {
            log::info!("AUTH EXTERNAL refused: no verified client certificate with a subject CN on this connection");
        }
        return Ok((s.out.err(p, why)?, a.stay()));
    }
    let started = Instant::now();
    let (exchange, outcome) = Exchange::start(mechanism, initial, &offer, |name| scram_keys(s, name));
    outcome_step(s, a, exchange, outcome, started, p)
}

/// The client's line in a SASL `exchange`: `*` cancels (RFC 5034); an
/// unusable line ends the exchange.
pub(super) fn response<T: Transport>(
    s: &mut Session<'_, T>,
    a: Authorization,
    exchange: Exchange,
    line: Result<Vec<u8>, ParseError>,
    p: Pending,
) -> Result<Step, Stop> {
    let line = match line {
        Ok(line) => line,
        Err(e) => return Ok((s.out.err(p, e.message())?, a.stay())),
    };
    if line == b"*" {
        return Ok((s.out.err(p, "authentication cancelled")?, a.stay()));
    }
    let started = Instant::now();
    let Some(data) = sasl::decode(&line) else {
        return outcome_step(s, a, None, Outcome::Failure("malformed base64 response"), started, p);
    };
    let (exchange, outcome) = exchange.step(&data, |name| scram_keys(s, name));
    outcome_step(s, a, exchange, outcome, started, p)
}

/// Acts on a step of a SASL exchange that began at `started`: a challenge
/// keeps the exchange in the state; every other outcome ends in a login.
fn outcome_step<T: Transport>(
    s: &mut Session<'_, T>,
    mut a: Authorization,
    exchange: Option<Exchange>,
    outcome: Outcome,
    started: Instant,
    p: Pending,
) -> Result<Step, Stop> {
    a.sasl = exchange;
    let (name, found) = match outcome {
        Outcome::Challenge(data) => return Ok((s.out.challenge(p, sasl::encode(&data))?, a.stay())),
        Outcome::CheckPassword { user, password } => {
            let attempt = login::password_attempt(s, &user, &password);
            return login::attempt_login(s, a, attempt, p);
        }
        // SCRAM proved the keys; EXTERNAL needs an account too.
        Outcome::Success { user, .. } => {
            let found = if s.config.accounts == AccountSource::System {
                // Never offered with system accounts: no keys to prove.
                Ok(Verdict::Wrong("no SASL mechanism but PLAIN and LOGIN with system accounts"))
            } else if users::valid_name(&user) {
                users::lookup(&s.config.users_file, &user).map(|secret| match secret {
                    Some(_) => Verdict::Right(None),
                    None => Verdict::Wrong("unknown user"),
                })
            } else {
                Ok(Verdict::Wrong("invalid user name"))
            };
            (user, found)
        }
        Outcome::Rejected { user, why } => (user, Ok(Verdict::Wrong(why))),
        Outcome::Failure(why) => {
            if crate::loglimit::allow(s.peer.map(|p| p.ip())) {
                log::info!("SASL authentication failed: {why}");
            }
            (String::new(), Ok(Verdict::Wrong(why)))
        }
        Outcome::NoKeys => return never_for_this_name(s, a, started, p),
        // The users file could not be read for the exchange: [SYS/TEMP],
        // not an exchange going on with made-up keys.
        Outcome::Unavailable(e) => (String::new(), Err(e)),
    };
    login::attempt_login(s, a, Attempt { name, started, check: Check::Done(found) }, p)
}

/// SCRAM for an account stored with another kind of secret could never have
/// succeeded, whatever the password: not a failed password (no penalty,
/// not counted in the session), and an answer without `[AUTH]` that tells
/// the client to use another mechanism, after the delay of a first failure
/// from the exchange's start. An unknown name is answered and counted as a
/// wrong password instead, so that a name with keys is never told from no
/// name at all (DESIGN.md, "Mechanisms clients survive").
fn never_for_this_name<T: Transport>(
    s: &mut Session<'_, T>,
    a: Authorization,
    started: Instant,
    p: Pending,
) -> Result<Step, Stop> {
    if crate::loglimit::allow(s.peer.map(|p| p.ip())) {
        log::info!("SASL SCRAM for an account without SCRAM keys: refused, not counted as a failed login");
    }
    s.penalty_wait(started + AUTH_FAIL_DELAY)?;
    Ok((s.out.err(p, NO_SCRAM_KEYS)?, a.stay()))
}

/// What is stored for a SCRAM name: its keys, another kind of secret, or
/// nothing (an invalid or unknown name).
fn scram_keys<T: Transport>(s: &Session<'_, T>, name: &str) -> io::Result<Stored> {
    if !users::valid_name(name) {
        return Ok(Stored::Unknown);
    }
    Ok(match users::lookup(&s.config.users_file, name)? {
        Some(secret) => secret.scram().map_or(Stored::OtherSecret, Stored::Keys),
        None => Stored::Unknown,
    })
}
