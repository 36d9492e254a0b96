//! How a session was started: the connection it serves (`Link`) and the mode that decides what it may use (`Mode`).
//!
//! Each entry point builds these: the daemon (`daemon.rs`) a `Link` per
//! accepted connection and `Mode::Daemon`; inetd mode (`inetd.rs`)
//! `Mode::Inetd`, with a `Split` when system accounts need the root helper;
//! inetd mode's user process after the login (`handover.rs`)
//! `Mode::Resumed`. What exists only in one mode is in that variant alone.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::accounts::Account;
use crate::config::{Config, Plaintext};
use crate::conn::Relayed;
use crate::penalty::Penalties;
use crate::privsep::Helper;
use crate::tls::Tls;

/// The connection a session serves, as its listener (or inetd's options)
/// set it up.
pub struct Link<'a> {
    pub config: &'a Config,
    /// The TLS setup, when certificates are configured.
    pub tls: Option<&'a Tls>,
    /// Handshake before the greeting (port 995).
    pub implicit_tls: bool,
    /// Where plaintext logins are allowed without TLS.
    pub plaintext: Plaintext,
    /// The connection's peer (None on pipes); behind a trusted proxy the
    /// session takes the client's address from the PROXY header.
    pub peer: Option<SocketAddr>,
}

/// How the session was started, and what that gives it.
pub enum Mode<'a> {
    /// A thread of the daemon: admission watches it (and may close it to
    /// make room or at the deadline), failed logins are spaced in memory
    /// shared by all sessions, and system accounts are checked by the root
    /// helper the daemon started.
    Daemon { watch: &'a dyn Watch, penalties: &'a Penalties, helper: Option<&'a Helper> },
    /// A process started by inetd: failed logins are spaced through
    /// state_dir; with system accounts (`split`) the root parent checks the
    /// credentials and becomes the user, and this process relays.
    Inetd { watch: &'a dyn Watch, penalties: &'a Penalties, split: Option<Split<'a>> },
    /// inetd mode with system accounts, after the login: the user's own
    /// process, behind the relay. It answers the login command (opening
    /// the maildrop) and serves the TRANSACTION state.
    Resumed { name: String, account: Account },
}

/// inetd mode with system accounts: the root helper to ask, and the relay
/// to hand the client to after its login.
pub struct Split<'a> {
    pub helper: &'a Helper,
    pub relay: &'a dyn HandOver,
}

impl Mode<'_> {
    /// The watch on a session before login (None once resumed).
    pub fn watch(&self) -> Option<&dyn Watch> {
        match self {
            Mode::Daemon { watch, .. } | Mode::Inetd { watch, .. } => Some(*watch),
            Mode::Resumed { .. } => None,
        }
    }

    /// The failed-login records the answers are spaced by.
    pub fn penalties(&self) -> Option<&Penalties> {
        match self {
            Mode::Daemon { penalties, .. } | Mode::Inetd { penalties, .. } => Some(penalties),
            Mode::Resumed { .. } => None,
        }
    }

    /// The root helper that checks system accounts' passwords.
    pub fn helper(&self) -> Option<&Helper> {
        match self {
            Mode::Daemon { helper, .. } => *helper,
            Mode::Inetd { split, .. } => split.as_ref().map(|s| s.helper),
            Mode::Resumed { .. } => None,
        }
    }

    /// The relay a login hands the client to (inetd mode, system accounts).
    pub fn relay(&self) -> Option<&dyn HandOver> {
        match self {
            Mode::Inetd { split: Some(split), .. } => Some(split.relay),
            _ => None,
        }
    }

    /// Whether the client's bytes come through the pre-login process's
    /// relay (which holds the TLS, if any).
    pub fn relayed(&self) -> bool {
        matches!(self, Mode::Resumed { .. })
    }

    /// Whether the session was closed from outside (admission, SIGTERM).
    pub fn cancelled(&self) -> bool {
        self.watch().is_some_and(|w| w.cancelled())
    }

    /// Waits until `until`; false, at once, if the session is closed from
    /// outside meanwhile (a waiting session holds no place it lost).
    pub fn pause(&self, until: Instant) -> bool {
        match self.watch() {
            Some(watch) => watch.pause(until),
            None => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                true
            }
        }
    }
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

/// What the caller learns of a session before its login, and how it closes
/// one from outside (the daemon's admission, inetd mode's deadline).
pub trait Watch {
    /// The session's client is `ip` (the address a trusted proxy's PROXY
    /// header gave): counted there from now on for the per-address limit.
    /// False when that address already holds `max_sessions_per_ip`
    /// sessions that have logged in: the session is to be refused.
    fn client(&self, ip: IpAddr, config: &Config) -> bool;
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

/// inetd mode with system accounts: after a successful check the helper's
/// process has become the user, and this session only relays between its
/// client and it. `pending` is what the client sent after its login command.
pub trait HandOver {
    fn relay(&self, conn: &mut dyn Relayed, pending: &[u8]) -> io::Result<()>;
}
