//! One POP3 session, generic over its transport: greeting, AUTHORIZATION, TRANSACTION, UPDATE, and the session's log line.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::net::SocketAddr;
use std::path::Path;

use crate::config::{Config, Plaintext};
use crate::conn::Conn;
use crate::limits::{AUTH_FAIL_DELAY, AUTH_FAIL_DELAY_MAX_STEPS, LOGIN_TIME_FACTOR, MAX_AUTH_FAILURES, READ_BUFFER};
use crate::lock::SessionLock;
use crate::maildrop::{Listed, Maildrop, MaildropError, Part, StatePaths};
use crate::parser::{Command, Parser};
use crate::penalty::Penalties;
use crate::reply::ReplyWriter;
use crate::sasl::{self, Exchange, Offer, Outcome};
use crate::tls::Tls;
use crate::users;

/// A byte stream to a client that can bound how long a read or write waits.
pub trait Transport: Read + Write {
    /// Every later read or write fails with `TimedOut` or `WouldBlock`
    /// after waiting this long.
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// How a session ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    /// QUIT was given but UPDATE failed; nothing was deleted.
    UpdateFailed,
    Timeout,
    Disconnected,
    TooManyBadCommands,
    TooManyAuthFailures,
    /// The TLS handshake or a TLS record failed.
    TlsError,
    IoError,
}

/// Counters for the session's log line.
#[derive(Debug, Default)]
struct Stats {
    retrieved: u64,
    retrieved_bytes: u64,
    deleted: usize,
    deleted_bytes: u64,
}

enum State {
    Authorization {
        user: Option<String>,
        failures: u32,
        bad: u32,
        /// A SASL exchange waiting for the client's next line.
        sasl: Option<Exchange>,
    },
    Transaction {
        user: String,
        drop: Maildrop,
        _lock: SessionLock,
    },
}

impl State {
    fn authorization(failures: u32, bad: u32) -> State {
        State::Authorization { user: None, failures, bad, sasl: None }
    }
}

/// What a command handler asks the loop to do next.
enum Next {
    Continue,
    /// STLS was answered with +OK: switch to TLS.
    StartTls,
    Close(End),
}

/// How a session starts: the listener's (or inetd options') settings.
pub struct Start<'a> {
    pub config: &'a Config,
    /// The TLS setup, when certificates are configured.
    pub tls: Option<&'a Tls>,
    /// Handshake before the greeting (port 995).
    pub implicit_tls: bool,
    /// Where plaintext logins are allowed without TLS.
    pub plaintext: Plaintext,
    /// The client's address (None on pipes).
    pub peer: Option<SocketAddr>,
    /// Failed logins by address, shared by the daemon's sessions.
    pub penalties: Option<&'a Penalties>,
}

/// Serves one session on `io` from greeting to close.
pub fn serve<T: Transport>(start: &Start, io: T) -> Summary {
    let config = start.config;
    let peer = start.peer.map_or_else(|| "stdin".to_string(), |p| p.to_string());
    let mut s = Session {
        config,
        start,
        out: ReplyWriter::new(Conn::Plain(io)),
        state: State::authorization(0, 0),
        challenge: config.apop.then(|| apop_challenge(&config.hostname)).flatten(),
        stats: Stats::default(),
        logged_in: None,
        check_started: Instant::now(),
    };
    let end = s.run().unwrap_or_else(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            let _ = s.reply_err("autologout: idle too long").and_then(|_| s.out.flush());
            let _ = s.out.get_mut().close();
            End::Timeout
        }
        io::ErrorKind::UnexpectedEof if s.out.get_ref().is_tls() => {
            log::info!("{peer} closed the TLS connection without close_notify");
            End::Disconnected
        }
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => End::Disconnected,
        _ if s.out.get_ref().is_tls() || matches!(s.out.get_ref(), Conn::Gone) => {
            log::info!("TLS with {peer} failed: {e}");
            End::TlsError
        }
        _ => {
            log::debug!("session I/O error with {peer}: {e}");
            End::IoError
        }
    });
    let st = &s.stats;
    Summary(format!(
        "session end: user={} peer={peer} tls={} retr={}/{} dele={}/{} end={end:?}",
        s.logged_in.as_deref().unwrap_or("-"),
        s.out.get_ref().tls_summary(),
        st.retrieved,
        st.retrieved_bytes,
        st.deleted,
        st.deleted_bytes,
    ))
}

