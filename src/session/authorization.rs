//! The AUTHORIZATION state (RFC 1939 section 4): QUIT, STLS (RFC 2595), USER/PASS and APOP, and the login that locks and opens the maildrop.

use std::io::{self, Read};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{End, Next, Session, State};
use crate::hex;
use crate::known::Known;
use crate::limits::{AUTH_FAIL_DELAY, AUTH_FAIL_DELAY_MAX_STEPS, MAX_AUTH_FAILURES};
use crate::lock::{Records, SessionLock};
use crate::maildrop::{Maildrop, MaildropError, StatePaths};
use crate::parser::Command;
use crate::penalty::network;
use crate::reply::Code;
use crate::transport::Transport;
use crate::users;

/// What a credentials check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Right,
    /// Wrong, and why: for the log line only (the client hears one answer
    /// whatever the reason).
    Wrong(&'static str),
}

/// The result of a credential check and when it began: a failure is
/// answered a fixed delay after the start, whatever the check cost.
pub(super) struct Checked {
    pub started: Instant,
    /// What the check found; Err when the users file could not be read.
    pub result: io::Result<Verdict>,
    /// A system account's password, for the helper to check once this
    /// answer's slot has come (so the penalties apply before any check).
    pub ask: Option<Vec<u8>>,
}

impl Checked {
    pub fn done(started: Instant, result: io::Result<Verdict>) -> Checked {
        Checked { started, result, ask: None }
    }
}

