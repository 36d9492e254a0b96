//! The two protocol states as types, each holding what exists in it: AUTHORIZATION (a USER name, failures, a SASL exchange) and TRANSACTION (the locked maildrop).
//!
//! Their tables of commands are in `authorization.rs` and `transaction.rs`;
//! what every login and the maildrop's opening share (`login.rs`,
//! `sasl.rs`, `open.rs`, `capa.rs`, `update.rs`) names the states from
//! here, so imports point one way: tables -> the steps they call -> states.

use super::expire::Expiry;
use super::{Next, State};
use crate::lock::SessionLock;
use crate::maildrop::{Maildrop, Message};
use crate::parser::{Command, ParseError, Parser};
use crate::sasl::Exchange;

/// What the AUTHORIZATION state holds.
pub(super) struct Authorization {
    /// The name USER gave, for the next PASS (any login forgets it).
    pub user: Option<String>,
    /// Failed logins in this session: the answer's delay grows with them,
    /// and `MAX_AUTH_FAILURES` ends the session.
    pub failures: u32,
    /// Lines that were no POP3 command at all (another protocol talking to
    /// the port): `max_bad_commands` of them end the session.
    pub foreign: u32,
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

/// What the TRANSACTION state holds: the user's maildrop, locked for this
/// session, and their EXPIRE and LOGIN-DELAY policy.
pub(super) struct Transaction {
    pub user: String,
    pub maildrop: Maildrop,
    /// Held until the session ends, UPDATE included.
    pub lock: SessionLock,
    pub expiry: Expiry,
}

impl Transaction {
    pub fn new(user: String, maildrop: Maildrop, lock: SessionLock, expiry: Expiry) -> Transaction {
        Transaction { user, maildrop, lock, expiry }
    }

    /// The message numbered `n`, or the `-ERR` text for it.
    pub fn message(&self, n: u32) -> Result<Message, &'static str> {
        match self.maildrop.get(n) {
            Some(m) => Ok(m),
            None if self.maildrop.is_deleted(n) => Err("message is deleted"),
            None => Err("no such message"),
        }
    }
}
