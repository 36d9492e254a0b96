//! The TRANSACTION state's table (RFC 1939 section 5): every command's answer in it (what it holds, the maildrop: `state.rs`).

use std::io;

use super::state::Transaction;
use super::{capa, update, Next, Session, State, Step, Stop};
use crate::maildrop::Part;
use crate::parser::{Command, ParseError};
use crate::reply::{Answered, Code, Pending};
use crate::transport::Transport;

/// Answers one command in the TRANSACTION state: the state's command table.
pub(super) fn dispatch<T: Transport>(
    s: &mut Session<'_, T>,
    mut t: Box<Transaction>,
    command: Result<Command, ParseError>,
    p: Pending,
) -> Result<Step, Stop> {
    let command = match command {
        Ok(command) => command,
        Err(e) => return Ok((s.out.err(p, e.message())?, Next::In(State::Transaction(t)))),
    };
    let answered = match command {
        Command::Quit => return update::run(s, t, p),
        Command::Capa => capa::capa(s, p, Some(&t))?,
        Command::Lang(tag) => capa::lang(s, p, tag)?,
        Command::Stat => {
            let (n, size) = t.maildrop.stat();
            s.out.ok(p, format_args!("{n} {size}"))?
        }
        Command::List(None) => list(s, &t, p)?,
        Command::List(Some(n)) => match t.message(n) {
            Ok(m) => s.out.ok(p, format_args!("{n} {}", m.size))?,
            Err(why) => s.out.err(p, why)?,
        },
        Command::Uidl(None) => uidl_list(s, &t, p)?,
        Command::Uidl(Some(n)) => match t.message(n) {
            Ok(_) => s.out.ok(p, format_args!("{n} {}", t.maildrop.uidl(n).unwrap_or_default()))?,
            Err(why) => s.out.err(p, why)?,
        },
        Command::Retr(n) => retrieve(s, &mut t, n, Part::Whole, p)?,
        Command::Top { msg, lines } => retrieve(s, &mut t, msg, Part::Top(lines), p)?,
        Command::Dele(n) => match t.message(n) {
            Ok(_) => {
                t.maildrop.delete(n);
                s.out.ok(p, format_args!("message {n} deleted"))?
            }
            Err(why) => s.out.err(p, why)?,
        },
        Command::Rset => {
            t.maildrop.reset();
            let (n, size) = t.maildrop.stat();
            s.out.ok(p, format_args!("maildrop has {n} messages ({size} octets)"))?
        }
        Command::Noop => s.out.ok_bare(p)?,
        Command::User(_) | Command::Pass(_) | Command::Apop { .. } | Command::Auth(_) | Command::Stls => {
            s.out.err(p, "already logged in")?
        }
        Command::Utf8 => s.out.err(p, "UTF8 is only valid before login")?,
    };
    Ok((answered, Next::In(State::Transaction(t))))
}

/// LIST: every message not deleted, with its size.
fn list<T: Transport>(s: &mut Session<'_, T>, t: &Transaction, p: Pending) -> io::Result<Answered> {
    let (n, size) = t.maildrop.stat();
    let mut listing = s.out.listing(p, format_args!("{n} messages ({size} octets)"))?;
    for (i, m) in t.maildrop.live() {
        listing.line(format_args!("{i} {}", m.size))?;
    }
    listing.end()
}

/// UIDL: every message not deleted, with its unique id.
fn uidl_list<T: Transport>(s: &mut Session<'_, T>, t: &Transaction, p: Pending) -> io::Result<Answered> {
    let mut listing = s.out.listing(p, "unique-id listing follows")?;
    for (i, _) in t.maildrop.live() {
        listing.line(format_args!("{i} {}", t.maildrop.uidl(i).unwrap_or_default()))?;
    }
    listing.end()
}

/// RETR (`Part::Whole`) and TOP: the message streamed, byte-stuffed. A
/// whole message sent (RETR, or a TOP whose line count reached the end of
/// the body, fetchmail's `TOP n 99999999`) is a retrieval: for the log
/// line, Maildir's seen flag and EXPIRE alike.
fn retrieve<T: Transport>(
    s: &mut Session<'_, T>,
    t: &mut Transaction,
    n: u32,
    part: Part,
    p: Pending,
) -> io::Result<Answered> {
    let size = match t.message(n) {
        Ok(m) => m.size,
        Err(why) => return s.out.err(p, why),
    };
    if !t.maildrop.still_listed(n)? {
        log::warn!("mailbox changed by another program during the session");
        return s.out.err_code(p, Code::SysTemp, "mailbox changed since login, log in again");
    }
    let mut message = s.out.listing(p, format_args!("{size} octets"))?;
    let sent = t.maildrop.send(n, part, &mut message).unwrap_or(Ok(0)).and_then(|sent| match part {
        // Changed on disk since it was listed: never end a short message
        // with "." as if it were whole.
        Part::Whole if sent != size => Err(io::Error::other(format!("{sent} of {size} octets sent: the file changed"))),
        _ => Ok(sent),
    });
    let sent = sent.inspect_err(|e| {
        // The +OK is out; the only honest end is to close.
        log::error!("sending message {n} failed: {e}");
    })?;
    let answered = message.end()?;
    if sent == size {
        t.expiry.retrieved(&t.maildrop.uidl(n).unwrap_or_default());
        t.maildrop.retrieved(n);
        s.stats.retrieved += 1;
        s.stats.retrieved_bytes += size;
    }
    Ok(answered)
}
