//! Daemon mode: binds the listeners, drops root, then serves one OS thread per connection within session limits.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::admission::{Admission, Refused, TaskLimits};
use crate::config::{AccountSource, Config, Listen, Plaintext};
use crate::limits::{
    ACCEPT_RETRY, LIMIT_LOG_INTERVAL, LISTEN_BACKLOG, LOGIN_TIME_FACTOR, OWN_THREADS, PAUSE_STEP, REAP_GRACE,
    REAP_INTERVAL, REFUSE_WRITE_TIMEOUT, SESSION_STACK,
};
use crate::penalty::Penalties;
use crate::privsep::{self, Helper};
use crate::reply::Code;
use crate::session::{self, Link, Mode};
use crate::sys::{self, process};
use crate::tls::Tls;
use crate::transport::Boxed;

/// Binds every `listen` address, switches to `user` when root, and serves
/// until killed. `reload` re-reads the configuration on SIGHUP.
pub fn run(config: Config, reload: impl Fn() -> Result<Config, String> + Send + Sync + 'static) -> Result<(), String> {
    // First, while this process has one thread and holds no key, socket or
    // listener: the root helper for system accounts.
    let helper = match config.accounts {
        AccountSource::System => Some(Arc::new(spawn_helper(&config)?)),
        AccountSource::UsersFile => None,
    };
    // Certificates are read before root is given up: keys are often root's.
    let tls = config.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
    let mut listeners = Vec::new();
    for listen in &config.listen {
        let addr = listen.addr;
        let l = sys::listen(addr, LISTEN_BACKLOG).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        log::info!("listening on {local}{}", if listen.tls { " (TLS)" } else { "" });
        listeners.push((l, listen.clone()));
    }
    if sys::is_root() {
        let user = config.user.as_deref().ok_or("started as root without `user` to switch to")?;
        sys::drop_privileges(user)?;
    }
    sys::no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    crate::sasl::load_fake_key_secret(&config.state_dir);
    crate::lock::remove_stale_dotlocks(&crate::lock::Records::dir_in(&config.state_dir));
    // SIGHUP and SIGTERM are taken by the main thread, below.
    sys::block_signals().map_err(|e| format!("cannot block SIGHUP and SIGTERM: {e}"))?;
    let penalties = Arc::new(Penalties::new(config.network_prefix_ipv4, config.network_prefix_ipv6));
    // The account's limit on tasks, counted as the account it now is.
    let limits = TaskLimits::for_tasks(sys::max_user_tasks(), OWN_THREADS + listeners.len());
    if limits.sessions < config.max_sessions {
        log::warn!(
            "this account may run {} processes and threads (ulimit -u): at most {} sessions at once, not max_sessions \
             = {}; raise the limit for `{}` to serve more",
            limits.threads + OWN_THREADS + listeners.len(),
            limits.sessions,
            config.max_sessions,
            config.user.as_deref().unwrap_or("this account"),
        );
    }
    let shared = Arc::new(Shared {
        current: RwLock::new((Arc::new(config), tls)),
        penalties,
        helper,
        admission: Arc::new(Admission::new(limits)),
        last_limit_log: Mutex::new(None),
        stopping: AtomicBool::new(false),
        reload: Box::new(reload),
    });
    // One deadline for everything before login, however the bytes arrive.
    let reaper = shared.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(REAP_INTERVAL);
        let timeout_login = reaper.current().0.timeout_login;
        reaper.admission.reap(timeout_login * LOGIN_TIME_FACTOR + REAP_GRACE);
        crate::loglimit::summary();
    });
    let mut fds = Vec::new();
    for (l, listen) in listeners {
        fds.push(l.as_raw_fd());
        let shared = shared.clone();
        std::thread::spawn(move || accept_loop(l, listen, shared));
    }
    // SIGHUP reloads at once; SIGTERM stops.
    while let sys::Signal::Hup = sys::wait_signal() {
        shared.reload_now();
    }
    stop(&shared, &fds);
    Ok(())
}

