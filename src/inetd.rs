//! inetd mode's session: one client on stdin/stdout in a process that already gave up root.
//!
//! It keeps the pre-login deadline, and shares state with other sessions
//! through files in state_dir.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::limits;
use crate::session::Split;
use crate::tls::Tls;
use crate::{lock, loglimit, penalty, sasl, session, sys, transport};

/// Serves the one session; the process runs as `user` already.
pub fn serve(config: &Config, tls: Option<&Tls>, implicit_tls: bool, split: Option<Split>) -> Result<(), String> {
    sys::no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    if split.is_none() {
        sasl::load_fake_key_secret(&config.state_dir);
        lock::remove_stale_dotlocks(&lock::Records::dir_in(&config.state_dir));
    }
    // Each inetd session is a process: the log budget is shared through a file.
    loglimit::share_through(config.state_dir.join("logbudget"));
    // Each inetd session is a process: failed logins are shared through a file.
    let penalties = penalty::Penalties::in_file(
        config.state_dir.join("penalties"),
        config.network_prefix_ipv4,
        config.network_prefix_ipv6,
    );
    let link = session::Link { config, tls, implicit_tls, plaintext: config.plaintext_auth, peer: sys::peer_addr(0) };
    let mode = session::Mode::Inetd { watch: &InetdWatch, penalties: &penalties, split };
    // One deadline for everything before login, the TLS handshake included
    // however its bytes arrive: the process ends when it passes.
    let deadline = config.timeout_login * limits::LOGIN_TIME_FACTOR;
    let watchdog = std::thread::Builder::new().spawn(move || {
        std::thread::sleep(deadline + limits::REAP_GRACE);
        if !LOGGED_IN.load(Ordering::SeqCst) {
            if loglimit::allow(None) {
                log::info!("session end: not logged in within {}s", deadline.as_secs());
            }
            std::process::exit(0);
        }
    });
    if watchdog.is_err() {
        // No thread to be had (the account's task limit, under a flood of
        // connections): the kernel's alarm ends the process instead, unlogged.
        let seconds = (deadline + limits::REAP_GRACE).as_secs();
        sys::alarm(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
    let stdio = transport::Stdio::new().map_err(|e| format!("stdin/stdout: {e}"))?;
    let summary = session::serve(&link, &mode, Box::new(stdio) as transport::Boxed);
    if summary.handed_over {
        return Ok(());
    }
    if summary.logged_in || loglimit::allow(summary.client) {
        log::info!("{summary}");
    }
    Ok(())
}

/// Whether inetd mode's one session has logged in.
static LOGGED_IN: AtomicBool = AtomicBool::new(false);

/// inetd mode's watch: the login stops the pre-login deadline.
struct InetdWatch;

impl session::Watch for InetdWatch {
    /// inetd counts no sessions (its supervisor does): any client is fine.
    fn client(&self, _ip: std::net::IpAddr, _config: &Config) -> bool {
        true
    }

    fn logged_in(&self) {
        LOGGED_IN.store(true, Ordering::SeqCst);
        sys::alarm(0);
    }

    fn cancelled(&self) -> bool {
        false
    }
}
