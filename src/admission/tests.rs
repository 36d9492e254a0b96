//! Tests of admission: who makes way when a budget is full, waiting for room, the limits, the bound on threads.

use super::*;
use std::net::TcpListener;

fn pair(l: &TcpListener) -> TcpStream {
    let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    l.accept().unwrap().0
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn admission() -> Arc<Admission> {
    Arc::new(Admission::default())
}

/// `secs` seconds ago (a few only: the monotonic clock starts at boot).
fn ago(secs: u64) -> Instant {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(secs)).unwrap_or(now)
}

/// The session has owed its next command for `secs` seconds.
fn stalled_for(t: &Ticket, secs: u64) {
    t.activity.turn.store(turn_number(Turn::Client), Ordering::Relaxed);
    *t.activity.since.lock().unwrap() = ago(secs);
}

fn config(max_sessions: usize, per_ip: usize, pre: usize, per_net: usize) -> Config {
    Config {
        max_sessions,
        max_sessions_per_ip: per_ip,
        max_prelogin: pre,
        max_prelogin_per_network: per_net,
        timeout_login: Duration::from_secs(1),
        ..Config::default()
    }
}

#[test]
fn the_stalled_make_way_longest_stalled_first_and_the_busy_never() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(10, 10, 10, 3);
    let a = admission();
    let busy = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    busy.turn(Turn::Server);
    let waited_little = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    let waited_long = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    stalled_for(&waited_little, 1);
    stalled_for(&waited_long, 3);
    // The network's budget (3) is full: the one stalled longest goes, though it came later.
    let fourth = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    assert!(waited_long.cancelled() && !waited_little.cancelled() && !busy.cancelled());
    assert_eq!(a.counts(), (3, 3));
    drop(waited_long);
    assert_eq!(a.counts(), (3, 3), "a closed session's place was given back already");
    // A session in its login (it sent a command: here it waits for its penalty
    // slot, and longer) stays before one that never completed anything.
    fourth.turn(Turn::Penalty);
    *fourth.activity.since.lock().unwrap() = ago(5);
    let fifth = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    assert!(waited_little.cancelled() && !fourth.cancelled() && !busy.cancelled());
    // Among sessions in their login, the one stalled longest makes way, the
    // penalty waiter included; the busy one still not.
    fifth.turn(Turn::Client);
    let sixth = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    assert!(fourth.cancelled() && !fifth.cancelled() && !busy.cancelled() && !sixth.cancelled());
}

#[test]
fn a_connection_waits_while_every_session_in_its_way_is_busy() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let mut config = config(10, 10, 10, 2);
    config.timeout_login = Duration::from_secs(60);
    let a = admission();
    let one = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    let two = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    one.turn(Turn::Server);
    two.turn(Turn::Server);
    let (waiter, config2) = (a.clone(), config.clone());
    let sock2 = sock.try_clone().unwrap();
    let third = std::thread::spawn(move || waiter.admit(ip("192.0.2.1"), &sock2, &config2));
    // It is waiting, not admitted: neither busy session was closed for it.
    while a.lock().waiting.is_empty() {
        std::thread::yield_now();
    }
    assert_eq!(a.counts(), (2, 2));
    // One logs in: room, and the waiting connection is admitted.
    one.logged_in();
    let third = third.join().unwrap();
    assert!(third.is_ok());
    assert!(!one.cancelled() && !two.cancelled());
    assert_eq!(a.counts(), (3, 2));
}

#[test]
fn a_connection_that_finds_only_busy_sessions_for_too_long_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(10, 10, 10, 1);
    let a = admission();
    let busy = a.admit(ip("192.0.2.1"), &sock, &config).unwrap();
    busy.turn(Turn::Server);
    // timeout_login (1 s) of waiting, then [SYS/TEMP].
    assert_eq!(a.admit(ip("192.0.2.1"), &sock, &config).err(), Some(Refused::Busy));
    assert!(!busy.cancelled());
}

#[test]
fn the_whole_budget_takes_from_the_network_holding_the_most_stalled() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(20, 20, 4, 4);
    let a = admission();
    // A busy site: two sessions, owing their next command for a moment only.
    let site: Vec<Ticket> = (0..2).map(|_| a.admit(ip("198.51.100.7"), &sock, &config).unwrap()).collect();
    // A flood: two silent connections from another network.
    let flood: Vec<Ticket> = (0..2).map(|_| a.admit(ip("203.0.113.9"), &sock, &config).unwrap()).collect();
    for t in &flood {
        stalled_for(t, 5);
    }
    let lone = a.admit(ip("192.0.2.50"), &sock, &config).unwrap();
    assert!(flood[0].cancelled() && !flood[1].cancelled(), "the flood's longest stalled made way");
    assert!(site.iter().all(|t| !t.cancelled()) && !lone.cancelled());
}

#[test]
fn the_per_address_limit_closes_its_own_stalled_sessions_and_refuses_when_all_are_logged_in() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(10, 2, 10, 10);
    let a = admission();
    let address = ip("192.0.2.7");
    let one = a.admit(address, &sock, &config).unwrap();
    let two = a.admit(address, &sock, &config).unwrap();
    one.logged_in();
    let three = a.admit(address, &sock, &config).unwrap();
    assert!(two.cancelled() && !one.cancelled());
    three.logged_in();
    assert_eq!(a.admit(address, &sock, &config).err(), Some(Refused::PerAddress(2)));
    a.reap(Duration::ZERO);
    assert!(!three.cancelled(), "logged-in sessions have no pre-login deadline");
}

