//! Which connections the daemon serves: session limits, bounded threads, pre-login budgets, the deadline before login.
//!
//! Sessions that have not logged in are held to `max_prelogin` in all and
//! `max_prelogin_per_network` per network (an address masked to
//! `network_prefix_ipv4`/`_ipv6`). When a budget is full, a session not
//! logged in that is not making progress makes way for the new connection:
//! one whose client owes the next command (silent, dripping, in a stalled
//! handshake) or that waits for a penalty slot, the one that has done so
//! longest first; from the network's own sessions when its budget is full,
//! else from the network holding the most stalled ones. A session the
//! server is working for (a command being answered: a password hash, the
//! credentials helper, the mailbox lock) is never closed to make room: when
//! a budget holds nothing else, the new connection waits for room before
//! its greeting. A client is refused (`-ERR [SYS/TEMP]`) only when its
//! address holds `max_sessions_per_ip` sessions that have logged in, or
//! `max_sessions` are logged in, or it waited `timeout_login` for room.
//!
//! Threads: the accept loops start a session thread only while fewer than
//! `max_sessions` + `SESSION_THREAD_SPARE` run (closed sessions count until
//! their thread has ended, which every wait makes prompt); beyond that new
//! connections wait in the kernel's accept queue.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::limits::{LIMIT_LOG_INTERVAL, PAUSE_STEP, SESSION_THREAD_SPARE, STALLED_AFTER};
use crate::penalty::network;
use crate::session::{Turn, Watch};

/// What a session not logged in is doing, written by its thread and read by
/// admission when it looks for one to close. (No 64-bit atomics: 32-bit
/// MIPS has none; the time is behind a lock of its own, never contended.)
struct Activity {
    /// A `Turn` as a number.
    turn: AtomicU8,
    /// Since when the client owes a command (or the session has waited for
    /// its penalty slot).
    since: Mutex<Instant>,
    /// The client has completed something: a command, or its TLS handshake.
    progressed: AtomicBool,
    cancelled: AtomicBool,
}

impl Activity {
    fn since(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn turn(&self) -> Turn {
        match self.turn.load(Ordering::Relaxed) {
            0 => Turn::Client,
            1 => Turn::Server,
            _ => Turn::Penalty,
        }
    }
}

fn turn_number(turn: Turn) -> u8 {
    match turn {
        Turn::Client => 0,
        Turn::Server => 1,
        Turn::Penalty => 2,
    }
}

/// A session that has not logged in yet.
struct Pre {
    ip: IpAddr,
    net: (IpAddr, u8),
    /// A second handle on the socket, to close it from outside.
    sock: Option<TcpStream>,
    /// Its thread, woken when it is closed from outside.
    thread: Thread,
    activity: Arc<Activity>,
    admitted: Instant,
}

#[derive(Default)]
struct Inner {
    /// Sessions admitted and not ended (closed ones give their place back at once).
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// By admission order: the first is the oldest.
    pre: BTreeMap<u64, Pre>,
    next_id: u64,
    /// Connections waiting for room, per network.
    waiting: HashMap<(IpAddr, u8), usize>,
    /// SIGTERM: no more admissions.
    closed: bool,
    last_log: Option<Instant>,
    /// Sessions closed to make way, since the last log line about it.
    dropped: u64,
}

/// The daemon's session threads: a place taken for each before its
/// connection is accepted, and its handle kept until it is joined, so that
/// threads still exiting count too.
#[derive(Default)]
struct Threads {
    places: usize,
    live: Vec<JoinHandle<()>>,
}

/// The daemon's sessions and threads, counted.
pub struct Admission {
    /// At most this many session threads, and sessions, whatever the
    /// configuration says: what the account's RLIMIT_NPROC leaves.
    limits: TaskLimits,
    inner: Mutex<Inner>,
    /// Signalled when a place is given back.
    room: Condvar,
    threads: Mutex<Threads>,
    /// Signalled when a session thread is about to end.
    thread_ended: Condvar,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(TaskLimits::default())
    }
}

/// What the account's limit on processes and threads (RLIMIT_NPROC) leaves
/// the daemon, when it has one: the kernel refuses a thread beyond it, so
/// the session budgets shrink to fit, and room is made by the usual
/// evictions before threads run out (not by connections left waiting).
#[derive(Debug, Clone, Copy)]
pub struct TaskLimits {
    pub threads: usize,
    pub sessions: usize,
}