impl<T: Transport> Session<'_, T> {
    /// A command in the AUTHORIZATION state (CAPA aside).
    pub(super) fn authorization(&mut self, cmd: Command) -> io::Result<Next> {
        match cmd {
            Command::Quit => {
                self.out.ok("bye")?;
                Ok(Next::Close(End::Quit))
            }
            Command::Stls => match self.start.tls {
                Some(_) if !self.out.get_ref().is_tls() => {
                    self.out.ok("begin TLS negotiation")?;
                    Ok(Next::StartTls)
                }
                Some(_) => self.refuse("already using TLS"),
                None => self.refuse("TLS is not available"),
            },
            Command::User(_) | Command::Pass(_) | Command::Apop { .. } if !self.plaintext_allowed() => {
                self.out.err_code(Code::Auth, "plaintext login is not allowed without TLS: use STLS or port 995")?;
                Ok(Next::Continue)
            }
            Command::User(name) => {
                if let State::Authorization { user, .. } = &mut self.state {
                    *user = Some(name);
                }
                // The same answer whether or not the user exists.
                self.out.ok("send PASS").map(|_| Next::Continue)
            }
            Command::Pass(password) => {
                let State::Authorization { user: Some(name), .. } = &self.state else {
                    return self.refuse("give USER first");
                };
                let (name, password) = self.credentials(name, &password);
                let checked = self.check_password(&name, &password);
                self.login(name, checked)
            }
            Command::Apop { name, digest } => match self.challenge.clone() {
                None => self.refuse("APOP is not enabled"),
                Some(challenge) => {
                    let (name, _) = crate::saslprep::credentials(&name, b"");
                    let check = |secret: Option<&users::Secret>| users::check_apop(secret, &challenge, &digest);
                    let checked = self.check_secret(&name, check, "wrong APOP digest");
                    self.login(name, checked)
                }
            },
            Command::Auth(None) => self.auth_mechanisms(),
            Command::Auth(Some((mechanism, initial))) => self.auth_start(&mechanism, initial),
            _ => self.refuse("command not valid before login"),
        }
    }

    /// The TLS handshake (after STLS, or first on an implicit-TLS port);
    /// everything said before it is forgotten.
    pub(super) fn start_tls(&mut self) -> io::Result<()> {
        let tls = self.start.tls.ok_or_else(|| io::Error::other("TLS is not configured"))?;
        self.out.get_mut().start_tls(tls)?;
        let (failures, bad) = match &self.state {
            State::Authorization { failures, bad, .. } => (*failures, *bad),
            State::Transaction { .. } => (0, 0),
        };
        self.state = State::authorization(failures, bad);
        Ok(())
    }

    /// Looks the user up and checks the password, the same way for every
    /// user name, known or not.
    pub(super) fn check_password(&mut self, name: &str, password: &[u8]) -> Checked {
        if self.config.accounts == crate::config::AccountSource::UsersFile {
            return self.check_secret(name, |secret| users::check_password(secret, password), "wrong password");
        }
        // A system account: the privileged helper checks it, in `login`.
        // A name no maildrop can have is a wrong password, asked of nobody.
        let ask = users::valid_name(name).then(|| password.to_vec());
        Checked { started: Instant::now(), result: Ok(Verdict::Wrong("invalid user name")), ask }
    }

    /// The helper's check of a system account; the account is kept for `%h`
    /// and the maildrop's owner.
    fn ask_helper(&mut self, name: &str, password: &[u8]) -> io::Result<Verdict> {
        let Some(helper) = self.start.helper else {
            return Err(io::Error::other("no credentials helper: `accounts = system` takes effect at a restart"));
        };
        let cancelled = || self.start.watch.is_some_and(|w| w.cancelled());
        match helper.check(name, password, &cancelled)? {
            Ok(account) => {
                self.account = Some(account);
                Ok(Verdict::Right)
            }
            Err(why) => Ok(Verdict::Wrong(why)),
        }
    }

    /// The name and password as checked: SASLprep'd for the users file
    /// (SCRAM keys are made from prepared passwords); as typed for system
    /// accounts, whose hashes passwd(1) made from the bytes themselves.
    pub(super) fn credentials(&self, name: &str, password: &[u8]) -> (String, Vec<u8>) {
        match self.config.accounts {
            crate::config::AccountSource::UsersFile => crate::saslprep::credentials(name, password),
            crate::config::AccountSource::System => (name.to_string(), password.to_vec()),
        }
    }

    /// Runs `check` on the user's secret (None for an unknown or invalid
    /// name, so the work is the same); `wrong` says what a failed check means.
    fn check_secret(
        &self,
        name: &str,
        check: impl FnOnce(Option<&users::Secret>) -> bool,
        wrong: &'static str,
    ) -> Checked {
        let started = Instant::now();
        let result = users::lookup(&self.config.users_file, name).map(|secret| {
            let right = check(secret.as_ref());
            match (secret, users::valid_name(name)) {
                (_, false) => Verdict::Wrong("invalid user name"),
                (None, _) => Verdict::Wrong("unknown user"),
                _ if right => Verdict::Right,
                _ => Verdict::Wrong(wrong),
            }
        });
        Checked::done(started, result)
    }

    /// Finishes a login attempt of any kind with its check: a failure is
    /// delayed and counted; a success takes the session lock and opens the
    /// maildrop.
    pub(super) fn login(&mut self, name: String, checked: Checked) -> io::Result<Next> {
        let State::Authorization { user, sasl, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        *user = None;
        *sasl = None;
        // The answer waits for its slot: answers to one address, network
        // or account leave one at a time, spaced by their failures.
        // The client's address (from a trusted proxy's PROXY header, if any).
        let ip = self.peer.map(|p| p.ip());
        let account = (!name.is_empty()).then_some(name.as_str());
        // An account from a network it logged in from lately waits only
        // behind its own failures there (decided before any check).
        let net = ip.map(|ip| network(ip, self.config.network_prefix_ipv4, self.config.network_prefix_ipv6));
        let known = match (account, net) {
            (Some(name), Some(net)) => self.known().is_known(name, net),
            _ => false,
        };
        let slot = match (self.start.penalties, ip) {
            (Some(p), Some(ip)) => Some(p.reserve(ip, account, known)),
            _ => None,
        };
        if let Some(slot) = &slot {
            let until = Instant::now() + slot.wait;
            self.turn(super::Turn::Penalty);
            let waited = self.pause(until.min(self.login_deadline));
            self.turn(super::Turn::Server);
            if !waited || until > self.login_deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        let result = match checked.ask {
            Some(password) => self.ask_helper(&name, &password),
            None => checked.result,
        };
        if self.start.watch.is_some_and(|w| w.cancelled()) {
            // Closed from outside (the deadline, SIGTERM) while it waited.
            return Err(io::ErrorKind::TimedOut.into());
        }
        let State::Authorization { failures, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        match result {
            Err(e) => {
                match self.config.accounts {
                    crate::config::AccountSource::System if crate::loglimit::allow(ip) => {
                        log::error!("credentials helper: {e}")
                    }
                    crate::config::AccountSource::System => {}
                    _ => log::error!("cannot read users file {}: {e}", self.config.users_file.display()),
                }
                self.out.err_code(Code::SysTemp, "authentication unavailable, try later")?;
                return Ok(Next::Continue);
            }
            Ok(Verdict::Wrong(why)) => {
                *failures += 1;
                let failures = *failures;
                // The delay grows with this session's failures; across
                // sessions the slots above space the answers.
                let recent = match (self.start.penalties, ip, &slot) {
                    (Some(p), Some(ip), Some(slot)) => p.failed(ip, account, slot),
                    _ => 0,
                };
                if crate::loglimit::allow(ip) {
                    let who = crate::loglimit::client_text(name.as_bytes());
                    log::info!("login failed for {who}: {why} ({recent} recent failures from this address)");
                }
                // Counted from the start of the check, so every failure takes
                // the same time whatever the user's hash scheme (or none).
                // A delay the session serves like a penalty slot: admission may close it meanwhile.
                let steps = failures.min(AUTH_FAIL_DELAY_MAX_STEPS);
                let until = checked.started + AUTH_FAIL_DELAY * steps;
                self.turn(super::Turn::Penalty);
                if !self.pause(until) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.turn(super::Turn::Server);
                self.out.err_code(Code::Auth, "invalid user name or password")?;
                if failures >= MAX_AUTH_FAILURES {
                    return Ok(Next::Close(End::TooManyAuthFailures));
                }
                return Ok(Next::Continue);
            }
            Ok(Verdict::Right) => {
                if let (Some(p), Some(ip), Some(slot)) = (self.start.penalties, ip, &slot) {
                    p.succeeded(ip, &name, slot);
                }
                if let Some(net) = net {
                    self.known().remember(&name, net);
                }
            }
        }
        if self.start.hand_over.is_some() {
            // inetd mode with system accounts: the helper's process goes on
            // as the user; this one relays.
            if let Some(watch) = self.start.watch {
                watch.logged_in();
            }
            return Ok(Next::HandOver(name));
        }
        self.open_maildrop(name)
    }

    /// After the credentials: takes the session lock, applies the login
    /// policy and opens the maildrop; the TRANSACTION state on success.
    pub(super) fn open_maildrop(&mut self, name: String) -> io::Result<Next> {
        let lock = match SessionLock::try_acquire(&self.config.state_dir, &name) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                self.out.err_code(Code::InUse, "maildrop is in use by another session")?;
                return Ok(Next::Continue);
            }
            Err(e) => {
                log::error!("cannot lock maildrop of {name} in {}: {e}", self.config.state_dir.display());
                self.out.err_code(Code::SysTemp, "maildrop unavailable, try later")?;
                return Ok(Next::Continue);
            }
        };
        let Some(expiry) = self.login_policy(&name)? else {
            return Ok(Next::Continue);
        };
        let state_dir = &self.config.state_dir;
        let state = StatePaths {
            journal: state_dir.join(format!("{name}.journal")),
            copies: state_dir.join(format!("{name}.uids")),
            dotlocks: Records { dir: Records::dir_in(state_dir), name: name.clone() },
            index: state_dir.join(format!("{name}.index")),
        };
        let fixed = self.config.mailbox.fixed_dir(self.home());
        let location = self.config.mailbox.location(&name, self.home());
        let owner = self.account.as_ref().map(|a| a.uid);
        let settings = (&self.config.limits, &self.config.mbox);
        match Maildrop::open_owned(&fixed, location.clone(), state, settings, owner) {
            Ok(mut drop) => {
                drop.set_maildir_separator(self.config.maildir_info_separator);
                drop.set_workarounds(self.config.workarounds);
                if self.config.uidl_from_x_uidl {
                    drop.adopt_x_uidl();
                }
                let (n, size) = drop.stat();
                log::info!("login {name}: {n} messages, {size} octets");
                self.logged_in = Some(name.clone());
                if let Some(watch) = self.start.watch {
                    watch.logged_in();
                }
                expiry.logged_in();
                self.state = State::Transaction { user: name, drop: Box::new(drop), _lock: lock, expiry };
                self.out.get_mut().set_timeout(self.config.timeout_session)?;
                self.out.ok(format_args!("maildrop has {n} messages ({size} octets)"))?;
            }
            Err(e) => {
                log::error!("cannot open maildrop of {name}: {e} (maildrop {location}){}", self.access_hint(&e));
                // One answer for every way it cannot be opened (missing
                // rights, a link, a FIFO, not an mbox...): the reason is for
                // the log, not for whoever planted it.
                match e {
                    MaildropError::Locked(_) | MaildropError::TooLarge(_) => self.out.err_code(code_of(&e), &e)?,
                    _ => self.out.err_code(Code::SysPerm, MAILDROP_UNAVAILABLE)?,
                }
            }
        }
        Ok(Next::Continue)
    }
}

