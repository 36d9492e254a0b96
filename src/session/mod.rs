//! One POP3 session, generic over its transport: the read loop, the one place commands are gated by state, CAPA, and the session's log line.
//!
//! The states live in their own files, each its part of RFC 1939:
//! `authorization` (USER/PASS, APOP, STLS, and the login that opens the
//! maildrop), `auth` (RFC 5034 SASL steps), `transaction` (STAT ... RSET),
//! `update` (QUIT after login).

mod auth;
mod authorization;
mod expire;
mod proxied;
mod system;
mod transaction;
mod update;
mod utf8;

pub use system::HandOver;

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::{AccountSource, Config, Plaintext};
use crate::conn::Conn;
use crate::limits::{LOGIN_TIME_FACTOR, READ_BUFFER};
use crate::lock::SessionLock;
use crate::maildrop::Maildrop;
use crate::parser::{Command, ParseError, Parser};
use crate::penalty::Penalties;
use crate::reply::ReplyWriter;
use crate::sasl::{Exchange, Offer};
use crate::tls::Tls;
use crate::transport::Transport;

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
    /// A malformed PROXY header from a trusted proxy, or one from anyone else.
    BadProxyHeader,
    /// The client behind a proxy already holds `max_sessions_per_ip`.
    TooManySessions,
    IoError,
    /// inetd mode with system accounts: the session went on in the helper's
    /// process, as the user (this one relayed).
    HandedOver,
    /// Logged in, but the maildrop could not be opened (a session that
    /// was handed over cannot go back to the AUTHORIZATION state).
    NoMaildrop,
}

/// Counters for the session's log line.
#[derive(Debug, Default)]
struct Stats {
    retrieved: u64,
    retrieved_bytes: u64,
    deleted: usize,
    deleted_bytes: u64,
}

// One per session, never moved around in numbers: its size does not matter.
#[allow(clippy::large_enum_variant)]
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
        drop: Box<Maildrop>,
        _lock: SessionLock,
        /// EXPIRE and LOGIN-DELAY for this user.
        expiry: expire::Expiry,
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
    /// The credentials of this user were right: hand the session over.
    HandOver(String),
    Close(End),
}

/// Whose move it is in a session not logged in, for admission to tell the
/// stalled from the busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The client owes its next command (or is in its TLS handshake).
    Client,
    /// The server is answering a command: a hash, the credentials helper,
    /// the mailbox lock.
    Server,
    /// A login answer waiting for its penalty slot.
    Penalty,
}

/// What the caller learns of a session before it ends, and how it closes
/// one from outside (the daemon's admission, inetd mode's deadline).
pub trait Watch {
    /// The session's client is `ip` (the address a trusted proxy's PROXY
    /// header gave): counted there from now on for the per-address limit.
    /// False when that address already holds `max_sessions_per_ip`
    /// sessions that have logged in: the session is to be refused.
    fn client(&self, ip: std::net::IpAddr, config: &Config) -> bool;
    /// The session has logged in.
    fn logged_in(&self);
    /// The session was closed from outside: stop waiting.
    fn cancelled(&self) -> bool;
    /// Whose move it is now (before login).
    fn turn(&self, _turn: Turn) {}
    /// Waits until `until`; false if the session was closed from outside
    /// meanwhile (then at once).
    fn pause(&self, until: Instant) -> bool {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        !self.cancelled()
    }
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
    /// Told of the login; may cancel the session.
    pub watch: Option<&'a dyn Watch>,
    /// System accounts: the privileged helper that checks credentials.
    pub helper: Option<&'a crate::privsep::Helper>,
    /// inetd mode with system accounts: relays after the login.
    pub hand_over: Option<&'a dyn HandOver>,
    /// This session's bytes come through the pre-login process's relay
    /// (which holds the TLS, if any).
    pub relayed: bool,
}

/// Serves one session on `io` from greeting to close.
pub fn serve<T: Transport>(start: &Start, io: T) -> Summary {
    let mut s = Session::new(start, io);
    let end = s.run();
    s.finish(end)
}

/// The rest of a session handed over after its credentials were checked
/// (inetd mode with system accounts): this process runs as the user now,
/// and `io` is the relay's end, not the client's connection.
pub fn serve_logged_in<T: Transport>(start: &Start, io: T, name: String, account: crate::accounts::Account) -> Summary {
    let mut s = Session::new(start, io);
    s.account = Some(account);
    let end = s.out.get_mut().set_timeout(start.config.timeout_login).and_then(|_| {
        s.open_maildrop(name)?;
        if s.logged_in.is_none() {
            s.out.flush()?;
            return Ok(End::NoMaildrop);
        }
        s.commands()
    });
    s.finish(end)
}

impl<'a, T: Transport> Session<'a, T> {
    fn new(start: &'a Start<'a>, io: T) -> Self {
        let config = start.config;
        Session {
            peer: start.peer,
            config,
            start,
            out: ReplyWriter::new(Conn::Plain(io)),
            state: State::authorization(0, 0),
            challenge: config.apop.then(|| authorization::apop_challenge(&config.hostname)).flatten(),
            stats: Stats::default(),
            logged_in: None,
            login_deadline: Instant::now() + config.timeout_login * LOGIN_TIME_FACTOR,
            account: None,
        }
    }

