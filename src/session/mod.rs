//! One POP3 session, generic over its transport: the read loop, the one place commands are gated by state, and the end.
//!
//! A session is in the AUTHORIZATION state (`authorization.rs`; AUTH in
//! `sasl.rs`; every way of logging in ends in `login.rs`) until a login
//! opens the maildrop (`open.rs`), then in TRANSACTION (`transaction.rs`)
//! until QUIT's UPDATE (`update.rs`). Each state is a type holding what
//! exists in it (`state.rs`; the maildrop only in TRANSACTION). The read loop hands
//! every command, with its `Pending` answer, to the table of the state it
//! is in, which answers it once and gives back the state to go on in.
//! CAPA, LANG and UTF8 are in `capa.rs`, EXPIRE and LOGIN-DELAY in
//! `expire.rs`, the PROXY header in `proxied.rs`; how the session was
//! started (`Link`, `Mode`) in `mode.rs`.

mod authorization;
mod capa;
mod expire;
mod login;
mod mode;
mod open;
mod proxied;
mod sasl;
mod state;
mod summary;
mod transaction;
mod update;

pub use mode::{HandOver, Link, Mode, Split, Turn, Watch};
pub use summary::{End, Summary};

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use self::state::{Authorization, Transaction};
use self::summary::Stats;
use crate::accounts::Account;
use crate::config::Config;
use crate::conn::Conn;
use crate::limits::{LOGIN_TIME_FACTOR, READ_BUFFER};
use crate::parser::Parser;
use crate::reply::{Answered, Pending, ReplyWriter};
use crate::transport::Transport;

/// Serves one session on `io` from greeting (or, resumed, from the login's
/// answer) to close.
pub fn serve<T: Transport>(link: &Link, mode: &Mode, io: T) -> Summary {
    let mut s = Session::new(link, mode, io);
    let end = s.run();
    s.finish(end)
}

/// A session: the connection, how it was started, and what its log line
/// will say. The protocol state is not here: the read loop holds it.
struct Session<'a, T: Transport> {
    link: &'a Link<'a>,
    mode: &'a Mode<'a>,
    config: &'a Config,
    /// The client's address: the connection's, or the one a trusted
    /// proxy's PROXY header gave.
    peer: Option<SocketAddr>,
    out: ReplyWriter<Conn<T>>,
    /// The APOP challenge of the greeting, when APOP is on.
    challenge: Option<String>,
    stats: Stats,
    /// Who logged in, once someone has.
    logged_in: Option<String>,
    /// Everything before login ends by then: the TLS handshake, the
    /// commands, the wait for a login's answer.
    login_deadline: Instant,
    /// The system account that logged in (None for users-file accounts).
    account: Option<Account>,
}

/// The protocol state (RFC 1939), each holding what exists in it.
enum State {
    Authorization(Authorization),
    Transaction(Box<Transaction>),
}

/// What follows a command's answer.
enum Next {
    /// Go on in this state.
    In(State),
    /// `+OK` to STLS was sent: the handshake, then AUTHORIZATION anew.
    StartTls(Authorization),
    /// inetd mode with system accounts: the credentials were right, and the
    /// client goes on with the user's own process (which answers the login).
    HandOver(String),
    /// The session ends after this answer.
    Close(End),
}

/// A command answered, and what follows.
type Step = (Answered, Next);

/// Why a session stops where it is without an answer: an I/O error, or an
/// end of its own (closed from outside, the login deadline).
enum Stop {
    Io(io::Error),
    End(End),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

impl<'a, T: Transport> Session<'a, T> {
    fn new(link: &'a Link<'a>, mode: &'a Mode<'a>, io: T) -> Self {
        let config = link.config;
        Session {
            link,
            mode,
            config,
            peer: link.peer,
            out: ReplyWriter::new(Conn::Plain(io)),
            challenge: config.apop.then(|| authorization::apop_challenge(&config.hostname)).flatten(),
            stats: Stats::default(),
            logged_in: None,
            login_deadline: Instant::now() + config.timeout_login * LOGIN_TIME_FACTOR,
            account: None,
        }
    }

    fn run(&mut self) -> Result<End, Stop> {
        self.out.get_mut().set_timeout(self.config.timeout_login)?;
        if let Mode::Resumed { name, account } = self.mode {
            // The login the pre-login process took: answered here, by
            // opening the maildrop. There is no AUTHORIZATION to go back to.
            self.account = Some(account.clone());
            return match open::maildrop(self, name.clone(), Pending::new())? {
                (_, Some(transaction)) => self.commands(State::Transaction(transaction)),
                (_, None) => {
                    self.out.flush()?;
                    Ok(End::NoMaildrop)
                }
            };
        }
        if let Some(end) = self.proxy_header()? {
            return Ok(end);
        }
        if self.link.implicit_tls {
            self.start_tls()?;
        }
        match &self.challenge {
            Some(c) => self.out.greeting(format_args!("POP3 server ready {c}"))?,
            None => self.out.greeting("POP3 server ready")?,
        }
        self.commands(State::Authorization(Authorization::new()))
    }

