//! Which connections the daemon serves: session limits, the pre-login budget, the one deadline before login.
//!
//! The budget of unauthenticated sessions holds per network and in total,
//! and in it the oldest makes way for a new one.
//!
//! Sessions that have not logged in are held to `max_prelogin` in all and
//! `max_prelogin_per_network` per network (an address masked to
//! `network_prefix_ipv4`/`_ipv6`). When a budget is full, an unauthenticated
//! session is closed to admit the new connection: the network's own oldest
//! when the network's budget is full, else the oldest of the network that
//! holds the most. A flood of silent or slow connections only ever closes
//! the flood's own, and a client that logs in promptly gets through. A client is refused
//! (`-ERR [SYS/TEMP]`) only when its address already holds
//! `max_sessions_per_ip` sessions, or `max_sessions` are logged in, none of
//! them waiting to log in. A session that has not logged in within the
//! login deadline (`timeout_login` times `LOGIN_TIME_FACTOR`, TLS handshake
//! included, however the bytes arrive) is closed by `reap`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::limits::LIMIT_LOG_INTERVAL;
use crate::penalty::network;
use crate::session::Watch;

/// A session that has not logged in yet.
struct Pre {
    ip: IpAddr,
    net: (IpAddr, u8),
    started: Instant,
    /// A second handle on the socket, to close it from outside.
    sock: Option<TcpStream>,
    cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// By admission order: the first is the oldest.
    pre: BTreeMap<u64, Pre>,
    next_id: u64,
    last_log: Option<Instant>,
    /// Sessions closed to make way, since the last log line about it.
    dropped: u64,
}

/// The daemon's sessions, counted.
#[derive(Default)]
pub struct Admission {
    inner: Mutex<Inner>,
}

/// Why a connection is not served.
pub enum Refused {
    /// Its address holds `max_sessions_per_ip` logged-in sessions.
    PerAddress(usize),
    /// `max_sessions` are logged in.
    Total(usize),
}

impl Inner {
    /// Closes pre-login session `id` and gives its place back at once (its
    /// thread sees the closed socket, or the cancelled flag while it waits).
    fn evict(&mut self, id: u64) -> Option<IpAddr> {
        let pre = self.pre.remove(&id)?;
        pre.cancelled.store(true, Ordering::SeqCst);
        if let Some(sock) = &pre.sock {
            let _ = sock.shutdown(Shutdown::Both);
        }
        self.release(pre.ip);
        Some(pre.ip)
    }

    fn release(&mut self, ip: IpAddr) {
        self.total -= 1;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// The oldest pre-login session matching `pred`.
    fn oldest(&self, pred: impl Fn(&Pre) -> bool) -> Option<u64> {
        self.pre.iter().find(|(_, p)| pred(p)).map(|(id, _)| *id)
    }

    /// Makes room by closing the oldest matching pre-login session; false
    /// if there is none.
    fn make_room(&mut self, pred: impl Fn(&Pre) -> bool) -> bool {
        let Some(id) = self.oldest(pred) else { return false };
        self.evict(id);
        self.dropped += 1;
        true
    }

    /// Makes room in the whole budget: closes the oldest pre-login session
    /// of the network holding the most (a flood's, not a lone client's).
    fn make_room_anywhere(&mut self) -> bool {
        let mut by_net: HashMap<(IpAddr, u8), (usize, u64)> = HashMap::new();
        for (id, p) in &self.pre {
            // Ids ascend: the first seen of a network is its oldest.
            by_net.entry(p.net).or_insert((0, *id)).0 += 1;
        }
        let Some(&(_, id)) = by_net.values().max_by_key(|(n, oldest)| (*n, std::cmp::Reverse(*oldest))) else {
            return false;
        };
        self.evict(id);
        self.dropped += 1;
        true
    }

    fn log_drops(&mut self, why: &str) {
        let now = Instant::now();
        if self.dropped > 0 && self.last_log.is_none_or(|t| now.duration_since(t) >= LIMIT_LOG_INTERVAL) {
            log::warn!("{why}: closed {} unauthenticated sessions (the oldest) to admit new ones", self.dropped);
            self.dropped = 0;
            self.last_log = Some(now);
        }
    }
}

impl Admission {
    /// Admits a connection from `ip` on `sock` under `config`'s limits,
    /// closing the oldest unauthenticated sessions to make room.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, sock: &TcpStream, config: &Config) -> Result<Ticket, Refused> {
        let ip = ip.to_canonical();
        let net = network(ip, config.network_prefix_ipv4, config.network_prefix_ipv6);
        let max_pre = config.max_prelogin.min(config.max_sessions);
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A trusted PROXY-protocol proxy carries many clients: only the
        // totals count for it (limit clients per address on the proxy).
        let proxy = config.proxy_trusted.contains(ip);
        if !proxy
            && c.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_sessions_per_ip
            && !c.make_room(|p| p.ip == ip)
        {
            return Err(Refused::PerAddress(c.per_ip.get(&ip).copied().unwrap_or(0)));
        }
        if !proxy && c.pre.values().filter(|p| p.net == net).count() >= config.max_prelogin_per_network {
            c.make_room(|p| p.net == net);
        }
        if c.pre.len() >= max_pre {
            c.make_room_anywhere();
        }
        if c.total >= config.max_sessions && !c.make_room_anywhere() {
            return Err(Refused::Total(c.total));
        }
        c.log_drops("pre-login budget full");
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        let id = c.next_id;
        c.next_id += 1;
        let cancelled = Arc::new(AtomicBool::new(false));
        let pre = Pre { ip, net, started: Instant::now(), sock: sock.try_clone().ok(), cancelled: cancelled.clone() };
        c.pre.insert(id, pre);
        Ok(Ticket { admission: self.clone(), id, ip: Mutex::new(ip), cancelled })
    }