impl Default for TaskLimits {
    fn default() -> Self {
        TaskLimits { threads: usize::MAX, sessions: usize::MAX }
    }
}

impl TaskLimits {
    /// The limits for `max_tasks` tasks of the account (None: unlimited),
    /// of which `own` are the daemon's threads other than sessions' (main,
    /// reaper, accept loops, some for UIDL digests). A quarter of the rest,
    /// at most `SESSION_THREAD_SPARE`, is for threads still exiting and
    /// connections waiting for room.
    pub fn for_tasks(max_tasks: Option<u64>, own: usize) -> TaskLimits {
        let Some(max) = max_tasks else { return TaskLimits::default() };
        let threads = usize::try_from(max).unwrap_or(usize::MAX).saturating_sub(own).max(2);
        let spare = (threads / 4).clamp(1, SESSION_THREAD_SPARE);
        TaskLimits { threads, sessions: threads - spare }
    }
}

impl Admission {
    pub fn new(limits: TaskLimits) -> Admission {
        Admission {
            limits,
            inner: Mutex::default(),
            room: Condvar::new(),
            threads: Mutex::default(),
            thread_ended: Condvar::new(),
        }
    }
}

/// Why a connection is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address holds `max_sessions_per_ip` logged-in sessions.
    PerAddress(usize),
    /// `max_sessions` are logged in.
    Total(usize),
    /// It waited `timeout_login` for room among sessions all busy, or its
    /// network already has `max_prelogin_per_network` connections waiting.
    Busy,
    /// The daemon is stopping.
    Stopping,
}

/// What admission decides for a connection right now.
enum Decision {
    Admit,
    Wait,
    Refuse(Refused),
}