    /// The command loop, until the session closes.
    fn commands(&mut self, mut state: State) -> Result<End, Stop> {
        let mut parser = Parser::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut first_read = true;
        let mut answered = false;
        loop {
            // Answers to pipelined commands go out together, before we wait.
            self.out.flush()?;
            self.out.release();
            if let State::Authorization(_) = state {
                if std::mem::take(&mut answered) {
                    self.turn(Turn::Client);
                }
                let left = self.login_deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(self.login_deadline_passed());
                }
                self.out.get_mut().set_timeout(left.min(self.config.timeout_login))?;
            }
            let n = match self.out.get_mut().read(&mut buf) {
                Ok(0) => return Ok(End::Disconnected),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let mut input = &buf[..n];
            if std::mem::take(&mut first_read) {
                if let Some(end) = self.untrusted_proxy_header(input) {
                    return Ok(end);
                }
            }
            loop {
                // The one place commands are gated by state: each state reads
                // what it expects next and answers it from its own table.
                let (_, next) = match state {
                    State::Authorization(mut a) => {
                        let Some(line) = a.next_input(&mut parser, &mut input) else {
                            state = State::Authorization(a);
                            break;
                        };
                        self.turn(Turn::Server);
                        answered = true;
                        authorization::dispatch(self, a, line, Pending::new())?
                    }
                    State::Transaction(t) => {
                        let Some(command) = parser.next(&mut input) else {
                            state = State::Transaction(t);
                            break;
                        };
                        transaction::dispatch(self, t, command, Pending::new())?
                    }
                };
                match next {
                    Next::In(next) => state = next,
                    Next::StartTls(a) => {
                        // Whatever the client sent after STLS in plaintext is
                        // dropped with `input` and the parser: never executed.
                        // The handshake is the client's move, as on port 995:
                        // one stalled in it makes way like any stalled session.
                        self.turn(Turn::Client);
                        self.out.flush()?;
                        self.start_tls()?;
                        parser = Parser::new();
                        state = State::Authorization(a.after_tls());
                        break;
                    }
                    Next::Close(end) => {
                        self.out.flush()?;
                        self.out.get_mut().close()?;
                        return Ok(end);
                    }
                    Next::HandOver(name) => {
                        self.out.flush()?;
                        if let Some(relay) = self.mode.relay() {
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

    /// The TLS handshake (after STLS, or first on an implicit-TLS port).
    fn start_tls(&mut self) -> io::Result<()> {
        let tls = self.link.tls.ok_or_else(|| io::Error::other("TLS is not configured"))?;
        self.out.get_mut().start_tls(tls)
    }

    /// Tells the watch (admission) whose move it is, before login.
    fn turn(&self, turn: Turn) {
        if let Some(watch) = self.mode.watch() {
            watch.turn(turn);
        }
    }

    /// The login deadline passed before the session logged in: said, and
    /// the end.
    fn login_deadline_passed(&mut self) -> Stop {
        let _ = self.out.farewell(None, "autologout: not logged in in time").and_then(|_| self.out.flush());
        let _ = self.out.get_mut().close();
        Stop::End(End::Timeout)
    }

    /// Waits until `until` (a penalty slot, a failure's delay), as a penalty
    /// for admission; Err when the session was closed from outside
    /// meanwhile, or (`login_deadline`) when that comes first.
    fn penalty_wait(&mut self, until: Instant) -> Result<(), Stop> {
        self.turn(Turn::Penalty);
        let waited = self.mode.pause(until.min(self.login_deadline));
        self.turn(Turn::Server);
        if !waited {
            Err(Stop::End(End::Closed))
        } else if until > self.login_deadline {
            Err(self.login_deadline_passed())
        } else {
            Ok(())
        }
    }

    /// The session's summary, once `run` ended.
    fn finish(mut self, end: Result<End, Stop>) -> Summary {
        let s = &mut self;
        let conn_peer = s.link.peer.map_or_else(|| "stdin".to_string(), |p| p.to_string());
        let end = match end {
            Ok(end) | Err(Stop::End(end)) => end,
            Err(Stop::Io(e)) => s.end_by_error(e, &conn_peer),
        };
        let peer = match (s.link.peer, s.peer) {
            (Some(p), Some(real)) if p != real => format!("{real} (via proxy {p})"),
            (_, real) => real.map_or_else(|| "stdin".to_string(), |p| p.to_string()),
        };
        let tls = match s.mode.relayed() {
            true => "relayed".to_string(),
            false => s.out.get_ref().tls_summary(),
        };
        let st = &s.stats;
        Summary {
            logged_in: s.logged_in.is_some(),
            handed_over: end == End::HandedOver,
            client: s.peer.map(|p| p.ip()),
            line: format!(
                "session end: user={} peer={peer} tls={tls} retr={}/{} dele={}/{} end={end:?}",
                s.logged_in.as_deref().unwrap_or("-"),
                st.retrieved,
                st.retrieved_bytes,
                st.deleted,
                st.deleted_bytes,
            ),
        }
    }

    /// How an I/O error ended the session.
    fn end_by_error(&mut self, e: io::Error, conn_peer: &str) -> End {
        let s = self;
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                // Before login the wait is cut at the login deadline too.
                let why = match s.logged_in.is_none() && Instant::now() >= s.login_deadline {
                    true => "autologout: not logged in in time",
                    false => "autologout: idle too long",
                };
                let _ = s.out.farewell(None, why).and_then(|_| s.out.flush());
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
