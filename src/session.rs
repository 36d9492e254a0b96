//! One POP3 session, generic over its transport: greeting, AUTHORIZATION, TRANSACTION, UPDATE, and the session's log line.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::limits::{
    AUTH_FAIL_DELAY, AUTH_FAIL_DELAY_MAX_STEPS, MAX_AUTH_FAILURES, READ_BUFFER, WRITE_BUFFER,
};
use crate::lock::SessionLock;
use crate::mbox::{Maildrop, MaildropError, Part};
use crate::parser::{Command, Parser};
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
    },
    Transaction {
        user: String,
        drop: Maildrop,
        _lock: SessionLock,
    },
}

/// What a command handler asks the loop to do next.
enum Next {
    Continue,
    Close(End),
}

/// Serves one session on `io` from greeting to close. `peer` names the
/// client in the log.
pub fn serve<T: Transport>(config: &Config, io: T, peer: &str) -> End {
    let mut s = Session {
        config,
        out: BufWriter::with_capacity(WRITE_BUFFER, io),
        state: State::Authorization {
            user: None,
            failures: 0,
            bad: 0,
        },
        challenge: config
            .apop
            .then(|| apop_challenge(&config.hostname))
            .flatten(),
        stats: Stats::default(),
        logged_in: None,
    };
    let end = s.run().unwrap_or_else(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            let _ = s
                .reply_err("autologout: idle too long")
                .and_then(|_| s.out.flush());
            End::Timeout
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset => End::Disconnected,
        _ => {
            log::debug!("session I/O error with {peer}: {e}");
            End::IoError
        }
    });
    let st = &s.stats;
    log::info!(
        "session end: user={} peer={peer} retr={}/{} dele={}/{} end={end:?}",
        s.logged_in.as_deref().unwrap_or("-"),
        st.retrieved,
        st.retrieved_bytes,
        st.deleted,
        st.deleted_bytes,
    );
    end
}

struct Session<'a, T: Transport> {
    config: &'a Config,
    out: BufWriter<T>,
    state: State,
    challenge: Option<String>,
    stats: Stats,
    logged_in: Option<String>,
}