/// SIGTERM: stops accepting, closes the sessions not logged in, gives the
/// others `shutdown_grace` to finish, then ends, never in an UPDATE.
fn stop(shared: &Shared, listeners: &[RawFd]) {
    shared.stopping.store(true, Ordering::SeqCst);
    for &fd in listeners {
        sys::stop_listening(fd);
    }
    let grace = shared.current().0.shutdown_grace;
    let running = shared.admission.close_waiting();
    log::info!("SIGTERM: no longer accepting; {running} sessions logged in get up to {}s to finish", grace.as_secs());
    let deadline = Instant::now() + grace;
    while shared.admission.sessions() > 0 && Instant::now() < deadline {
        std::thread::sleep(PAUSE_STEP);
    }
    crate::shutdown::end_updates();
    log::info!("stopped ({} sessions cut off after the grace period)", shared.admission.sessions());
}

/// The configuration and TLS setup that new sessions get.
type Current = (Arc<Config>, Option<Arc<Tls>>);

struct Shared {
    current: RwLock<Current>,
    penalties: Arc<Penalties>,
    /// System accounts: the root helper's socket, for every session.
    helper: Option<Arc<Helper>>,
    admission: Arc<Admission>,
    last_limit_log: Mutex<Option<Instant>>,
    /// SIGTERM came: accept errors end the accept loops.
    stopping: AtomicBool,
    reload: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
}