    /// The session's summary, once `run` ended with `end`.
    fn finish(mut self, end: io::Result<End>) -> Summary {
        let s = &mut self;
        let conn_peer = s.start.peer.map_or_else(|| "stdin".to_string(), |p| p.to_string());
        let end = end.unwrap_or_else(|e| s.end_by_error(e, &conn_peer));
        let peer = match (s.start.peer, s.peer) {
            (Some(p), Some(real)) if p != real => format!("{real} (via proxy {p})"),
            (_, real) => real.map_or_else(|| "stdin".to_string(), |p| p.to_string()),
        };
        let tls = match s.start.relayed {
            true => "relayed".to_string(),
            false => s.out.get_ref().tls_summary(),
        };
        let st = &s.stats;
        Summary(
            s.logged_in.is_some(),
            end == End::HandedOver,
            s.peer.map(|p| p.ip()),
            format!(
                "session end: user={} peer={peer} tls={tls} retr={}/{} dele={}/{} end={end:?}",
                s.logged_in.as_deref().unwrap_or("-"),
                st.retrieved,
                st.retrieved_bytes,
                st.deleted,
                st.deleted_bytes,
            ),
        )
    }

    /// How an I/O error ended the session.
    fn end_by_error(&mut self, e: io::Error, conn_peer: &str) -> End {
        let s = self;
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                let _ = s.out.err("autologout: idle too long").and_then(|_| s.out.flush());
                let _ = s.out.get_mut().close();
                End::Timeout
            }
            io::ErrorKind::UnexpectedEof if s.out.get_ref().is_tls() => {
                if s.logged_in.is_some() || crate::loglimit::allow(s.peer.map(|p| p.ip())) {
                    log::info!("{conn_peer} closed the TLS connection without close_notify");
                }
                End::Disconnected
            }
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                End::Disconnected
            }
            _ if s.out.get_ref().is_tls() || matches!(s.out.get_ref(), Conn::Gone) => {
                if s.logged_in.is_some() || crate::loglimit::allow(s.peer.map(|p| p.ip())) {
                    log::info!("TLS with {conn_peer} failed: {e}");
                }
                End::TlsError
            }
            _ => {
                log::debug!("session I/O error with {conn_peer}: {e}");
                End::IoError
            }
        }
    }
}

/// The session's one log line (who, from where, TLS, retrieved and deleted,
/// how it ended), for the caller to log once it has released the session's
/// resources.
pub struct Summary(bool, bool, Option<std::net::IpAddr>, String);

impl Summary {
    /// Whether the session logged in (its line is never rate limited).
    pub fn logged_in(&self) -> bool {
        self.0
    }

    /// Whether the session went on in another process, which logs its line.
    pub fn handed_over(&self) -> bool {
        self.1
    }

    /// The client's address (behind a trusted proxy, the one its PROXY
    /// header named), for the per-address log budget.
    pub fn client(&self) -> Option<std::net::IpAddr> {
        self.2
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.3)
    }
}

struct Session<'a, T: Transport> {
    config: &'a Config,
    start: &'a Start<'a>,
    /// The client's address: the connection's, or the one a trusted
    /// proxy's PROXY header gave.
    peer: Option<SocketAddr>,
    out: ReplyWriter<Conn<T>>,
    state: State,
    challenge: Option<String>,
    stats: Stats,
    logged_in: Option<String>,
    /// Everything before login ends by then: the TLS handshake, the
    /// commands, the wait for a login's answer.
    login_deadline: Instant,
    /// The system account that logged in (None for users-file accounts).
    account: Option<crate::accounts::Account>,
}

