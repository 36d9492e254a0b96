//! Daemon mode: binds the listeners, drops root, then serves one OS thread per connection within session limits.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::config::{Config, Listen};
use crate::limits::{ACCEPT_RETRY, LIMIT_LOG_INTERVAL, LISTEN_BACKLOG, REFUSE_WRITE_TIMEOUT, SESSION_STACK};
use crate::penalty::Penalties;
use crate::session::{self, Start};
use crate::sys;
use crate::tls::Tls;
use crate::transport::Boxed;

/// Sessions running now, in total and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    last_limit_log: Option<Instant>,
}

/// Releases a session's place in `Counts` when the session thread ends,
/// however it ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Binds every `listen` address, switches to `user` when root, and serves
/// until killed. `reload` re-reads the configuration on SIGHUP.
pub fn run(config: Config, reload: impl Fn() -> Result<Config, String> + Send + Sync + 'static) -> Result<(), String> {
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
    crate::sasl::load_fake_key_secret(&config.state_dir);
    crate::lock::remove_stale_dotlocks(&crate::lock::Records::dir_in(&config.state_dir));
    // SIGHUP reloads at once, on a thread of its own, and is logged there.
    sys::block_sighup().map_err(|e| format!("cannot block SIGHUP: {e}"))?;
    let shared = Arc::new(Shared {
        current: RwLock::new((Arc::new(config), tls)),
        penalties: Default::default(),
        counts: Default::default(),
        reload: Box::new(reload),
    });
    let reloader = shared.clone();
    std::thread::spawn(move || loop {
        sys::wait_sighup();
        reloader.reload_now();
    });
    let (last, last_listen) = listeners.pop().ok_or("no listen address")?;
    for (l, listen) in listeners {
        let shared = shared.clone();
        std::thread::spawn(move || accept_loop(l, listen, shared));
    }
    accept_loop(last, last_listen, shared);
    Ok(())
}

/// The configuration and TLS setup that new sessions get.
type Current = (Arc<Config>, Option<Arc<Tls>>);

struct Shared {
    current: RwLock<Current>,
    penalties: Arc<Penalties>,
    counts: Arc<Mutex<Counts>>,
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

    /// Takes a session slot for `ip`, or None when a limit is reached.
    fn admit(&self, ip: IpAddr, config: &Config) -> Option<Slot> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        // A trusted PROXY-protocol proxy carries many clients: only the total counts for it.
        let per_ip = if config.proxy_trusted.contains(ip) { 0 } else { c.per_ip.get(&ip).copied().unwrap_or(0) };
        if c.total >= config.max_sessions || per_ip >= config.max_sessions_per_ip {
            let now = Instant::now();
            if c.last_limit_log.is_none_or(|t| now.duration_since(t) >= LIMIT_LOG_INTERVAL) {
                c.last_limit_log = Some(now);
                log::warn!("session limit reached ({} total, {per_ip} from {ip}): refusing connections", c.total);
            }
            return None;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Some(Slot { counts: self.counts.clone(), ip })
    }
}

fn accept_loop(listener: TcpListener, listen: Listen, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                log::error!("accept failed: {e}");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        let (config, tls) = shared.current();
        let Some(slot) = shared.admit(peer.ip(), &config) else {
            refuse(stream, listen.tls);
            continue;
        };
        let plaintext = listen.plaintext.unwrap_or(config.plaintext_auth);
        let implicit_tls = listen.tls;
        let penalties = shared.penalties.clone();
        let spawned = std::thread::Builder::new().stack_size(SESSION_STACK).spawn(move || {
            let _ = stream.set_nodelay(true);
            let start = Start {
                config: &config,
                tls: tls.as_deref(),
                implicit_tls,
                plaintext,
                peer: Some(peer),
                penalties: Some(&penalties),
            };
            let summary = session::serve(&start, Box::new(stream) as Boxed);
            // The slot is free before the line that says the session ended.
            drop(slot);
            log::info!("{summary}");
        });
        if let Err(e) = spawned {
            log::error!("cannot start a session thread: {e}");
        }
    }
}

/// Tells a client over the limits to come back later, without waiting on it.
/// (On a TLS port there is no plaintext to say it in: just close.)
fn refuse(mut stream: TcpStream, tls: bool) {
    if tls {
        return;
    }
    let _ = stream.set_write_timeout(Some(REFUSE_WRITE_TIMEOUT));
    let _ = stream.write_all(b"-ERR [SYS/TEMP] too many sessions, try again later\r\n");
}
