//! How a session ended and its one log line: who, from where, TLS, what was retrieved and deleted, and the end.

use std::fmt;
use std::net::IpAddr;

/// How a session ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    /// QUIT was given but UPDATE failed; nothing was deleted.
    UpdateFailed,
    /// The client was idle too long, or did not log in within the login deadline.
    Timeout,
    /// Closed from outside before login: by admission to make room for a
    /// new connection, at the deadline, or at SIGTERM.
    Closed,
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
pub(super) struct Stats {
    pub retrieved: u64,
    pub retrieved_bytes: u64,
    pub deleted: usize,
    pub deleted_bytes: u64,
}

/// The session's one log line, for the caller to log once it has released
/// the session's resources, and what decides whether it is rate limited.
pub struct Summary {
    /// The session logged in (its line is never rate limited).
    pub logged_in: bool,
    /// The session went on in another process, which logs its line.
    pub handed_over: bool,
    /// The client's address (behind a trusted proxy, the one its PROXY
    /// header named), for the per-address log budget.
    pub client: Option<IpAddr>,
    /// The line itself (`Display`).
    pub(super) line: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}
