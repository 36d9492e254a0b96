//! The modes of issue 18's "nothing given up" rows: flood (real clients timed while silent, dripping or TLS-stalled connections are held) and tlsdrip (how long a ClientHello dripped a byte at a time stays open).

//   pop3bench flood --addr A [--flood-addr F] --kind silent|drip|tls --conns N --from-net 127.0.50
//                   [--addresses K] --real IP,IP --user U --pass PW [--runs 10] [--secs 60] [--max-opens 300000]
//                   [--watch PID] [--reopen-ms 0]
//       N holder threads keep a connection each to F (default A) from K addresses of NET: silent, sending
//       a byte a second (drip), or stopped after the first 6 bytes of a TLS ClientHello (tls); whenever
//       the server closes one, it is opened again --reopen-ms later (0: at once, so the flood churns as
//       fast as the server closes). Once N are connected (or 15 s passed), a real client logs in, RETRs message 1 and QUITs
//       from each --real address in turn, --runs times; prints the times (connect to the QUIT answer).
//       Everything stops after --secs or --max-opens connections. --watch: the peak threads and RSS of
//       process PID meanwhile (as logins --watch).
//   pop3bench tlsdrip --addr T --tls CERT [--every-ms 500] [--secs 30]
//       A full ClientHello (rustls) dripped one byte every 0.5 s; prints when the server closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::conn::{Conn, Res};
use crate::load::{micros, pct_ms};
use crate::memory::Watch;
use crate::net::{address_in, connect_from};
use crate::{die, Args};

/// The first bytes of a TLS ClientHello (record header, handshake type), then nothing.
const HELLO_START: &[u8] = b"\x16\x03\x01\x00\xc8\x01";
/// How long the flood may take to open its connections before the real clients start anyway.
const RAMP: Duration = Duration::from_secs(15);
/// Stack of a holder thread (it only reads and writes a few bytes).
const HOLDER_STACK: usize = 64 * 1024;

struct Flood {
    to: SocketAddr,
    kind: String,
    net: String,
    addresses: u64,
    stop: AtomicBool,
    opens: AtomicU64,
    max_opens: u64,
    held: AtomicI64,
    /// Connections held now that the server has sent something on (a greeting).
    greeted: AtomicI64,
    /// How long a holder waits before opening again a connection the server closed.
    reopen: Duration,
}

impl Flood {
    /// Holder `i`: keeps one connection open, opening it again whenever the server closes it.
    fn hold(&self, i: u64) {
        let from = address_in(&self.net, i % self.addresses);
        while !self.stop.load(Ordering::Relaxed) && self.opens.fetch_add(1, Ordering::Relaxed) < self.max_opens {
            let Ok(mut s) = connect_from(from, &self.to, Duration::from_secs(5)) else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            self.held.fetch_add(1, Ordering::Relaxed);
            if self.keep(&mut s) {
                self.greeted.fetch_sub(1, Ordering::Relaxed);
            }
            self.held.fetch_sub(1, Ordering::Relaxed);
            // A pace, not a synchronisation: the holder comes back after it.
            thread::sleep(self.reopen);
        }
    }

    /// Holds `s` until the server closes it or the flood stops; whether it was counted greeted.
    fn keep(&self, s: &mut TcpStream) -> bool {
        if self.kind == "tls" && s.write_all(HELLO_START).is_err() {
            return false;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 512];
        let mut greeted = false;
        while !self.stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => return greeted,
                Ok(_) => {
                    if !greeted {
                        greeted = true;
                        self.greeted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // one byte a second: every read of the server's is short of its login timeout
                    if self.kind == "drip" && s.write_all(b"N").is_err() {
                        return greeted;
                    }
                }
                Err(_) => return greeted,
            }
        }
        greeted
    }
}

/// A real client from `from`: login, RETR 1, QUIT; the time from the start of the connect to the
/// QUIT answer, and the part of it that TCP's connect took.
fn real_client(addr: &SocketAddr, from: IpAddr, user: &str, pass: &str) -> Res<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut c = Conn::connect_from(Some(from), addr, Duration::from_secs(30), None)?;
    let connected = t0.elapsed();
    // each step named in an error: where a session was closed tells why
    let step = |what: &'static str| move |e: String| format!("{}: {}", what, e);
    let greeting = c.line().map_err(step("before the greeting"))?;
    if !greeting.starts_with("+OK") {
        return Err(format!("greeting: {}", greeting));
    }
    c.cmd_ok(&format!("USER {}", user)).map_err(step("USER"))?;
    c.cmd_ok(&format!("PASS {}", pass)).map_err(step("PASS"))?;
    c.cmd_ok("RETR 1").map_err(step("RETR"))?;
    c.multiline_size()?;
    c.cmd_ok("QUIT")?;
    Ok((t0.elapsed(), connected))
}