impl Inner {
    /// Closes pre-login session `id` and gives its place back at once (its
    /// thread sees the closed socket, or is woken from its wait).
    fn evict(&mut self, id: u64) -> Option<IpAddr> {
        let pre = self.pre.remove(&id)?;
        pre.activity.cancelled.store(true, Ordering::SeqCst);
        if let Some(sock) = &pre.sock {
            let _ = sock.shutdown(Shutdown::Both);
        }
        pre.thread.unpark();
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

    /// The session matching `pred` that has gone longest without making
    /// progress, among those not busy: one that never completed anything (a
    /// command, or its TLS handshake) before one that did, which is in its
    /// login.
    fn stalled_longest(&self, pred: impl Fn(&Pre) -> bool) -> Option<u64> {
        self.pre
            .iter()
            .filter(|(_, p)| pred(p) && p.activity.turn() != Turn::Server)
            .min_by_key(|(id, p)| (p.activity.progressed.load(Ordering::Relaxed), p.activity.since(), **id))
            .map(|(id, _)| *id)
    }

    /// Makes room by closing the matching session that has gone longest
    /// without progress; false if every one is busy.
    fn make_room(&mut self, pred: impl Fn(&Pre) -> bool) -> bool {
        let Some(id) = self.stalled_longest(pred) else { return false };
        self.evict(id);
        self.dropped += 1;
        true
    }

    /// Makes room in the whole budget: from the network holding the most
    /// sessions stalled for `STALLED_AFTER` (a flood's, not a busy site's
    /// or a lone client's), or when none is, the most not busy.
    fn make_room_anywhere(&mut self, now: Instant) -> bool {
        let mut by_net: HashMap<(IpAddr, u8), (usize, usize)> = HashMap::new();
        for p in self.pre.values().filter(|p| p.activity.turn() != Turn::Server) {
            let e = by_net.entry(p.net).or_default();
            e.1 += 1;
            if now.saturating_duration_since(p.activity.since()) >= STALLED_AFTER {
                e.0 += 1;
            }
        }
        let Some((&net, _)) = by_net.iter().max_by_key(|(net, counts)| (**counts, **net)) else {
            return false;
        };
        self.make_room(|p| p.net == net)
    }

    fn pre_in(&self, net: (IpAddr, u8)) -> usize {
        self.pre.values().filter(|p| p.net == net).count()
    }

    /// Admission's decision for a connection from `ip` (in `net`), closing
    /// stalled sessions where that makes room; at most `max_sessions`, what
    /// the configuration asks within what the account's task limit leaves.
    fn decide(&mut self, ip: IpAddr, net: (IpAddr, u8), config: &Config, max_sessions: usize, proxy: bool) -> Decision {
        let now = Instant::now();
        if self.closed {
            return Decision::Refuse(Refused::Stopping);
        }
        let max_pre = config.max_prelogin.min(max_sessions);
        if !proxy
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_sessions_per_ip
            && !self.make_room(|p| p.ip == ip)
        {
            // Sessions of its own still logging in will be done soon; a full house of logged-in ones will not.
            return match self.pre.values().any(|p| p.ip == ip) {
                true => Decision::Wait,
                false => Decision::Refuse(Refused::PerAddress(self.per_ip.get(&ip).copied().unwrap_or(0))),
            };
        }
        if !proxy && self.pre_in(net) >= config.max_prelogin_per_network && !self.make_room(|p| p.net == net) {
            return Decision::Wait;
        }
        if self.pre.len() >= max_pre && !self.make_room_anywhere(now) {
            return Decision::Wait;
        }
        if self.total >= max_sessions && !self.make_room_anywhere(now) {
            return match self.pre.is_empty() {
                true => Decision::Refuse(Refused::Total(self.total)),
                false => Decision::Wait,
            };
        }
        Decision::Admit
    }

    fn log_drops(&mut self, why: &str) {
        let now = Instant::now();
        if self.dropped > 0 && self.last_log.is_none_or(|t| now.duration_since(t) >= LIMIT_LOG_INTERVAL) {
            log::warn!(
                "{why}: closed {} unauthenticated sessions (stalled the longest) to admit new ones",
                self.dropped
            );
            self.dropped = 0;
            self.last_log = Some(now);
        }
    }
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more session thread: waits while `max_sessions` +
    /// `SESSION_THREAD_SPARE` threads exist, joining those that ended (new
    /// connections wait in the kernel's accept queue meanwhile); None once
    /// `stopping` is set.
    pub fn thread(self: &Arc<Self>, config: &Config, stopping: &AtomicBool) -> Option<ThreadPlace> {
        let cap = config.max_sessions.saturating_add(SESSION_THREAD_SPARE).min(self.limits.threads);
        let mut t = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let mut i = 0;
            while i < t.live.len() {
                if t.live[i].is_finished() {
                    // It has returned; join waits for the thread itself to be gone.
                    let _ = t.live.swap_remove(i).join();
                    t.places -= 1;
                } else {
                    i += 1;
                }
            }
            if t.places < cap {
                t.places += 1;
                return Some(ThreadPlace { admission: self.clone(), held: false });
            }
            if stopping.load(Ordering::SeqCst) {
                return None;
            }
            t = self.thread_ended.wait_timeout(t, PAUSE_STEP).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A session thread's last act: an accept loop waiting for a place
    /// looks again.
    pub fn thread_ending(&self) {
        self.thread_ended.notify_all();
    }

    /// Admits a connection from `ip` on `sock` under `config`'s limits,
    /// closing stalled unauthenticated sessions to make room, or waiting
    /// (at most `timeout_login`) while every one in its way is busy. Called
    /// on the session's own thread.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, sock: &TcpStream, config: &Config) -> Result<Ticket, Refused> {
        let ip = ip.to_canonical();
        let net = network(ip, config.network_prefix_ipv4, config.network_prefix_ipv6);
        // A trusted PROXY-protocol proxy carries many clients: only the
        // totals count for it (limit clients per address on the proxy).
        let proxy = config.proxy_trusted.contains(ip);
        let max_sessions = config.max_sessions.min(self.limits.sessions);
        let give_up = Instant::now() + config.timeout_login;
        let mut c = self.lock();
        let mut waiting = false;
        let decision = loop {
            match c.decide(ip, net, config, max_sessions, proxy) {
                Decision::Wait if Instant::now() < give_up => {}
                Decision::Wait => break Decision::Refuse(Refused::Busy),
                other => break other,
            }
            if !waiting {
                let n = c.waiting.entry(net).or_insert(0);
                if *n >= config.max_prelogin_per_network && !proxy {
                    break Decision::Refuse(Refused::Busy);
                }
                *n += 1;
                waiting = true;
            }
            c = self.room.wait_timeout(c, PAUSE_STEP).unwrap_or_else(|e| e.into_inner()).0;
        };
        if waiting {
            if let Some(n) = c.waiting.get_mut(&net) {
                *n -= 1;
                if *n == 0 {
                    c.waiting.remove(&net);
                }
            }
        }
        if let Decision::Refuse(why) = decision {
            return Err(why);
        }
        c.log_drops("pre-login budget full");
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        let id = c.next_id;
        c.next_id += 1;
        let activity = Arc::new(Activity {
            turn: AtomicU8::new(turn_number(Turn::Client)),
            since: Mutex::new(Instant::now()),
            progressed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
        });
        let pre = Pre {
            ip,
            net,
            sock: sock.try_clone().ok(),
            thread: std::thread::current(),
            activity: activity.clone(),
            admitted: Instant::now(),
        };
        c.pre.insert(id, pre);
        Ok(Ticket { admission: self.clone(), id, ip: Mutex::new(ip), activity })
    }

    /// Closes every session that has not logged in within `deadline` of
    /// its admission, busy or not (called every `REAP_INTERVAL`, with the
    /// login deadline plus `REAP_GRACE`).
    pub fn reap(&self, deadline: Duration) {
        let mut c = self.lock();
        let late: Vec<u64> =
            c.pre.iter().filter(|(_, p)| p.admitted.elapsed() >= deadline).map(|(id, _)| *id).collect();
        for id in late {
            if let Some(ip) = c.evict(id) {
                if crate::loglimit::allow(Some(ip)) {
                    log::info!("closed a session from {ip}: not logged in within {}s", deadline.as_secs());
                }
            }
        }
        self.room.notify_all();
    }

    /// Closes every session not logged in and admits no more (SIGTERM);
    /// returns how many sessions are left, all logged in.
    pub fn close_waiting(&self) -> usize {
        let mut c = self.lock();
        c.closed = true;
        let waiting: Vec<u64> = c.pre.keys().copied().collect();
        for id in waiting {
            c.evict(id);
        }
        self.room.notify_all();
        c.total
    }

    /// Sessions running now.
    pub fn sessions(&self) -> usize {
        self.lock().total
    }

    /// Session threads now: places taken, threads not yet joined included.
    pub fn threads(&self) -> usize {
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).places
    }

