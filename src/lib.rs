//! pop3d as a library: every module of the server, for the binary and the fuzz targets; not a public API.
//!
//! The modules, in the order data flows through them, are described in
//! README.md ("Layout") and DESIGN.md ("Structure").

// `unsafe` is allowed in `sys` only (see there).
#![deny(unsafe_code)]

pub mod accounts;
pub mod admission;
pub mod config;
pub mod conn;
pub mod daemon;
pub mod decimal;
pub mod der;
pub mod handover;
pub mod hex;
pub mod inetd;
pub mod known;
pub mod limits;
pub mod lock;
pub mod logging;
pub mod loglimit;
pub mod maildrop;
pub mod nofollow;
pub mod parser;
pub mod penalty;
pub mod perms;
pub mod policy;
pub mod privsep;
pub mod proxy;
pub mod records;
pub mod relay;
pub mod reply;
pub mod sasl;
pub mod saslprep;
pub mod session;
pub mod shutdown;
pub mod side_threads;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls;
pub mod transport;
pub mod users;

#[cfg(test)]
mod testkit;