impl<T: Transport> Session<'_, T> {
    fn run(&mut self) -> io::Result<End> {
        self.out.get_mut().set_timeout(self.config.timeout_login)?;
        if let Some(end) = self.proxy_header()? {
            return Ok(end);
        }
        if self.start.implicit_tls {
            self.start_tls()?;
        }
        match &self.challenge {
            Some(c) => self.out.ok(format_args!("POP3 server ready {c}"))?,
            None => self.out.ok("POP3 server ready")?,
        }
        self.commands()
    }

    /// The command loop, until the session closes.
    fn commands(&mut self) -> io::Result<End> {
        let login_deadline = self.login_deadline;
        let mut parser = Parser::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut first_read = true;
        let mut answered = false;
        loop {
            // Answers to pipelined commands go out together, before we wait.
            self.out.flush()?;
            self.out.release();
            if std::mem::take(&mut answered) {
                self.turn(Turn::Client);
            }
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
            if std::mem::take(&mut first_read) {
                if let Some(end) = self.untrusted_proxy_header(input) {
                    return Ok(end);
                }
            }
            loop {
                let next = if self.in_sasl() {
                    let Some(line) = parser.next_sasl(&mut input) else { break };
                    self.turn(Turn::Server);
                    answered = true;
                    match line {
                        Ok(line) => self.sasl_response(&line)?,
                        Err(e) => self.sasl_abort(e.message())?,
                    }
                } else {
                    let Some(cmd) = parser.next(&mut input) else { break };
                    self.turn(Turn::Server);
                    answered = true;
                    match cmd {
                        Ok(cmd) => self.command(cmd)?,
                        Err(e) => self.bad_line(e)?,
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
                    Next::HandOver(name) => {
                        self.out.flush()?;
                        if let Some(relay) = self.start.hand_over {
                            log::info!("credentials of {name} accepted; the session goes on as that user");
                            relay.relay(self.out.get_mut(), input)?;
                            // The user's session ended: so does the client's connection (close_notify).
                            self.out.get_mut().close()?;
                        }
                        return Ok(End::HandedOver);
                    }
                }
            }
        }
    }

    /// Tells the watch (admission) whose move it is, before login.
    fn turn(&self, turn: Turn) {
        if let (Some(watch), State::Authorization { .. }) = (self.start.watch, &self.state) {
            watch.turn(turn);
        }
    }

    /// The one place where commands are gated by state.
    fn command(&mut self, cmd: Command) -> io::Result<Next> {
        match (&self.state, cmd) {
            (_, Command::Capa) => self.capa().map(|_| Next::Continue),
            (_, Command::Lang(tag)) => self.lang(tag),
            (State::Authorization { .. }, Command::Utf8) => self.utf8(),
            (State::Authorization { .. }, cmd) => self.authorization(cmd),
            (State::Transaction { .. }, Command::Quit) => self.update(),
            (State::Transaction { .. }, cmd) => self.transaction(cmd),
        }
    }

    /// A line that is not a command: one `-ERR`. Before login, lines that
    /// are no POP3 command at all (another protocol talking to our port)
    /// are counted, and the one that passes `max_bad_commands` is answered
    /// with the closing `-ERR` alone: one reply per command, always.
    fn bad_line(&mut self, e: ParseError) -> io::Result<Next> {
        if let State::Authorization { bad, .. } = &mut self.state {
            if e.is_foreign() {
                *bad += 1;
                if *bad > self.config.max_bad_commands {
                    self.out.err("too many invalid commands, closing")?;
                    return Ok(Next::Close(End::TooManyBadCommands));
                }
            }
        }
        self.refuse(e.message())
    }

    /// A POP3 command that cannot be done now (wrong state, missing USER,
    /// APOP off): `-ERR` and the session goes on; never counted.
    fn refuse(&mut self, why: impl std::fmt::Display) -> io::Result<Next> {
        self.out.err(why).map(|_| Next::Continue)
    }

    fn in_sasl(&self) -> bool {
        matches!(self.state, State::Authorization { sasl: Some(_), .. })
    }

    /// Plaintext passwords may be sent now: on TLS, or where policy allows.
    fn plaintext_allowed(&self) -> bool {
        self.out.get_ref().is_tls() || self.start.plaintext.allows(self.peer.map(|p| p.ip()))
    }

    /// What SASL can offer on this connection now.
    fn sasl_offer(&self) -> Offer {
        let conn = self.out.get_ref();
        let certificate_user = match self.start.tls {
            Some(tls) if tls.client_certs() => conn.certificate_user(),
            _ => None,
        };
        match self.config.accounts {
            // System accounts: the helper checks passwords, and only them.
            AccountSource::System => Offer {
                plaintext: self.plaintext_allowed(),
                policy: self.config.auth_mechanisms.clone(),
                ..Offer::default()
            },
            AccountSource::UsersFile => Offer {
                plaintext: self.plaintext_allowed(),
                tls: conn.is_tls(),
                scram: crate::users::scram_keyed(&self.config.users_file),
                certificate_user,
                channel_binding: conn.channel_binding(),
                policy: self.config.auth_mechanisms.clone(),
            },
        }
    }

    /// CAPA lists exactly what works now (RFC 2449).
    /// The login capabilities (USER, SASL, STLS) are what this connection
    /// offers in AUTHORIZATION; RFC 2449 section 5 has them announced in the
    /// TRANSACTION state too. IMPLEMENTATION only after login.
    fn capa(&mut self) -> io::Result<()> {
        let mut text = String::from(
            "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n",
        );
        text.push_str(&self.policy_capa());
        text.push_str("UTF8 USER\r\nLANG\r\n");
        if self.plaintext_allowed() {
            text.push_str("USER\r\n");
        }
        let mechanisms = self.sasl_offer().mechanisms();
        if !mechanisms.is_empty() {
            let _ = write!(text, "SASL {}\r\n", mechanisms.join(" "));
        }
        if self.start.tls.is_some() && !self.out.get_ref().is_tls() {
            text.push_str("STLS\r\n");
        }
        if let State::Transaction { .. } = self.state {
            let _ = write!(text, "IMPLEMENTATION pop3d-{}\r\n", env!("CARGO_PKG_VERSION"));
        }
        text.push_str(".\r\n");
        self.out.write_all(text.as_bytes())
    }
}