    /// Closes every session that has not logged in within `deadline` of
    /// its connection (called every `REAP_INTERVAL`, with the login
    /// deadline plus `REAP_GRACE`).
    pub fn reap(&self, deadline: Duration) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let late: Vec<u64> =
            c.pre.iter().filter(|(_, p)| now.duration_since(p.started) >= deadline).map(|(id, _)| *id).collect();
        for id in late {
            if let Some(ip) = c.evict(id) {
                if crate::loglimit::allow(Some(ip)) {
                    log::info!("closed a session from {ip}: not logged in within {}s", deadline.as_secs());
                }
            }
        }
    }

    /// Closes every session not logged in (SIGTERM); returns how many
    /// sessions are left, all logged in.
    pub fn close_waiting(&self) -> usize {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let waiting: Vec<u64> = c.pre.keys().copied().collect();
        for id in waiting {
            c.evict(id);
        }
        c.total
    }

    /// Sessions running now.
    pub fn sessions(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Sessions now: (all, not logged in).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let c = self.inner.lock().unwrap();
        (c.total, c.pre.len())
    }
}

/// A session's place; given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    /// Where the session is counted: its peer, or the client a PROXY
    /// header named.
    ip: Mutex<IpAddr>,
    cancelled: Arc<AtomicBool>,
}

impl Watch for Ticket {
    fn client(&self, ip: IpAddr, config: &Config) -> bool {
        let ip = ip.to_canonical();
        let mut c = self.admission.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted = self.ip.lock().unwrap_or_else(|e| e.into_inner());
        if *counted == ip {
            return true;
        }
        let id = self.id;
        // As at admission: the client's oldest session not logged in makes
        // way (this one is still counted at the proxy, so it is not among them).
        if c.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_sessions_per_ip && !c.make_room(|p| p.ip == ip) {
            return false;
        }
        // Still one session: counted at the client instead of the proxy.
        c.release(*counted);
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        if let Some(pre) = c.pre.get_mut(&id) {
            pre.ip = ip;
            pre.net = network(ip, config.network_prefix_ipv4, config.network_prefix_ipv6);
        }
        *counted = ip;
        true
    }

    fn logged_in(&self) {
        let mut c = self.admission.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.pre.remove(&self.id);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.admission.inner.lock().unwrap_or_else(|e| e.into_inner());
        // An evicted session's place was given back when it was closed.
        if !self.cancelled.load(Ordering::SeqCst) {
            c.pre.remove(&self.id);
            c.release(*self.ip.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(l: &TcpListener) -> TcpStream {
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        l.accept().unwrap().0
    }

    #[test]
    fn the_oldest_unauthenticated_session_makes_way() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config {
            max_sessions: 6,
            max_sessions_per_ip: 4,
            max_prelogin: 3,
            max_prelogin_per_network: 2,
            ..Default::default()
        };
        let a = Arc::new(Admission::default());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let sock = pair(&l);
        let first = a.admit(ip("192.0.2.1"), &sock, &config).ok().unwrap();
        let second = a.admit(ip("192.0.2.1"), &sock, &config).ok().unwrap();
        // The network's budget (2) is full: the oldest of it goes.
        let third = a.admit(ip("192.0.2.1"), &sock, &config).ok().unwrap();
        assert!(first.cancelled() && !second.cancelled());
        assert_eq!(a.counts(), (2, 2));
        drop(first);
        assert_eq!(a.counts(), (2, 2), "an evicted session's place was given back already");
        // The total pre-login budget (3): the oldest of the biggest network goes.
        let other = a.admit(ip("198.51.100.1"), &sock, &config).ok().unwrap();
        let other2 = a.admit(ip("203.0.113.1"), &sock, &config).ok().unwrap();
        assert!(second.cancelled() && !third.cancelled());
        // Logged-in sessions are never closed, and count against max_sessions.
        for t in [&third, &other, &other2] {
            t.logged_in();
        }
        assert_eq!(a.counts(), (3, 0));
        let more: Vec<Ticket> =
            (0..3).map(|i| a.admit(ip(&format!("10.0.0.{i}")), &sock, &config).ok().unwrap()).collect();
        more[0].logged_in();
        // 6 sessions, 4 logged in: a new one closes the oldest waiting.
        let last = a.admit(ip("10.0.1.1"), &sock, &config).ok().unwrap();
        assert!(more[1].cancelled() && !more[0].cancelled() && !last.cancelled());
        for t in [&more[2], &last] {
            t.logged_in();
        }
        assert!(matches!(a.admit(ip("10.0.2.1"), &sock, &config), Err(Refused::Total(6))));
        drop(more);
        assert!(a.admit(ip("10.0.2.1"), &sock, &config).is_ok());
    }

    #[test]
    fn the_per_address_limit_closes_its_own_waiting_sessions_first() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Config { max_sessions_per_ip: 2, ..Default::default() };
        let a = Arc::new(Admission::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let sock = pair(&l);
        let one = a.admit(ip, &sock, &config).ok().unwrap();
        let two = a.admit(ip, &sock, &config).ok().unwrap();
        one.logged_in();
        let three = a.admit(ip, &sock, &config).ok().unwrap();
        assert!(two.cancelled() && !one.cancelled());
        three.logged_in();
        assert!(matches!(a.admit(ip, &sock, &config), Err(Refused::PerAddress(2))));
        a.reap(Duration::ZERO);
        assert!(!three.cancelled(), "logged-in sessions have no pre-login deadline");
    }
}
