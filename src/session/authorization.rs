//! The AUTHORIZATION state (RFC 1939 section 4): what it holds, and its table of every command's answer.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{capa, login, sasl, End, Next, Session, State, Step, Stop};
use crate::hex;
use crate::parser::{Command, ParseError, Parser};
use crate::reply::{Code, Pending};
use crate::sasl::Exchange;
use crate::transport::Transport;

/// What the AUTHORIZATION state holds.
pub(super) struct Authorization {
    /// The name USER gave, for the next PASS (any login forgets it).
    pub user: Option<String>,
    /// Failed logins in this session: the answer's delay grows with them,
    /// and `MAX_AUTH_FAILURES` ends the session.
    pub failures: u32,
    /// Lines that were no POP3 command at all (another protocol talking to
    /// the port): `max_bad_commands` of them end the session.
    foreign: u32,
    /// A SASL exchange waiting for the client's next line.
    pub sasl: Option<Exchange>,
}

/// What the client sends in this state: a command, or the next line of the
/// SASL exchange waiting for it.
pub(super) enum Input {
    Command(Result<Command, ParseError>),
    SaslLine(Exchange, Result<Vec<u8>, ParseError>),
}

impl Authorization {
    pub fn new() -> Authorization {
        Authorization { user: None, failures: 0, foreign: 0, sasl: None }
    }

    /// After the TLS handshake: everything said before it is forgotten, but
    /// the session's failures and foreign lines still count.
    pub fn after_tls(self) -> Authorization {
        Authorization { failures: self.failures, foreign: self.foreign, ..Authorization::new() }
    }

    /// Goes on in this state.
    pub fn stay(self) -> Next {
        Next::In(State::Authorization(self))
    }

    /// The next complete line of `input`, read as this state expects it:
    /// with a SASL exchange waiting, its next line (and the exchange).
    pub fn next_input(&mut self, parser: &mut Parser, input: &mut &[u8]) -> Option<Input> {
        let Some(exchange) = self.sasl.take() else {
            return parser.next(input).map(Input::Command);
        };
        match parser.next_sasl(input) {
            Some(line) => Some(Input::SaslLine(exchange, line)),
            None => {
                self.sasl = Some(exchange);
                None
            }
        }
    }
}

/// Answers one line in the AUTHORIZATION state: the state's command table.
pub(super) fn dispatch<T: Transport>(
    s: &mut Session<'_, T>,
    mut a: Authorization,
    input: Input,
    p: Pending,
) -> Result<Step, Stop> {
    let command = match input {
        Input::SaslLine(exchange, line) => return sasl::response(s, a, exchange, line, p),
        Input::Command(Err(e)) => return bad_line(s, a, e, p),
        Input::Command(Ok(command)) => command,
    };
    let answered = match command {
        Command::Capa => capa::capa(s, p, None)?,
        Command::Lang(tag) => capa::lang(s, p, tag)?,
        // UTF-8 credentials are accepted with or without it (CAPA says
        // `UTF8 USER`); message content is never changed.
        Command::Utf8 => s.out.ok(p, "UTF8 enabled")?,
        Command::Quit => return Ok((s.out.ok(p, "bye")?, Next::Close(End::Quit))),
        Command::Stls => return stls(s, a, p),
        Command::User(_) | Command::Pass(_) | Command::Apop { .. } if !s.plaintext_allowed() => {
            s.out.err_code(p, Code::Auth, "plaintext login is not allowed without TLS: use STLS or port 995")?
        }
        Command::User(name) => {
            a.user = Some(name);
            // The same answer whether or not the user exists.
            s.out.ok(p, "send PASS")?
        }
        Command::Pass(password) => match a.user.take() {
            Some(name) => return login::with_password(s, a, &name, &password, p),
            None => s.out.err(p, "give USER first")?,
        },
        Command::Apop { name, digest } => match s.challenge.clone() {
            Some(challenge) => return login::with_apop(s, a, &name, &challenge, &digest, p),
            None => s.out.err(p, "APOP is not enabled")?,
        },
        Command::Auth(None) => sasl::mechanisms(s, p)?,
        Command::Auth(Some((mechanism, initial))) => return sasl::start(s, a, &mechanism, initial, p),
        Command::Stat
        | Command::List(_)
        | Command::Uidl(_)
        | Command::Retr(_)
        | Command::Top { .. }
        | Command::Dele(_)
        | Command::Noop
        | Command::Rset => s.out.err(p, "command not valid before login")?,
    };
    Ok((answered, a.stay()))
}

/// STLS (RFC 2595): `+OK`, then the handshake; refused on TLS already or
/// without certificates.
fn stls<T: Transport>(s: &mut Session<'_, T>, a: Authorization, p: Pending) -> Result<Step, Stop> {
    Ok(match s.link.tls {
        Some(_) if !s.out.get_ref().is_tls() => (s.out.ok(p, "begin TLS negotiation")?, Next::StartTls(a)),
        Some(_) => (s.out.err(p, "already using TLS")?, a.stay()),
        None => (s.out.err(p, "TLS is not available")?, a.stay()),
    })
}

/// A line that is not a command: one `-ERR`. Lines that are no POP3
/// command at all (another protocol talking to our port) are counted, and
/// the one that passes `max_bad_commands` is answered with the closing
/// `-ERR` alone: one reply per command, always.
fn bad_line<T: Transport>(
    s: &mut Session<'_, T>,
    mut a: Authorization,
    e: ParseError,
    p: Pending,
) -> Result<Step, Stop> {
    if e.is_foreign() {
        a.foreign += 1;
        if a.foreign > s.config.max_bad_commands {
            return Ok((s.out.err(p, "too many invalid commands, closing")?, Next::Close(End::TooManyBadCommands)));
        }
    }
    Ok((s.out.err(p, e.message())?, a.stay()))
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