impl<T: Transport> Session<'_, T> {
    fn run(&mut self) -> io::Result<End> {
        self.out.get_mut().set_timeout(self.config.timeout_login)?;
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
            let n = match self.out.get_mut().read(&mut buf) {
                Ok(0) => return Ok(End::Disconnected),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut input = &buf[..n];
            while let Some(parsed) = parser.next(&mut input) {
                let next = match parsed {
                    Ok(cmd) => self.command(cmd)?,
                    Err(e) => self.bad_command(e.message())?,
                };
                if let Next::Close(end) = next {
                    self.out.flush()?;
                    return Ok(end);
                }
            }
        }
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
            (_, Command::Noop) if matches!(self.state, State::Transaction { .. }) => {
                self.out.write_all(b"+OK\r\n").map(|_| Next::Continue)
            }
            (State::Authorization { .. }, Command::Quit) => {
                self.reply_ok("bye")?;
                Ok(Next::Close(End::Quit))
            }
            (State::Authorization { .. }, Command::User(name)) => {
                if let State::Authorization { user, .. } = &mut self.state {
                    *user = Some(name);
                }
                // The same answer whether or not the user exists.
                self.reply_ok("send PASS").map(|_| Next::Continue)
            }
            (State::Authorization { user: None, .. }, Command::Pass(_)) => {
                self.bad_command("give USER first")
            }
            (
                State::Authorization {
                    user: Some(name), ..
                },
                Command::Pass(password),
            ) => {
                let name = name.clone();
                let result = users::lookup(&self.config.users_file, &name).map(|secret| {
                    users::valid_name(&name) && users::check_password(secret.as_ref(), &password)
                });
                self.login(name, result)
            }
            (State::Authorization { .. }, Command::Apop { name, digest }) => {
                match &self.challenge {
                    None => self.bad_command("APOP is not enabled"),
                    Some(challenge) => {
                        let result = users::lookup(&self.config.users_file, &name).map(|secret| {
                            users::valid_name(&name)
                                && users::check_apop(secret.as_ref(), challenge, &digest)
                        });
                        self.login(name, result)
                    }
                }
            }
            (State::Transaction { .. }, cmd) => self.transaction(cmd),
            (State::Authorization { .. }, _) => self.bad_command("command not valid before login"),
        }
    }

    fn capa(&mut self) -> io::Result<()> {
        let mut text = String::from("+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n");
        match self.state {
            State::Authorization { .. } => text.push_str("USER\r\n"),
            State::Transaction { .. } => {
                let _ = write!(
                    text,
                    "IMPLEMENTATION pop3d-{}\r\n",
                    env!("CARGO_PKG_VERSION")
                );
            }
        }
        text.push_str(".\r\n");
        self.out.write_all(text.as_bytes())
    }

    /// Finishes USER/PASS or APOP: `checked` is the credential check's result.
    fn login(&mut self, name: String, checked: io::Result<bool>) -> io::Result<Next> {
        let State::Authorization { user, failures, .. } = &mut self.state else {
            return Ok(Next::Continue);
        };
        *user = None;
        match checked {
            Err(e) => {
                log::error!(
                    "cannot read users file {}: {e}",
                    self.config.users_file.display()
                );
                self.reply_err("[SYS/TEMP] authentication unavailable, try later")?;
                return Ok(Next::Continue);
            }
            Ok(false) => {
                *failures += 1;
                let failures = *failures;
                log::info!("login failed for {name:?}");
                std::thread::sleep(AUTH_FAIL_DELAY * failures.min(AUTH_FAIL_DELAY_MAX_STEPS));
                self.reply_err("[AUTH] invalid user name or password")?;
                if failures >= MAX_AUTH_FAILURES {
                    return Ok(Next::Close(End::TooManyAuthFailures));
                }
                return Ok(Next::Continue);
            }
            Ok(true) => {}
        }
        let lock = match SessionLock::try_acquire(&self.config.state_dir, &name) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                self.reply_err("[IN-USE] maildrop is in use by another session")?;
                return Ok(Next::Continue);
            }
            Err(e) => {
                log::error!(
                    "cannot lock maildrop of {name} in {}: {e}",
                    self.config.state_dir.display()
                );
                self.reply_err("[SYS/TEMP] maildrop unavailable, try later")?;
                return Ok(Next::Continue);
            }
        };
        let journal = self.config.state_dir.join(format!("{name}.journal"));
        match Maildrop::open(self.config.mailbox_path(&name), journal, &self.config.mbox) {
            Ok(drop) => {
                let (n, size) = drop.stat();
                log::info!("login {name}: {n} messages, {size} octets");
                self.logged_in = Some(name.clone());
                self.state = State::Transaction {
                    user: name,
                    drop,
                    _lock: lock,
                };
                self.out
                    .get_mut()
                    .set_timeout(self.config.timeout_session)?;
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
                    let why = if drop.is_deleted(n) {
                        "message is deleted"
                    } else {
                        "no such message"
                    };
                    write!(out, "-ERR {why}\r\n")?;
                    return Ok(Next::Continue);
                };
                let size = msg.size;
                match cmd {
                    Command::List(_) => write!(out, "+OK {n} {size}\r\n")?,
                    Command::Uidl(_) => write!(out, "+OK {n} {}\r\n", msg.uid)?,
                    Command::Dele(_) => {
                        drop.delete(n);
                        write!(out, "+OK message {n} deleted\r\n")?;
                    }
                    Command::Retr(_) | Command::Top { .. } => {
                        let part = match cmd {
                            Command::Top { lines, .. } => Part::Top(lines),
                            _ => Part::Whole,
                        };
                        write!(out, "+OK {size} octets\r\n")?;
                        let sent = drop.send(n, part, out).unwrap_or(Ok(0));
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
                    _ => unreachable!("outer match admits only message commands"),
                }
            }
            Command::Rset => {
                drop.reset();
                let (n, size) = drop.stat();
                write!(out, "+OK maildrop has {n} messages ({size} octets)\r\n")?;
            }
            Command::Quit => return self.update(),
            Command::User(_) | Command::Pass(_) | Command::Apop { .. } => {
                out.write_all(b"-ERR already logged in\r\n")?;
            }
            Command::Noop | Command::Capa => unreachable!("answered in every state"),
        }
        Ok(Next::Continue)
    }

    /// QUIT in TRANSACTION: the UPDATE state.
    fn update(&mut self) -> io::Result<Next> {
        let state = std::mem::replace(
            &mut self.state,
            State::Authorization {
                user: None,
                failures: 0,
                bad: 0,
            },
        );
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
                log::error!("update of {user}'s maildrop failed, nothing deleted: {e}");
                self.reply_err(&format!(
                    "[{}] could not remove deleted messages: {e}",
                    code_of(&e)
                ))?;
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(format!("<{hex}.{now}@{hostname}>"))
}

/// The response code for a maildrop error.
fn code_of(e: &MaildropError) -> &'static str {
    if e.is_temporary() {
        "SYS/TEMP"
    } else {
        "SYS/PERM"
    }
}