#[test]
fn max_sessions_logged_in_refuses_and_a_stopping_daemon_admits_nobody() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(2, 10, 10, 10);
    let a = admission();
    let all: Vec<Ticket> = (0..2).map(|i| a.admit(ip(&format!("10.0.0.{i}")), &sock, &config).unwrap()).collect();
    for t in &all {
        t.logged_in();
    }
    assert_eq!(a.admit(ip("10.0.1.1"), &sock, &config).err(), Some(Refused::Total(2)));
    drop(all);
    assert_eq!(a.close_waiting(), 0);
    assert_eq!(a.admit(ip("10.0.1.1"), &sock, &config).err(), Some(Refused::Stopping));
}

#[test]
fn session_threads_are_bounded_and_given_back_when_they_end() {
    let config = config(3, 3, 3, 3);
    let a = admission();
    let stopping = AtomicBool::new(false);
    let cap = 3 + SESSION_THREAD_SPARE;
    // Places held by threads that run until told to end.
    let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
    let end_rx = Arc::new(Mutex::new(end_rx));
    for _ in 0..cap {
        let place = a.thread(&config, &stopping).unwrap();
        let (rx, admission) = (end_rx.clone(), a.clone());
        place.hold(std::thread::spawn(move || {
            let _ = rx.lock().unwrap().recv();
            admission.thread_ending();
        }));
    }
    assert_eq!(a.threads(), cap);
    // At the cap, the next waits until one has ended and been joined.
    let (waiter, config2) = (a.clone(), config.clone());
    let next = std::thread::spawn(move || waiter.thread(&config2, &AtomicBool::new(false)));
    end_tx.send(()).unwrap();
    let place = next.join().unwrap().expect("a place once a thread ended");
    assert_eq!(a.threads(), cap, "the ended thread's place went to the waiter");
    // A stopping daemon waits for no place.
    stopping.store(true, Ordering::SeqCst);
    assert!(a.thread(&config, &stopping).is_none());
    // A place whose thread could not start is given back at once.
    drop(place);
    assert_eq!(a.threads(), cap - 1);
    for _ in 0..cap {
        let _ = end_tx.send(());
    }
}

#[test]
fn the_accounts_task_limit_shrinks_the_budgets_to_fit() {
    let unlimited = TaskLimits::for_tasks(None, 7);
    assert_eq!((unlimited.threads, unlimited.sessions), (usize::MAX, usize::MAX));
    // ulimit -u 100: the daemon's own 7 threads, then sessions, and a quarter (at most 32) spare.
    let hundred = TaskLimits::for_tasks(Some(100), 7);
    assert_eq!((hundred.threads, hundred.sessions), (93, 70));
    let many = TaskLimits::for_tasks(Some(10_000), 7);
    assert_eq!((many.threads, many.sessions), (9_993, 9_961));
    let tiny = TaskLimits::for_tasks(Some(5), 7);
    assert!(tiny.sessions >= 1 && tiny.sessions < tiny.threads);
    // The sessions' budget holds whatever max_sessions says.
    let a = Arc::new(Admission::new(TaskLimits { threads: 4, sessions: 2 }));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let config = config(10, 10, 10, 10);
    let both: Vec<Ticket> = (0..2).map(|i| a.admit(ip(&format!("10.0.0.{i}")), &sock, &config).unwrap()).collect();
    for t in &both {
        t.logged_in();
    }
    assert_eq!(a.admit(ip("10.0.1.1"), &sock, &config).err(), Some(Refused::Total(2)));
    let stopping = AtomicBool::new(true);
    let places: Vec<ThreadPlace> = (0..4).map(|_| a.thread(&config, &stopping).unwrap()).collect();
    assert!(a.thread(&config, &stopping).is_none(), "no fifth thread");
    drop(places);
}

#[test]
fn a_proxied_session_closed_before_its_header_is_read_counts_nowhere() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = pair(&l);
    let mut config = config(10, 1, 10, 10);
    config.proxy_trusted = crate::proxy::Trusted::parse("192.0.2.9").unwrap();
    let a = admission();
    let t = a.admit(ip("192.0.2.9"), &sock, &config).unwrap();
    stalled_for(&t, 3);
    assert!(a.lock().make_room(|_| true) && t.cancelled());
    assert_eq!(a.counts(), (0, 0));
    // Its header names a client after all: not counted there (it was, and the place was never given back).
    assert!(!t.client(ip("198.51.100.7"), &config));
    drop(t);
    assert_eq!(a.counts(), (0, 0));
    assert!(a.lock().per_ip.is_empty());
    // The client's own next session is admitted and counted once.
    let t = a.admit(ip("192.0.2.9"), &sock, &config).unwrap();
    assert!(t.client(ip("198.51.100.7"), &config));
    assert_eq!(a.lock().per_ip.get(&ip("198.51.100.7")), Some(&1));
}