impl Shared {
    /// The configuration for a new session.
    fn current(&self) -> Current {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the configuration and the certificates (SIGHUP); on any
    /// error the old ones stay, and the log says why.
    fn reload_now(&self) {
        let new = match (self.reload)() {
            Ok(new) => new,
            Err(e) => return log::error!("configuration reload failed, keeping the old one: {e}"),
        };
        let old = self.current().0;
        if (new.accounts, &new.account_files) != (old.accounts, &old.account_files) {
            return log::error!(
                "configuration reload failed, keeping the old one: `accounts`, `passwd_file` and `shadow_file` \
                 take effect at a restart (the credentials helper starts with the daemon)"
            );
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let tls = match (&current.1, &new.tls) {
            (Some(tls), Some(files)) if current.0.tls.as_ref() == Some(files) => {
                tls.reload();
                Some(tls.clone())
            }
            (_, Some(files)) => match Tls::load(files.clone()) {
                Ok(tls) => Some(Arc::new(tls)),
                Err(e) => return log::error!("configuration reload failed, keeping the old one: {e}"),
            },
            (_, None) => None,
        };
        log::info!("configuration reloaded (listen addresses need a restart)");
        *current = (Arc::new(new), tls);
    }
}

fn accept_loop(listener: TcpListener, listen: Listen, shared: Arc<Shared>) {
    loop {
        // A thread for the next session first: while every one is taken,
        // new connections wait in the kernel's accept queue.
        let Some(place) = shared.admission.thread(&shared.current().0, &shared.stopping) else { return };
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                log::error!("accept failed: {e}");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        let (config, tls) = shared.current();
        let plaintext = listen.plaintext.unwrap_or(config.plaintext_auth);
        // The stream stays reachable here if the thread cannot start, to be refused.
        let stream = Arc::new(Mutex::new(Some(stream)));
        let accepted = Accepted { stream: stream.clone(), peer, config, tls, plaintext, implicit_tls: listen.tls };
        let worker = shared.clone();
        let spawned = std::thread::Builder::new().stack_size(SESSION_STACK).spawn(move || {
            serve_connection(&worker, accepted);
            worker.admission.thread_ending();
        });
        match spawned {
            Ok(thread) => place.hold(thread),
            Err(e) => {
                // Refused, this one connection; the daemon goes on.
                drop(place);
                shared.log_no_thread(&e);
                if let Some(stream) = stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    refuse(stream, listen.tls, Refused::Busy);
                }
            }
        }
    }
}

/// An accepted connection handed to its session thread, with the settings
/// it is served with.
struct Accepted {
    /// Taken by the thread; left for the accept loop to refuse if the
    /// thread cannot start.
    stream: Arc<Mutex<Option<TcpStream>>>,
    peer: SocketAddr,
    config: Arc<Config>,
    tls: Option<Arc<Tls>>,
    plaintext: Plaintext,
    implicit_tls: bool,
}

/// A session thread's work: admission, then the session, then its log line.
fn serve_connection(worker: &Shared, accepted: Accepted) {
    let Accepted { stream, peer, config, tls, plaintext, implicit_tls } = accepted;
    let Some(stream) = stream.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    let slot = match worker.admission.admit(peer.ip(), &stream, &config) {
        Ok(slot) => slot,
        Err(refused) => {
            worker.log_refusal(peer.ip(), refused);
            refuse(stream, implicit_tls, refused);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let link = Link { config: &config, tls: tls.as_deref(), implicit_tls, plaintext, peer: Some(peer) };
    let mode = Mode::Daemon { watch: &slot, penalties: &worker.penalties, helper: worker.helper.as_deref() };
    let summary = session::serve(&link, &mode, Box::new(stream) as Boxed);
    // The slot is free before the line that says the session ended.
    drop(slot);
    if summary.logged_in || crate::loglimit::allow(summary.client.or(Some(peer.ip()))) {
        log::info!("{summary}");
    }
}

impl Shared {
    /// A "too many sessions" line, at most every `LIMIT_LOG_INTERVAL`.
    fn log_refusal(&self, ip: IpAddr, refused: Refused) {
        let mut last = self.last_limit_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= LIMIT_LOG_INTERVAL) {
            *last = Some(now);
            match refused {
                Refused::PerAddress(n) => log::warn!("session limit reached ({n} logged in from {ip}): refusing it"),
                Refused::Total(n) => log::warn!("session limit reached ({n} logged in): refusing connections"),
                Refused::Busy => log::warn!(
                    "every session not logged in is busy and more connections from {ip}'s network wait: refusing it"
                ),
                Refused::Stopping => {}
            }
        }
    }

    /// A session thread could not start: the daemon goes on; said at most
    /// every `LIMIT_LOG_INTERVAL`.
    fn log_no_thread(&self, e: &std::io::Error) {
        let mut last = self.last_limit_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= LIMIT_LOG_INTERVAL) {
            *last = Some(now);
            log::error!("cannot start a session thread ({e}): refusing the connection");
        }
    }
}

/// Forks the credentials helper, which stays root (when started so) and
/// checks passwords of system accounts for every session until the daemon
/// is gone; returns the sessions' end of its socket.
fn spawn_helper(config: &Config) -> Result<Helper, String> {
    let (ours, theirs) = process::seqpacket_pair().map_err(|e| format!("credentials helper: {e}"))?;
    match process::fork().map_err(|e| format!("cannot fork the credentials helper: {e}"))? {
        process::Forked::Child => {
            drop(ours);
            // `killall -HUP pop3d` reloads the daemon; it must not end its helper.
            process::ignore_hangups();
            privsep::serve(&theirs, &config.account_files, privsep::Serving::Daemon);
            process::exit_now(0)
        }
        process::Forked::Parent(pid) => {
            log::info!("credentials helper for system accounts started (pid {pid})");
            Ok(Helper::new(ours, true))
        }
    }
}

/// Tells a client that cannot be served now to come back later, without
/// waiting on it. (On a TLS port there is no plaintext to say it in: just
/// close.)
fn refuse(mut stream: TcpStream, tls: bool, why: Refused) {
    if tls || why == Refused::Stopping {
        return;
    }
    let text = match why {
        Refused::Busy => "server busy",
        _ => "too many sessions",
    };
    let _ = stream.set_write_timeout(Some(REFUSE_WRITE_TIMEOUT));
    let _ = write!(stream, "-ERR {} {text}, try again later\r\n", Code::SysTemp);
}
