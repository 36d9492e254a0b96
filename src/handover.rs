//! inetd mode with system accounts: a root helper checks credentials, then becomes the user for the session.
//!
//! The started (root) process checks credentials for a child that speaks
//! POP3 unprivileged, then becomes the user and runs the rest of the
//! session, which the child relays.
//!
//! Before login: the started process, root, is the credentials helper
//! (`privsep`); its child runs as `user` and holds the client, TLS
//! included. After a successful check the started process makes the
//! user's state directory, switches to the account's uid and gid for good
//! and serves the maildrop over a socket pair; the child relays between it
//! and the client. Nothing the child sends is trusted beyond the bounded
//! requests the helper parses. state_dir is root's: the child writes only
//! `state_dir/shared`, each user's session only `state_dir/users/NAME`.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use crate::config::Config;
use crate::inetd;
use crate::limits::{LOGIN_TIME_FACTOR, MAX_AUTH_FAILURES, REAP_GRACE};
use crate::privsep::{self, Helper, Serving};
use crate::relay::Relay;
use crate::session::Split;
use crate::sys::{self, process};
use crate::{lock, session, tls};

/// Serves the one session, split as above.
pub fn serve(config: &Config, implicit_tls: bool) -> Result<(), String> {
    if !sys::is_root() {
        return Err("`accounts = system` with -i needs pop3d started as root: after the login the session \
                    runs as the mailbox's owner"
            .into());
    }
    let user = config.user.clone().unwrap_or_default();
    let (uid, gid) = sys::user_ids(&user).ok_or_else(|| format!("user {user:?} does not exist"))?;
    let state = open_dir(&config.state_dir)?;
    process::own_dir_at(state.as_fd(), "shared", uid, gid, 0o700).map_err(|e| state_error(config, "shared", e))?;
    process::own_dir_at(state.as_fd(), "users", 0, 0, 0o711).map_err(|e| state_error(config, "users", e))?;
    let (helper_end, session_end) = process::seqpacket_pair().map_err(|e| format!("socketpair: {e}"))?;
    let (user_end, relay_end) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    match process::fork().map_err(|e| format!("fork: {e}"))? {
        process::Forked::Child => {
            drop((helper_end, user_end));
            let result = pre_login(config, implicit_tls, &user, session_end, relay_end);
            if let Err(e) = &result {
                log::error!("{e}");
            }
            process::exit_now(if result.is_ok() { 0 } else { 1 })
        }
        process::Forked::Parent(child) => {
            drop((session_end, relay_end));
            // The client is the child's: this process keeps only its address, for the log.
            let peer = sys::peer_addr(0);
            process::release_stdio().map_err(|e| format!("stdin/stdout: {e}"))?;
            let until = Instant::now() + config.timeout_login * LOGIN_TIME_FACTOR + REAP_GRACE;
            let serving = Serving::OneSession { checks: MAX_AUTH_FAILURES, until };
            let login = privsep::serve(&helper_end, &config.account_files, serving);
            drop(helper_end);
            match login {
                Some(login) => {
                    let result = as_the_user(config, &state, uid, peer, login, user_end);
                    // The relay ends with the session; one that does not is
                    // ended (while root) or left to init (it is not ours to signal).
                    process::end_child(child, Instant::now() + REAP_GRACE);
                    result
                }
                None => {
                    // No login: nothing left to do as root. The child ends by
                    // the deadline, or is ended then (stopped, stuck, or done
                    // with its checks and silent).
                    process::switch_to(uid, gid)?;
                    process::end_child(child, until);
                    Ok(())
                }
            }
        }
    }
}

/// The child: TLS keys are read while still root, then it is `user` for good.
fn pre_login(
    config: &Config,
    implicit_tls: bool,
    user: &str,
    helper: OwnedFd,
    relay: UnixStream,
) -> Result<(), String> {
    let tls = config.tls.clone().map(tls::Tls::load).transpose()?;
    sys::drop_privileges(user)?;
    let mut shared = config.clone();
    shared.state_dir = config.state_dir.join("shared");
    let helper = Helper::new(helper, false);
    let relay = Relay { session: relay, client_fd: 0, timeout: config.timeout_session };
    inetd::serve(&shared, tls.as_ref(), implicit_tls, Some(Split { helper: &helper, relay: &relay }))
}

/// The started process after a successful check: the user's own state
/// directory, then the user's ids, then the rest of the session.
fn as_the_user(
    config: &Config,
    state: &OwnedFd,
    user_uid: u32,
    peer: Option<std::net::SocketAddr>,
    privsep::Login { name, account }: privsep::Login,
    mut relay: UnixStream,
) -> Result<(), String> {
    use std::io::Write;
    if account.uid == user_uid {
        // Running as `user` it could reach other clients' pre-login
        // processes (the same uid): never.
        let _ = relay.write_all(b"-ERR [SYS/PERM] this account cannot collect mail here\r\n");
        return Err(format!("system account {name} is `user`, which pre-login sessions run as: refused"));
    }
    let place = format!("users/{name}");
    let made = sys::open_dir_at(state.as_fd(), "users".as_ref())
        .and_then(|users| process::own_dir_at(users.as_fd(), &name, account.uid, account.gid, 0o700));
    if let Err(e) = made {
        let _ = relay.write_all(b"-ERR [SYS/TEMP] maildrop unavailable, try later\r\n");
        return Err(state_error(config, &place, e));
    }
    process::switch_to(account.uid, account.gid)?;
    sys::no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    let mut own = config.clone();
    own.state_dir = config.state_dir.join(place);
    lock::remove_stale_dotlocks(&lock::Records::dir_in(&own.state_dir));
    let link = session::Link { config: &own, tls: None, implicit_tls: false, plaintext: own.plaintext_auth, peer };
    let mode = session::Mode::Resumed { name, account };
    let summary = session::serve(&link, &mode, Box::new(relay) as crate::transport::Boxed);
    log::info!("{summary}");
    Ok(())
}

/// state_dir, opened without following a link; root's own in this mode.
fn open_dir(dir: &Path) -> Result<OwnedFd, String> {
    let fd = sys::open_dir_at(std::fs::File::open("/").map_err(|e| e.to_string())?.as_fd(), dir.as_os_str())
        .map_err(|e| format!("state_dir {}: {e}", dir.display()))?;
    let m = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?).metadata().map_err(|e| e.to_string())?;
    crate::perms::root_state_dir(dir, &m)?;
    Ok(fd)
}

fn state_error(config: &Config, name: &str, e: std::io::Error) -> String {
    format!("state_dir {}: cannot make {name}: {e}", config.state_dir.display())
}
