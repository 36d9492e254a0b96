//! Where every way of logging in ends: the penalty slot, the check, a failure's delay and count, or the maildrop.
//!
//! USER/PASS and APOP come here from `authorization`, AUTH's mechanisms from
//! `sasl`. The answer waits for its slot first (answers to one address,
//! network or account leave one at a time, spaced by their failures;
//! `penalty.rs`), whatever the credentials, so the wait tells nothing;
//! then the check; a failure is delayed by the session's own failures and
//! counted; a success opens the maildrop (`open`), or in inetd mode with
//! system accounts hands the client over to the user's own process.

use std::io;
use std::time::Instant;

use super::state::Authorization;
use super::{open, End, Next, Session, State, Step, Stop};
use crate::accounts::Account;
use crate::config::AccountSource;
use crate::known::Known;
use crate::limits::{AUTH_FAIL_DELAY, AUTH_FAIL_DELAY_MAX_STEPS, MAX_AUTH_FAILURES};
use crate::penalty::network;
use crate::reply::{Code, Pending};
use crate::transport::Transport;
use crate::users;

/// What a credentials check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Right: for a system account, the account the helper found.
    Right(Option<Account>),
    /// Wrong, and why: for the log line only (the client hears one answer
    /// whatever the reason).
    Wrong(&'static str),
}

/// A login's credentials and how to check them, from the moment its
/// command arrived: a failure is answered a fixed delay after that,
/// whatever the check cost.
pub(super) struct Attempt {
    pub name: String,
    pub started: Instant,
    pub check: Check,
}

/// How an attempt's credentials are checked.
pub(super) enum Check {
    /// Checked already (the users file, SASL): what was found, or the
    /// error that kept it from being read.
    Done(io::Result<Verdict>),
    /// A system account's password, for the root helper to check once the
    /// answer's slot has come (so the penalties apply before any check).
    Helper(Vec<u8>),
}

/// USER's name and PASS's password (also AUTH PLAIN's and LOGIN's).
pub(super) fn with_password<T: Transport>(
    s: &mut Session<'_, T>,
    a: Authorization,
    name: &str,
    password: &[u8],
    p: Pending,
) -> Result<Step, Stop> {
    let attempt = password_attempt(s, name, password);
    attempt_login(s, a, attempt, p)
}

/// The credentials of a password login, as they are checked: SASLprep'd for
/// the users file (SCRAM keys are made from prepared passwords); as typed
/// for system accounts, whose hashes passwd(1) made from the bytes
/// themselves, which the root helper checks (a name no maildrop can have
/// is a wrong password, asked of nobody).
pub(super) fn password_attempt<T: Transport>(s: &Session<'_, T>, name: &str, password: &[u8]) -> Attempt {
    match s.config.accounts {
        AccountSource::UsersFile => {
            let (name, password) = crate::saslprep::credentials(name, password);
            let check = |secret: Option<&users::Secret>| users::check_password(secret, &password);
            users_file_attempt(s, name, check, "wrong password")
        }
        AccountSource::System => {
            let check = match users::valid_name(name) {
                true => Check::Helper(password.to_vec()),
                false => Check::Done(Ok(Verdict::Wrong("invalid user name"))),
            };
            Attempt { name: name.to_string(), started: Instant::now(), check }
        }
    }
}

/// APOP's name and digest of the greeting's `challenge`.
pub(super) fn with_apop<T: Transport>(
    s: &mut Session<'_, T>,
    a: Authorization,
    name: &str,
    challenge: &str,
    digest: &str,
    p: Pending,
) -> Result<Step, Stop> {
    let (name, _) = crate::saslprep::credentials(name, b"");
    let check = |secret: Option<&users::Secret>| users::check_apop(secret, challenge, digest);
    let attempt = users_file_attempt(s, name, check, "wrong APOP digest");
    attempt_login(s, a, attempt, p)
}

/// Runs `check` on the users file's secret of `name` (None for an unknown
/// or invalid name, so the work is the same); `wrong` says what a failed
/// check means.
fn users_file_attempt<T: Transport>(
    s: &Session<'_, T>,
    name: String,
    check: impl FnOnce(Option<&users::Secret>) -> bool,
    wrong: &'static str,
) -> Attempt {
    let started = Instant::now();
    let found = users::lookup(&s.config.users_file, &name).map(|secret| {
        let right = check(secret.as_ref());
        match (secret, users::valid_name(&name)) {
            (_, false) => Verdict::Wrong("invalid user name"),
            (None, _) => Verdict::Wrong("unknown user"),
            _ if right => Verdict::Right(None),
            _ => Verdict::Wrong(wrong),
        }
    });
    Attempt { name, started, check: Check::Done(found) }
}