impl<T: Transport> Session<'_, T> {
    /// The networks accounts logged in from lately (state_dir).
    fn known(&self) -> Known {
        Known { dir: self.config.state_dir.clone(), period: self.config.known_network_period }
    }

    /// Waits until `until` unless the session is closed from outside
    /// meanwhile (then false, at once): a waiting session holds no place it lost.
    pub(super) fn pause(&self, until: Instant) -> bool {
        match self.start.watch {
            Some(watch) => watch.pause(until),
            None => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                true
            }
        }
    }
}

/// The answer to a login whose maildrop cannot be opened, whatever the reason.
const MAILDROP_UNAVAILABLE: &str = "maildrop cannot be opened; the reason is in the server's log";

/// The response code for a maildrop error.
pub(super) fn code_of(e: &MaildropError) -> Code {
    if e.is_temporary() {
        Code::SysTemp
    } else {
        Code::SysPerm
    }
}

/// An APOP challenge `<random.time@host>` with 128 bits from the OS random
/// source (/dev/urandom never blocks, not even at boot).
pub(super) fn apop_challenge(hostname: &str) -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        log::error!("no random source for the APOP challenge, APOP disabled: {e}");
        return None;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Some(format!("<{}.{now}@{hostname}>", hex::encode(&bytes)))
}
