//! The AUTHORIZATION state's table (RFC 1939 section 4): every command's answer in it (what it holds: `state.rs`).

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use super::state::{Authorization, Input};
use super::{capa, login, sasl, End, Next, Session, Step, Stop};
use crate::hex;
use crate::parser::{Command, ParseError};
use crate::reply::{Code, Pending};
use crate::transport::Transport;

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
