//! The TRANSACTION state (RFC 1939 section 5, RFC 2449 TOP and UIDL): STAT, LIST, UIDL, RETR, TOP, DELE, NOOP, RSET on the maildrop opened at login.

use std::io::{self, Write};

use super::{Next, Session, State};
use crate::maildrop::Part;
use crate::parser::Command;
use crate::reply::Code;
use crate::transport::Transport;

impl<T: Transport> Session<'_, T> {
    /// A command in the TRANSACTION state (CAPA and QUIT aside).
    pub(super) fn transaction(&mut self, cmd: Command) -> io::Result<Next> {
        let State::Transaction { drop, expiry, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        let out = &mut self.out;
        match cmd {
            Command::Stat => {
                let (n, size) = drop.stat();
                out.ok(format_args!("{n} {size}"))?;
            }
            Command::List(None) => {
                let (n, size) = drop.stat();
                out.ok(format_args!("{n} messages ({size} octets)"))?;
                for (i, m) in drop.live() {
                    write!(out, "{i} {}\r\n", m.size)?;
                }
                out.write_all(b".\r\n")?;
            }
            Command::Uidl(None) => {
                out.ok("unique-id listing follows")?;
                for (i, _) in drop.live() {
                    write!(out, "{i} {}\r\n", drop.uidl(i).unwrap_or_default())?;
                }
                out.write_all(b".\r\n")?;
            }
            Command::List(Some(n))
            | Command::Uidl(Some(n))
            | Command::Retr(n)
            | Command::Top { msg: n, .. }
            | Command::Dele(n) => {
                let Some(msg) = drop.get(n) else {
                    out.err(if drop.is_deleted(n) { "message is deleted" } else { "no such message" })?;
                    return Ok(Next::Continue);
                };
                let size = msg.size;
                match cmd {
                    Command::List(_) => out.ok(format_args!("{n} {size}"))?,
                    Command::Uidl(_) => out.ok(format_args!("{n} {}", drop.uidl(n).unwrap_or_default()))?,
                    Command::Retr(_) | Command::Top { .. } => {
                        if !drop.still_listed(n)? {
                            log::warn!("mailbox changed by another program during the session");
                            out.err_code(Code::SysTemp, "mailbox changed since login, log in again")?;
                            return Ok(Next::Continue);
                        }
                        let part = match cmd {
                            Command::Top { lines, .. } => Part::Top(lines),
                            _ => Part::Whole,
                        };
                        out.ok(format_args!("{size} octets"))?;
                        let sent = drop.send(n, part, out).unwrap_or(Ok(0)).and_then(|sent| match part {
                            // Changed on disk since it was listed: never end a
                            // short message with "." as if it were whole.
                            Part::Whole if sent != size => {
                                Err(io::Error::other(format!("{sent} of {size} octets sent: the file changed")))
                            }
                            _ => Ok(sent),
                        });
                        let sent = match sent {
                            Ok(sent) => sent,
                            Err(e) => {
                                // The +OK is out; the only honest end is to close.
                                log::error!("sending message {n} failed: {e}");
                                return Err(e);
                            }
                        };
                        out.write_all(b".\r\n")?;
                        // RETR, or a TOP whose line count reached the end of
                        // the body (fetchmail's `TOP n 99999999`): the whole
                        // message went out, a retrieval for the log, Maildir's
                        // seen flag and EXPIRE alike.
                        if sent == size {
                            expiry.retrieved(&drop.uidl(n).unwrap_or_default());
                            drop.retrieved(n);
                            self.stats.retrieved += 1;
                            self.stats.retrieved_bytes += size;
                        }
                    }
                    // DELE, the one command of this arm left.
                    _ => {
                        drop.delete(n);
                        out.ok(format_args!("message {n} deleted"))?;
                    }
                }
            }
            Command::Rset => {
                drop.reset();
                let (n, size) = drop.stat();
                out.ok(format_args!("maildrop has {n} messages ({size} octets)"))?;
            }
            Command::Noop => out.write_all(b"+OK\r\n")?,
            Command::User(_) | Command::Pass(_) | Command::Apop { .. } | Command::Auth(_) | Command::Stls => {
                out.err("already logged in")?;
            }
            // Answered before the state is looked at (see `Session::command`).
            Command::Utf8 => out.err("UTF8 is only valid before login")?,
            Command::Capa | Command::Quit | Command::Lang(_) => {}
        }
        Ok(Next::Continue)
    }
}