/// Finishes a login attempt of any kind: waits for its slot, checks, and
/// answers: a failure is delayed and counted; a success opens the maildrop
/// (the TRANSACTION state), or hands the client over.
pub(super) fn attempt_login<T: Transport>(
    s: &mut Session<'_, T>,
    mut a: Authorization,
    attempt: Attempt,
    p: Pending,
) -> Result<Step, Stop> {
    a.user = None;
    a.sasl = None;
    let Attempt { name, started, check } = attempt;
    // The client's address (from a trusted proxy's PROXY header, if any).
    let ip = s.peer.map(|p| p.ip());
    let account = (!name.is_empty()).then_some(name.as_str());
    // An account from a network it logged in from lately waits only behind
    // its own failures there (decided before any check).
    let net = ip.map(|ip| network(ip, s.config.network_prefix_ipv4, s.config.network_prefix_ipv6));
    let known = match (account, net) {
        (Some(name), Some(net)) => known_networks(s).is_known(name, net),
        _ => false,
    };
    let slot = match (s.mode.penalties(), ip) {
        (Some(penalties), Some(ip)) => Some(penalties.reserve(ip, account, known)),
        _ => None,
    };
    if let Some(slot) = &slot {
        s.penalty_wait(Instant::now() + slot.wait)?;
    }
    let found = match check {
        Check::Helper(password) => ask_helper(s, &name, &password),
        Check::Done(found) => found,
    };
    if s.mode.cancelled() {
        // Closed from outside (the deadline, SIGTERM) while it waited.
        return Err(Stop::End(End::Closed));
    }
    let account = match found {
        Err(e) => {
            match s.config.accounts {
                AccountSource::System if crate::loglimit::allow(ip) => log::error!("credentials helper: {e}"),
                AccountSource::System => {}
                AccountSource::UsersFile => {
                    log::error!("cannot read users file {}: {e}", s.config.users_file.display())
                }
            }
            return Ok((s.out.err_code(p, Code::SysTemp, "authentication unavailable, try later")?, a.stay()));
        }
        Ok(Verdict::Wrong(why)) => {
            a.failures += 1;
            // Across sessions the slots above space the answers.
            let recent = match (s.mode.penalties(), ip, &slot) {
                (Some(penalties), Some(ip), Some(slot)) => penalties.failed(ip, account, slot),
                _ => 0,
            };
            if crate::loglimit::allow(ip) {
                let who = crate::loglimit::client_text(name.as_bytes());
                log::info!("login failed for {who}: {why} ({recent} recent failures from this address)");
            }
            // The delay grows with this session's failures, counted from the
            // attempt's start, so every failure takes the same time whatever
            // the user's hash scheme (or none).
            let steps = a.failures.min(AUTH_FAIL_DELAY_MAX_STEPS);
            s.penalty_wait(started + AUTH_FAIL_DELAY * steps)?;
            let answered = s.out.err_code(p, Code::Auth, "invalid user name or password")?;
            return Ok(match a.failures >= MAX_AUTH_FAILURES {
                true => (answered, Next::Close(End::TooManyAuthFailures)),
                false => (answered, a.stay()),
            });
        }
        Ok(Verdict::Right(account)) => account,
    };
    if let (Some(penalties), Some(ip), Some(slot)) = (s.mode.penalties(), ip, &slot) {
        penalties.succeeded(ip, &name, slot);
    }
    if let Some(net) = net {
        known_networks(s).remember(&name, net);
    }
    s.account = account;
    if s.mode.relay().is_some() {
        // inetd mode with system accounts: the helper's process goes on as
        // the user, and answers this login; this one relays.
        if let Some(watch) = s.mode.watch() {
            watch.logged_in();
        }
        return Ok((p.delegate(), Next::HandOver(name)));
    }
    Ok(match open::maildrop(s, name, p)? {
        (answered, Some(transaction)) => (answered, Next::In(State::Transaction(transaction))),
        (answered, None) => (answered, a.stay()),
    })
}

/// The root helper's check of a system account; the account it finds is
/// kept for `%h` and the maildrop's owner.
fn ask_helper<T: Transport>(s: &Session<'_, T>, name: &str, password: &[u8]) -> io::Result<Verdict> {
    let Some(helper) = s.mode.helper() else {
        return Err(io::Error::other("no credentials helper: `accounts = system` takes effect at a restart"));
    };
    let cancelled = || s.mode.cancelled();
    Ok(match helper.check(name, password, &cancelled)? {
        Ok(account) => Verdict::Right(Some(account)),
        Err(why) => Verdict::Wrong(why),
    })
}

/// The networks accounts logged in from lately (state_dir).
fn known_networks<T: Transport>(s: &Session<'_, T>) -> Known {
    Known { dir: s.config.state_dir.clone(), period: s.config.known_network_period }
}