/// The session's one log line (who, from where, TLS, retrieved and deleted,
/// how it ended), for the caller to log once it has released the session's
/// resources.
pub struct Summary(String);

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Session<'a, T: Transport> {
    config: &'a Config,
    start: &'a Start<'a>,
    out: ReplyWriter<Conn<T>>,
    state: State,
    challenge: Option<String>,
    stats: Stats,
    logged_in: Option<String>,
    /// When the current credential check began (see `login`).
    check_started: Instant,
}

impl<T: Transport> Session<'_, T> {
    fn run(&mut self) -> io::Result<End> {
        let login_deadline = Instant::now() + self.config.timeout_login * LOGIN_TIME_FACTOR;
        self.out.get_mut().set_timeout(self.config.timeout_login)?;
        if self.start.implicit_tls {
            self.start_tls()?;
        }
        let greeting = match &self.challenge {
            Some(c) => format!("POP3 server ready {c}"),
            None => "POP3 server ready".into(),
        };
        self.reply_ok(&greeting)?;
        let mut parser = Parser::new();
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            // Answers to pipelined commands go out together, before we wait.
            self.out.flush()?;
            self.out.release();
            if let State::Authorization { .. } = self.state {
                let left = login_deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.out.get_mut().set_timeout(left.min(self.config.timeout_login))?;
            }
            let n = match self.out.get_mut().read(&mut buf) {
                Ok(0) => return Ok(End::Disconnected),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut input = &buf[..n];
            loop {
                let next = if self.in_sasl() {
                    match parser.next_sasl(&mut input) {
                        None => break,
                        Some(Ok(line)) => self.sasl_response(&line)?,
                        Some(Err(e)) => self.sasl_abort(e.message())?,
                    }
                } else {
                    match parser.next(&mut input) {
                        None => break,
                        Some(Ok(cmd)) => self.command(cmd)?,
                        Some(Err(e)) => self.bad_command(e.message())?,
                    }
                };
                match next {
                    Next::Continue => {}
                    Next::StartTls => {
                        // Whatever the client sent after STLS in plaintext is
                        // dropped with `input` and the parser: never executed.
                        self.out.flush()?;
                        self.start_tls()?;
                        parser = Parser::new();
                        break;
                    }
                    Next::Close(end) => {
                        self.out.flush()?;
                        self.out.get_mut().close()?;
                        return Ok(end);
                    }
                }
            }
        }
    }

    /// The TLS handshake (after STLS, or first on an implicit-TLS port);
    /// everything said before it is forgotten.
    fn start_tls(&mut self) -> io::Result<()> {
        let tls = self.start.tls.ok_or_else(|| io::Error::other("TLS is not configured"))?;
        self.out.get_mut().start_tls(tls.config())?;
        let (failures, bad) = match &self.state {
            State::Authorization { failures, bad, .. } => (*failures, *bad),
            State::Transaction { .. } => (0, 0),
        };
        self.state = State::authorization(failures, bad);
        Ok(())
    }

    fn in_sasl(&self) -> bool {
        matches!(self.state, State::Authorization { sasl: Some(_), .. })
    }

    /// Plaintext passwords may be sent now: on TLS, or where policy allows.
    fn plaintext_allowed(&self) -> bool {
        self.out.get_ref().is_tls() || self.start.plaintext.allows(self.start.peer.map(|p| p.ip()))
    }

    /// What SASL can offer on this connection now.
    fn sasl_offer(&self) -> Offer {
        let conn = self.out.get_ref();
        let certificate_user = match self.start.tls {
            Some(tls) if tls.client_certs() => conn.certificate_user(),
            _ => None,
        };
        Offer { plaintext: self.plaintext_allowed(), certificate_user, channel_binding: conn.channel_binding() }
    }

    fn reply_ok(&mut self, text: &str) -> io::Result<()> {
        write!(self.out, "+OK {text}\r\n")
    }

    fn reply_err(&mut self, text: &str) -> io::Result<()> {
        write!(self.out, "-ERR {text}\r\n")
    }

    /// An invalid line: one `-ERR`; too many before login closes the session
    /// (another protocol talking to our port).
    fn bad_command(&mut self, why: &str) -> io::Result<Next> {
        self.reply_err(why)?;
        if let State::Authorization { bad, .. } = &mut self.state {
            *bad += 1;
            if *bad > self.config.max_bad_commands {
                self.reply_err("too many invalid commands, closing")?;
                return Ok(Next::Close(End::TooManyBadCommands));
            }
        }
        Ok(Next::Continue)
    }

    /// The one place where commands are gated by state.
    fn command(&mut self, cmd: Command) -> io::Result<Next> {
        match (&self.state, cmd) {
            (_, Command::Capa) => self.capa().map(|_| Next::Continue),
            (State::Authorization { .. }, Command::Quit) => {
                self.reply_ok("bye")?;
                Ok(Next::Close(End::Quit))
            }
            (State::Authorization { .. }, Command::Stls) => match self.start.tls {
                Some(_) if !self.out.get_ref().is_tls() => {
                    self.reply_ok("begin TLS negotiation")?;
                    Ok(Next::StartTls)
                }
                Some(_) => self.bad_command("already using TLS"),
                None => self.bad_command("TLS is not available"),
            },
            (State::Authorization { .. }, Command::User(_) | Command::Pass(_) | Command::Apop { .. })
                if !self.plaintext_allowed() =>
            {
                self.reply_err("[AUTH] plaintext login is not allowed without TLS: use STLS or port 995")?;
                Ok(Next::Continue)
            }
            (State::Authorization { .. }, Command::User(name)) => {
                if let State::Authorization { user, .. } = &mut self.state {
                    *user = Some(name);
                }
                // The same answer whether or not the user exists.
                self.reply_ok("send PASS").map(|_| Next::Continue)
            }
            (State::Authorization { user: None, .. }, Command::Pass(_)) => self.bad_command("give USER first"),
            (State::Authorization { user: Some(name), .. }, Command::Pass(password)) => {
                let name = name.clone();
                let checked = self.check_password(&name, &password);
                self.login(name, checked)
            }
            (State::Authorization { .. }, Command::Apop { name, digest }) => match self.challenge.clone() {
                None => self.bad_command("APOP is not enabled"),
                Some(challenge) => {
                    let checked = self.check_secret(&name, |secret| users::check_apop(secret, &challenge, &digest));
                    self.login(name, checked)
                }
            },
            (State::Authorization { .. }, Command::Auth(None)) => {
                let mut text = String::from("+OK SASL mechanisms follow\r\n");
                for m in self.sasl_offer().mechanisms() {
                    let _ = write!(text, "{m}\r\n");
                }
                text.push_str(".\r\n");
                self.out.write_all(text.as_bytes()).map(|_| Next::Continue)
            }
            (State::Authorization { .. }, Command::Auth(Some((mechanism, initial)))) => {
                let initial = match initial.map(|i| sasl::decode(&i)) {
                    Some(None) => return self.bad_command("malformed base64"),
                    Some(Some(data)) => Some(data),
                    None => None,
                };
                let offer = self.sasl_offer();
                self.check_started = Instant::now();
                let users_file = &self.config.users_file;
                let mut unreadable = None;
                let (exchange, outcome) =
                    Exchange::start(&mechanism, initial, &offer, |name| scram_keys(users_file, name, &mut unreadable));
                self.sasl_outcome(exchange, outcome, unreadable)
            }
            (State::Transaction { .. }, cmd) => self.transaction(cmd),
            (State::Authorization { .. }, _) => self.bad_command("command not valid before login"),
        }
    }

    /// A client line during a SASL exchange: `*` cancels (RFC 5034).
    fn sasl_response(&mut self, line: &[u8]) -> io::Result<Next> {
        let State::Authorization { sasl, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        let Some(exchange) = sasl.take() else {
            return Ok(Next::Continue);
        };
        if line == b"*" {
            self.reply_err("authentication cancelled")?;
            return Ok(Next::Continue);
        }
        let Some(data) = sasl::decode(line) else {
            return self.sasl_outcome(None, Outcome::Failure("malformed base64 response"), None);
        };
        self.check_started = Instant::now();
        let users_file = &self.config.users_file;
        let mut unreadable = None;
        let (exchange, outcome) = exchange.step(&data, |name| scram_keys(users_file, name, &mut unreadable));
        self.sasl_outcome(exchange, outcome, unreadable)
    }

    /// An unusable line during a SASL exchange ends the exchange.
    fn sasl_abort(&mut self, why: &str) -> io::Result<Next> {
        if let State::Authorization { sasl, .. } = &mut self.state {
            *sasl = None;
        }
        self.reply_err(why).map(|_| Next::Continue)
    }

    /// Acts on a step of a SASL exchange. `unreadable`: the users file could
    /// not be read for it, which ends the exchange with [SYS/TEMP].
    fn sasl_outcome(
        &mut self,
        exchange: Option<Exchange>,
        outcome: Outcome,
        unreadable: Option<io::Error>,
    ) -> io::Result<Next> {
        if let Some(e) = unreadable {
            return self.login(String::new(), Err(e));
        }
        if let State::Authorization { sasl, .. } = &mut self.state {
            *sasl = exchange;
        }
        match outcome {
            Outcome::Challenge(data) => {
                write!(self.out, "+ {}\r\n", sasl::encode(&data))?;
                Ok(Next::Continue)
            }
            Outcome::CheckPassword { user, password } => {
                let checked = self.check_password(&user, &password);
                self.login(user, checked)
            }
            Outcome::Success { user, .. } => {
                // SCRAM proved the keys; EXTERNAL needs an account too.
                let exists = if users::valid_name(&user) {
                    users::lookup(&self.config.users_file, &user).map(|s| s.is_some())
                } else {
                    Ok(false)
                };
                self.login(user, exists)
            }
            Outcome::Failure(why) => {
                log::info!("SASL authentication failed: {why}");
                self.login(String::new(), Ok(false))
            }
        }
    }

    /// Looks the user up and checks the password, the same way for every
    /// user name, known or not.
    fn check_password(&mut self, name: &str, password: &[u8]) -> io::Result<bool> {
        self.check_secret(name, |secret| users::check_password(secret, password))
    }

    /// Runs `check` on the user's secret (None for an unknown or invalid
    /// name, so the work is the same); Err when the users file is unreadable.
    fn check_secret(&mut self, name: &str, check: impl FnOnce(Option<&users::Secret>) -> bool) -> io::Result<bool> {
        self.check_started = Instant::now();
        let secret = users::lookup(&self.config.users_file, name)?;
        let ok = check(secret.as_ref());
        Ok(ok && users::valid_name(name))
    }

    /// CAPA lists exactly what works now (RFC 2449).
    /// The login capabilities (USER, SASL, STLS) are what this connection
    /// offers in AUTHORIZATION; RFC 2449 section 5 has them announced in the
    /// TRANSACTION state too. IMPLEMENTATION only after login.
    fn capa(&mut self) -> io::Result<()> {
        let mut text = String::from("+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n");
        if self.plaintext_allowed() {
            text.push_str("USER\r\n");
        }
        let _ = write!(text, "SASL {}\r\n", self.sasl_offer().mechanisms().join(" "));
        if self.start.tls.is_some() && !self.out.get_ref().is_tls() {
            text.push_str("STLS\r\n");
        }
        if let State::Transaction { .. } = self.state {
            let _ = write!(text, "IMPLEMENTATION pop3d-{}\r\n", env!("CARGO_PKG_VERSION"));
        }
        text.push_str(".\r\n");
        self.out.write_all(text.as_bytes())
    }

    /// Finishes USER/PASS or APOP: `checked` is the credential check's result.
    fn login(&mut self, name: String, checked: io::Result<bool>) -> io::Result<Next> {
        let State::Authorization { user, failures, sasl, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        *user = None;
        *sasl = None;
        match checked {
            Err(e) => {
                log::error!("cannot read users file {}: {e}", self.config.users_file.display());
                self.reply_err("[SYS/TEMP] authentication unavailable, try later")?;
                return Ok(Next::Continue);
            }
            Ok(false) => {
                *failures += 1;
                let failures = *failures;
                // The delay grows with this session's failures, and with the
                // address's recent failures across sessions (daemon mode).
                let ip = self.start.peer.map(|p| p.ip());
                let recent = match (self.start.penalties, ip) {
                    (Some(p), Some(ip)) => p.failed(ip),
                    _ => 0,
                };
                log::info!("login failed for {name:?} ({recent} recent failures from this address)");
                // Counted from the start of the check, so every failure takes
                // the same time whatever the user's hash scheme (or none).
                let until = self.check_started + AUTH_FAIL_DELAY * failures.max(recent).min(AUTH_FAIL_DELAY_MAX_STEPS);
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                self.reply_err("[AUTH] invalid user name or password")?;
                if failures >= MAX_AUTH_FAILURES {
                    return Ok(Next::Close(End::TooManyAuthFailures));
                }
                return Ok(Next::Continue);
            }
            Ok(true) => {
                if let (Some(p), Some(peer)) = (self.start.penalties, self.start.peer) {
                    p.succeeded(peer.ip());
                }
            }
        }
        let lock = match SessionLock::try_acquire(&self.config.state_dir, &name) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                self.reply_err("[IN-USE] maildrop is in use by another session")?;
                return Ok(Next::Continue);
            }
            Err(e) => {
                log::error!("cannot lock maildrop of {name} in {}: {e}", self.config.state_dir.display());
                self.reply_err("[SYS/TEMP] maildrop unavailable, try later")?;
                return Ok(Next::Continue);
            }
        };
        let state = StatePaths {
            journal: self.config.state_dir.join(format!("{name}.journal")),
            copies: self.config.state_dir.join(format!("{name}.uids")),
        };
        match Maildrop::open(self.config.location(&name), state, &self.config.mbox) {
            Ok(drop) => {
                let (n, size) = drop.stat();
                log::info!("login {name}: {n} messages, {size} octets");
                self.logged_in = Some(name.clone());
                self.state = State::Transaction { user: name, drop, _lock: lock };
                self.out.get_mut().set_timeout(self.config.timeout_session)?;
                self.reply_ok(&format!("maildrop has {n} messages ({size} octets)"))?;
            }
            Err(e) => {
                log::error!("cannot open maildrop of {name}: {e}");
                self.reply_err(&format!("[{}] {e}", code_of(&e)))?;
            }
        }
        Ok(Next::Continue)
    }

    fn transaction(&mut self, cmd: Command) -> io::Result<Next> {
        let State::Transaction { drop, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        let out = &mut self.out;
        match cmd {
            Command::Stat => {
                let (n, size) = drop.stat();
                write!(out, "+OK {n} {size}\r\n")?;
            }
            Command::List(None) => {
                let (n, size) = drop.stat();
                write!(out, "+OK {n} messages ({size} octets)\r\n")?;
                for (i, m) in drop.live() {
                    write!(out, "{i} {}\r\n", m.size)?;
                }
                out.write_all(b".\r\n")?;
            }
            Command::Uidl(None) => {
                out.write_all(b"+OK unique-id listing follows\r\n")?;
                for (i, m) in drop.live() {
                    write!(out, "{i} {}\r\n", m.uid)?;
                }
                out.write_all(b".\r\n")?;
            }
            Command::List(Some(n))
            | Command::Uidl(Some(n))
            | Command::Retr(n)
            | Command::Top { msg: n, .. }
            | Command::Dele(n) => {
                let Some(msg) = drop.get(n) else {
                    let why = if drop.is_deleted(n) { "message is deleted" } else { "no such message" };
                    write!(out, "-ERR {why}\r\n")?;
                    return Ok(Next::Continue);
                };
                let size = msg.size;
                match cmd {
                    Command::List(_) => write!(out, "+OK {n} {size}\r\n")?,
                    Command::Uidl(_) => write!(out, "+OK {n} {}\r\n", msg.uid)?,
                    Command::Retr(_) | Command::Top { .. } => {
                        if !drop.still_indexed(n)? {
                            log::warn!("mailbox changed by another program during the session");
                            out.write_all(b"-ERR [SYS/TEMP] mailbox changed since login, log in again\r\n")?;
                            return Ok(Next::Continue);
                        }
                        let part = match cmd {
                            Command::Top { lines, .. } => Part::Top(lines),
                            _ => Part::Whole,
                        };
                        write!(out, "+OK {size} octets\r\n")?;
                        let sent = drop.send(n, part, out).unwrap_or(Ok(0)).and_then(|sent| match part {
                            // Changed on disk since it was listed: never end a
                            // short message with "." as if it were whole.
                            Part::Whole if sent != size => {
                                Err(io::Error::other(format!("{sent} of {size} octets sent: the file changed")))
                            }
                            _ => Ok(sent),
                        });
                        if let Err(e) = sent {
                            // The +OK is out; the only honest end is to close.
                            log::error!("sending message {n} failed: {e}");
                            return Err(e);
                        }
                        out.write_all(b".\r\n")?;
                        if matches!(part, Part::Whole) {
                            self.stats.retrieved += 1;
                            self.stats.retrieved_bytes += size;
                        }
                    }
                    // DELE, the one command of this arm left.
                    _ => {
                        drop.delete(n);
                        write!(out, "+OK message {n} deleted\r\n")?;
                    }
                }
            }
            Command::Rset => {
                drop.reset();
                let (n, size) = drop.stat();
                write!(out, "+OK maildrop has {n} messages ({size} octets)\r\n")?;
            }
            Command::Quit => return self.update(),
            Command::Noop => out.write_all(b"+OK\r\n")?,
            Command::User(_) | Command::Pass(_) | Command::Apop { .. } | Command::Auth(_) | Command::Stls => {
                out.write_all(b"-ERR already logged in\r\n")?;
            }
            Command::Capa => self.capa()?,
        }
        Ok(Next::Continue)
    }

    /// QUIT in TRANSACTION: the UPDATE state.
    fn update(&mut self) -> io::Result<Next> {
        let state = std::mem::replace(&mut self.state, State::authorization(0, 0));
        let State::Transaction { user, drop, _lock } = state else {
            return Ok(Next::Close(End::Quit));
        };
        let (marked, marked_bytes) = drop.marked();
        match drop.commit() {
            Ok(_) => {
                self.stats.deleted = marked;
                self.stats.deleted_bytes = marked_bytes;
                self.reply_ok(&format!("bye, {marked} messages deleted"))?;
                Ok(Next::Close(End::Quit))
            }
            Err(e) => {
                log::error!("update of {user}'s maildrop failed: {e}");
                self.reply_err(&format!("[{}] could not remove deleted messages: {e}", code_of(&e)))?;
                Ok(Next::Close(End::UpdateFailed))
            }
        }
    }
}

/// An APOP challenge `<random.time@host>` with 128 bits from the OS random
/// source (/dev/urandom never blocks, not even at boot).
fn apop_challenge(hostname: &str) -> Option<String> {
    let mut bytes = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => {}
        Err(e) => {
            log::error!("no random source for the APOP challenge, APOP disabled: {e}");
            return None;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Some(format!("<{hex}.{now}@{hostname}>"))
}

/// A user's SCRAM keys, if the name is valid and the user has them. An
/// unreadable users file is kept in `unreadable`, for a [SYS/TEMP] answer
/// instead of the exchange going on with made-up keys.
fn scram_keys(users_file: &Path, name: &str, unreadable: &mut Option<io::Error>) -> Option<sasl::scram::ScramKeys> {
    if !users::valid_name(name) {
        return None;
    }
    match users::lookup(users_file, name) {
        Ok(secret) => secret.and_then(|s| s.scram()),
        Err(e) => {
            *unreadable = Some(e);
            None
        }
    }
}

/// The response code for a maildrop error.
fn code_of(e: &MaildropError) -> &'static str {
    if e.is_temporary() {
        "SYS/TEMP"
    } else {
        "SYS/PERM"
    }
}