pub fn flood(a: &Args) {
    let addr = a.addr();
    let to = match a.opt("flood-addr") {
        Some(f) => f.parse().unwrap_or_else(|_| die(&format!("bad --flood-addr {}", f))),
        None => addr,
    };
    let kind = a.s("kind");
    if !matches!(kind.as_str(), "silent" | "drip" | "tls") {
        die("--kind silent, drip or tls");
    }
    let conns = a.n("conns", 1000).max(1);
    let real: Vec<IpAddr> = a
        .s("real")
        .split(',')
        .map(|ip| ip.parse().unwrap_or_else(|_| die(&format!("bad --real address {}", ip))))
        .collect();
    let (user, pass) = (a.s("user"), a.s("pass"));
    let runs = a.n("runs", 10).max(1);
    let f = Flood {
        to,
        kind,
        net: a.s("from-net"),
        addresses: a.n("addresses", 1).clamp(1, 250),
        stop: AtomicBool::new(false),
        opens: AtomicU64::new(0),
        max_opens: a.n("max-opens", 300_000),
        held: AtomicI64::new(0),
        greeted: AtomicI64::new(0),
        reopen: Duration::from_millis(a.n("reopen-ms", 0)),
    };
    let watch = Watch::start(a.n("watch", 0) as u32);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(a.n("secs", 60));
    let mut times: Vec<Vec<u32>> = vec![Vec::new(); real.len()];
    let mut connects: Vec<Vec<u32>> = vec![Vec::new(); real.len()];
    let mut failures: Vec<String> = Vec::new();
    let (mut held_at_start, mut greeted_at_start, mut opened_during, mut measure_secs, mut held_min) =
        (0, 0, 0, 0.0, i64::MAX);
    thread::scope(|s| {
        for i in 0..conns {
            let f = &f;
            if let Err(e) = thread::Builder::new().stack_size(HOLDER_STACK).spawn_scoped(s, move || f.hold(i)) {
                eprintln!("pop3bench flood: holder {}: {}", i, e);
                break;
            }
        }
        while f.held.load(Ordering::Relaxed) < conns as i64 && t0.elapsed() < RAMP {
            thread::sleep(Duration::from_millis(20));
        }
        // A server still taking the flood's connections in (a process forked for each) catches up
        // first: until the connections greeted stop growing for a second (the ramp's time at most).
        let settle = Instant::now();
        loop {
            let g = f.greeted.load(Ordering::Relaxed);
            thread::sleep(Duration::from_secs(1));
            if f.greeted.load(Ordering::Relaxed) <= g || settle.elapsed() >= RAMP {
                break;
            }
        }
        held_at_start = f.held.load(Ordering::Relaxed);
        greeted_at_start = f.greeted.load(Ordering::Relaxed);
        let opens0 = f.opens.load(Ordering::Relaxed);
        let m0 = Instant::now();
        'runs: for _ in 0..runs {
            for (k, ip) in real.iter().enumerate() {
                if Instant::now() >= deadline {
                    break 'runs;
                }
                held_min = held_min.min(f.held.load(Ordering::Relaxed));
                match real_client(&addr, *ip, &user, &pass) {
                    Ok((took, connect)) => {
                        times[k].push(micros(took));
                        connects[k].push(micros(connect));
                    }
                    Err(e) => failures.push(format!("from {}: {}", ip, e)),
                }
            }
        }
        measure_secs = m0.elapsed().as_secs_f64();
        opened_during = f.opens.load(Ordering::Relaxed).saturating_sub(opens0);
        f.stop.store(true, Ordering::Relaxed);
    });
    let watched = watch.stop();
    for e in failures.iter().take(3) {
        eprintln!("pop3bench flood: real client: {}", e);
    }
    let mut out = format!(
        "RESULT kind={} conns={} held_at_start={} greeted_at_start={} held_min={} opened_during={} reopen_rate={:.0} \
         failures={}",
        f.kind,
        conns,
        held_at_start,
        greeted_at_start,
        held_min,
        opened_during,
        opened_during as f64 / measure_secs.max(0.001),
        failures.len()
    );
    for (k, (t, c)) in times.iter_mut().zip(connects.iter_mut()).enumerate() {
        t.sort_unstable();
        c.sort_unstable();
        let over = t.iter().filter(|&&us| us > 100_000).count();
        out.push_str(&format!(" real{}_over_100ms={} real{}_connect_max_ms={:.1}", k, over, k, pct_ms(c, 1.0)));
        out.push_str(&format!(
            " real{}_n={} real{}_p50_ms={:.1} real{}_max_ms={:.1}",
            k,
            t.len(),
            k,
            pct_ms(t, 0.5),
            k,
            pct_ms(t, 1.0)
        ));
    }
    println!("{}{}", out, watched);
}

pub fn tlsdrip(a: &Args) {
    let addr = a.addr();
    let config = a.tls().unwrap_or_else(|| die("tlsdrip needs --tls CERT"));
    let every = Duration::from_millis(a.n("every-ms", 500).max(1));
    let secs = Duration::from_secs(a.n("secs", 30));
    let mut conn = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
        .unwrap_or_else(|e| die(&format!("TLS: {}", e)));
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap_or_else(|e| die(&format!("TLS: {}", e)));
    }
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap_or_else(|e| die(&e.to_string()));
    let _ = s.set_read_timeout(Some(every));
    let t0 = Instant::now();
    let mut sent = 0;
    let mut closed = None;
    let mut buf = [0u8; 512];
    'drip: for b in &hello {
        if t0.elapsed() >= secs {
            break;
        }
        if s.write_all(&[*b]).is_err() {
            closed = Some(t0.elapsed());
            break;
        }
        sent += 1;
        let byte_at = Instant::now();
        while byte_at.elapsed() < every {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = Some(t0.elapsed());
                    break 'drip;
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => {
                    closed = Some(t0.elapsed());
                    break 'drip;
                }
            }
        }
    }
    match closed {
        Some(t) => println!("RESULT closed_s={:.2} bytes_sent={} hello_bytes={}", t.as_secs_f64(), sent, hello.len()),
        None => println!(
            "RESULT closed_s=open bytes_sent={} hello_bytes={} secs={:.1}",
            sent,
            hello.len(),
            t0.elapsed().as_secs_f64()
        ),
    }
}