    /// Sessions now: (all, not logged in).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let c = self.lock();
        (c.total, c.pre.len())
    }
}

/// One session thread's place: kept with the thread's handle until it is
/// joined (`hold`), or given back at once when the thread could not start.
pub struct ThreadPlace {
    admission: Arc<Admission>,
    held: bool,
}

impl ThreadPlace {
    /// The thread started: its handle holds the place until it is joined.
    pub fn hold(mut self, thread: JoinHandle<()>) {
        self.held = true;
        self.admission.threads.lock().unwrap_or_else(|e| e.into_inner()).live.push(thread);
    }
}

impl Drop for ThreadPlace {
    fn drop(&mut self) {
        if !self.held {
            self.admission.threads.lock().unwrap_or_else(|e| e.into_inner()).places -= 1;
            self.admission.thread_ended.notify_all();
        }
    }
}

/// A session's place; given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    /// Where the session is counted: its peer, or the client a PROXY
    /// header named.
    ip: Mutex<IpAddr>,
    activity: Arc<Activity>,
}

impl Watch for Ticket {
    fn client(&self, ip: IpAddr, config: &Config) -> bool {
        let ip = ip.to_canonical();
        let mut c = self.admission.lock();
        // Closed from outside while its header was read (it made way, or its
        // deadline passed): its place is given back already, at the proxy.
        if self.cancelled() {
            return false;
        }
        let mut counted = self.ip.lock().unwrap_or_else(|e| e.into_inner());
        if *counted == ip {
            return true;
        }
        let id = self.id;
        // As at admission: the client's stalled sessions not logged in make
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
        let mut c = self.admission.lock();
        c.pre.remove(&self.id);
        self.admission.room.notify_all();
    }

    fn cancelled(&self) -> bool {
        self.activity.cancelled.load(Ordering::SeqCst)
    }

    fn turn(&self, turn: Turn) {
        self.activity.progressed.store(true, Ordering::Relaxed);
        if turn != Turn::Server {
            *self.activity.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        self.activity.turn.store(turn_number(turn), Ordering::Relaxed);
    }

    fn pause(&self, until: Instant) -> bool {
        loop {
            if self.cancelled() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            // Woken at once when the session is closed from outside.
            std::thread::park_timeout(left);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.admission.lock();
        // A closed session's place was given back when it was closed.
        if !self.activity.cancelled.load(Ordering::SeqCst) {
            c.pre.remove(&self.id);
            c.release(*self.ip.lock().unwrap_or_else(|e| e.into_inner()));
        }
        self.admission.room.notify_all();
    }
}

#[cfg(test)]
mod tests;
