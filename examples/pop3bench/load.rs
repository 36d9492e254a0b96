//! The load modes: logins (session rate), retr (RETR throughput), stat (first STAT), idle (held sessions), dele (UPDATE time).

use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::conn::{Conn, Handshake, Res};
use crate::memory::Watch;
use crate::{die, Args};

pub fn user_name(prefix: &str, i: u64) -> String {
    format!("{}{:04}", prefix, i)
}

fn parse_stat(l: &str) -> (u64, u64) {
    let mut it = l.split_whitespace().skip(1);
    let n = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let o = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    (n, o)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- logins

/// What one `logins` client thread did.
#[derive(Default)]
struct LoginStats {
    ok: u64,
    errors: u64,
    first_errors: Vec<String>,
    /// Session times (connect to QUIT answer) and TLS handshake times, microseconds.
    lat: Vec<u32>,
    hs_lat: Vec<u32>,
    /// TLS handshakes that were not full ones (resumed), and what was negotiated.
    not_full: u64,
    negotiated: Vec<String>,
}

impl LoginStats {
    /// Counts what a TLS handshake negotiated, each different summary once.
    fn note_negotiated(&mut self, summary: String) {
        if !self.negotiated.contains(&summary) {
            self.negotiated.push(summary);
        }
    }

    /// Adds what another thread did.
    fn add(&mut self, st: LoginStats) {
        self.ok += st.ok;
        self.errors += st.errors;
        self.first_errors.extend(st.first_errors);
        self.lat.extend(st.lat);
        self.hs_lat.extend(st.hs_lat);
        self.not_full += st.not_full;
        for n in st.negotiated {
            self.note_negotiated(n);
        }
    }
}

/// Runs `f(0)` .. `f(n - 1)` on n threads at once; what each returned, or Err where it panicked.
pub fn on_threads<T: Send>(n: u64, f: impl Fn(u64) -> T + Sync) -> Vec<thread::Result<T>> {
    thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = (0..n).map(|t| s.spawn(move || f(t))).collect();
        hs.into_iter().map(|h| h.join()).collect()
    })
}

pub fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// The p-th percentile of sorted microsecond samples, in milliseconds.
pub fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        0.0
    } else {
        sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
    }
}

pub fn logins(a: &Args) {
    let addr = a.addr();
    let prefix = a.s("prefix");
    let users = a.n("users", 64).max(1);
    let pass = a.s("pass");
    let conc = a.n("conc", 8).max(1);
    let secs = a.n("secs", 5);
    let max = a.n("max", 100_000);
    let tls = a.tls();
    let from = a.opt("from").map(|ip| ip.parse().unwrap_or_else(|_| die(&format!("bad --from {}", ip))));
    let watch = Watch::start(a.n("watch", 0) as u32);
    let started = AtomicU64::new(0);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let threads = on_threads(conc, |t| {
        let user = user_name(&prefix, t % users);
        let mut st = LoginStats::default();
        while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max {
            let s0 = Instant::now();
            let r = (|| -> Res<Option<Handshake>> {
                let mut c = Conn::session_from(from, &addr, Duration::from_secs(30), tls.as_ref(), &user, &pass)?;
                c.cmd_ok("STAT")?;
                c.cmd_ok("QUIT")?;
                let h = c.handshake.take();
                c.close();
                Ok(h)
            })();
            match r {
                Ok(h) => {
                    st.ok += 1;
                    st.lat.push(micros(s0.elapsed()));
                    if let Some(h) = h {
                        st.hs_lat.push(micros(h.time));
                        st.not_full += u64::from(!h.full);
                        st.note_negotiated(h.summary);
                    }
                }
                Err(e) => {
                    st.errors += 1;
                    if st.first_errors.len() < 3 {
                        st.first_errors.push(e);
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
        st
    });
    let mut all = LoginStats::default();
    for st in threads {
        all.add(st.unwrap_or_else(|_| LoginStats {
            errors: 1,
            first_errors: vec!["thread panicked".into()],
            ..Default::default()
        }));
    }
    let el = t0.elapsed().as_secs_f64();
    let watched = watch.stop();
    all.lat.sort_unstable();
    all.hs_lat.sort_unstable();
    for e in all.first_errors.iter().take(3) {
        eprintln!("pop3bench logins: error: {}", e);
    }
    let tls_part = if tls.is_some() {
        format!(
            " tls={} full_handshakes={} resumed={} hs_p50_ms={:.2} hs_p99_ms={:.2}",
            if all.negotiated.is_empty() { "-".into() } else { all.negotiated.join(",") },
            all.hs_lat.len() as u64 - all.not_full,
            all.not_full,
            pct_ms(&all.hs_lat, 0.5),
            pct_ms(&all.hs_lat, 0.99)
        )
    } else {
        String::new()
    };
    println!(
        "RESULT sessions={} errors={} failed_pct={:.2} secs={:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}{}{}",
        all.ok,
        all.errors,
        100.0 * all.errors as f64 / (all.ok + all.errors).max(1) as f64,
        el,
        all.ok as f64 / el,
        pct_ms(&all.lat, 0.5),
        pct_ms(&all.lat, 0.99),
        pct_ms(&all.lat, 1.0),
        tls_part,
        watched
    );
}

// ---------------------------------------------------------------- retr

pub fn retr(a: &Args) {
    let addr = a.addr();
    let user = a.s("user");
    let pass = a.s("pass");
    let passes = a.n("passes", 3).max(1);
    let secs = a.n("secs", 120);
    let window = a.n("window", 1).max(1);
    let tls = a.tls();
    let mut negotiated = String::from("-");
    let t_all = Instant::now();
    let mut best: Option<(f64, u64, u64, f64)> = None; // (MB/s, bytes, messages, secs)
    let mut mismatches = 0u64;
    let mut total_bytes = 0u64; // over every pass, for CPU per byte
    if window > 1 {
        // pipelining only where the server offers it (RFC 2449)
        let capa = (|| -> Res<bool> {
            let mut c = Conn::connect(&addr, Duration::from_secs(30), tls.as_ref())?;
            c.line()?;
            if c.cmd_ok("CAPA").is_err() {
                return Ok(false);
            }
            let yes = c.multiline_lines()?.iter().any(|l| l.eq_ignore_ascii_case("PIPELINING"));
            if c.cmd_ok("QUIT").is_ok() {
                c.close();
            }
            Ok(yes)
        })();
        match capa {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("pop3bench retr: no PIPELINING in CAPA, skipped");
                println!("RESULT skipped=1");
                return;
            }
            Err(e) => {
                eprintln!("pop3bench retr: CAPA: {}", e);
                println!("RESULT error=1");
                return;
            }
        }
    }
    for p in 0..passes {
        if p > 0 && t_all.elapsed() > Duration::from_secs(secs) {
            break;
        }
        let r = (|| -> Res<(u64, u64, f64, u64)> {
            let mut c = Conn::session_from(None, &addr, Duration::from_secs(120), tls.as_ref(), &user, &pass)?;
            if let Some(h) = &c.handshake {
                negotiated.clone_from(&h.summary);
            }
            let st = c.cmd_ok("STAT")?;
            let (n, _) = parse_stat(&st);
            c.cmd_ok("LIST")?;
            let mut sizes = vec![0u64; n as usize + 1];
            for l in c.multiline_lines()? {
                let mut it = l.split_whitespace();
                if let (Some(i), Some(s)) = (it.next(), it.next()) {
                    if let (Ok(i), Ok(s)) = (i.parse::<usize>(), s.parse::<u64>()) {
                        if i < sizes.len() {
                            sizes[i] = s;
                        }
                    }
                }
            }
            let t0 = Instant::now();
            let mut bytes = 0u64;
            let mut mism = 0u64;
            let (mut sent, mut done) = (0u64, 0u64);
            let mut stop = false;
            while done < sent || (!stop && sent < n) {
                // keep up to `window` RETRs outstanding, sent in one write
                let mut batch = String::new();
                while !stop && sent < n && sent - done < window {
                    sent += 1;
                    batch.push_str(&format!("RETR {}\r\n", sent));
                }
                if !batch.is_empty() {
                    c.write_all(batch.as_bytes())?;
                }
                let l = c.line()?;
                if !l.starts_with("+OK") {
                    return Err(format!("RETR {} -> {}", done + 1, l));
                }
                let oct = c.multiline_size()?;
                done += 1;
                bytes += oct;
                if oct != sizes[done as usize] {
                    if mism < 3 {
                        eprintln!(
                            "pop3bench retr: message {}: LIST says {} octets, RETR sent {}",
                            done, sizes[done as usize], oct
                        );
                    }
                    mism += 1;
                }
                if !stop && t_all.elapsed() > Duration::from_secs(secs) {
                    eprintln!("pop3bench retr: time limit reached after {} messages", done);
                    stop = true;
                }
            }
            let el = t0.elapsed().as_secs_f64();
            c.cmd_ok("QUIT")?;
            c.close();
            Ok((bytes, done, el, mism))
        })();
        match r {
            Ok((bytes, done, el, mism)) => {
                mismatches = mismatches.max(mism);
                total_bytes += bytes;
                let mbs = bytes as f64 / 1e6 / el;
                eprintln!(
                    "pop3bench retr: pass {}: {} messages, {} bytes in {:.3} s = {:.1} MB/s",
                    p + 1,
                    done,
                    bytes,
                    el,
                    mbs
                );
                if !matches!(best, Some(b) if b.0 >= mbs) {
                    best = Some((mbs, bytes, done, el));
                }
            }
            Err(e) => {
                eprintln!("pop3bench retr: {}", e);
                println!("RESULT error=1");
                return;
            }
        }
    }
    let (mbs, bytes, done, el) = best.unwrap_or((0.0, 0, 0, 0.0));
    let tls_part = if tls.is_some() { format!(" tls={}", negotiated) } else { String::new() };
    println!(
        "RESULT mbs={:.1} bytes={} messages={} secs={:.3} size_mismatches={} total_bytes={}{}",
        mbs, bytes, done, el, mismatches, total_bytes, tls_part
    );
}

// ---------------------------------------------------------------- stat / idle

/// Prints `ready` (flushed, for the script that waits for it), then waits for a line or EOF
/// on stdin, or `hold` seconds.
fn announce_and_wait(ready: &str, hold: u64) {
    println!("{}", ready);
    let _ = io::stdout().flush();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut l = String::new();
        let _ = io::stdin().lock().read_line(&mut l);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(hold));
}

pub fn stat(a: &Args) {
    let addr = a.addr();
    let user = a.s("user");
    let pass = a.s("pass");
    let hold = a.n("hold", 60);
    let t0 = Instant::now();
    let r = (|| -> Res<(Conn, f64, f64, String)> {
        let mut c = Conn::session_from(None, &addr, Duration::from_secs(300), None, &user, &pass)?;
        let t_login = t0.elapsed();
        let st = c.cmd_ok("STAT")?;
        Ok((c, ms(t_login), ms(t0.elapsed()), st))
    })();
    match r {
        Ok((mut c, login_ms, stat_ms, st)) => {
            let (n, o) = parse_stat(&st);
            announce_and_wait("STATDONE", hold);
            let q = c.cmd_ok("QUIT").is_ok();
            println!(
                "RESULT stat_ms={:.1} login_ms={:.1} messages={} octets={} quit_ok={}",
                stat_ms, login_ms, n, o, q as u8
            );
        }
        Err(e) => {
            eprintln!("pop3bench stat: error: {}", e);
            println!("STATDONE");
            println!("RESULT error=1");
        }
    }
}

pub fn idle(a: &Args) {
    let addr = a.addr();
    let prefix = a.s("prefix");
    let users = a.n("users", 1000);
    let pass = a.s("pass");
    let conc = a.n("conc", 8).max(1);
    let hold = a.n("hold", 120);
    let next = AtomicU64::new(0);
    let conns: Mutex<Vec<Conn>> = Mutex::new(Vec::new());
    let errs = AtomicU64::new(0);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(hold);
    on_threads(conc, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= users || Instant::now() > deadline {
            return;
        }
        let user = user_name(&prefix, i);
        match Conn::session_from(None, &addr, Duration::from_secs(60), None, &user, &pass) {
            Ok(c) => conns.lock().unwrap().push(c),
            Err(e) => {
                if errs.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("pop3bench idle: {}: {}", user, e);
                }
            }
        }
    });
    let open_secs = t0.elapsed().as_secs_f64();
    let n = conns.lock().unwrap().len();
    announce_and_wait(
        &format!("READY sessions={} errors={} secs={:.2}", n, errs.load(Ordering::Relaxed), open_secs),
        hold,
    );
    let mut quit_ok = 0;
    let mut list = std::mem::take(&mut *conns.lock().unwrap());
    for c in list.iter_mut() {
        if c.send("QUIT").is_ok() {
            quit_ok += 1;
        }
    }
    for c in list.iter_mut() {
        let _ = c.line();
    }
    println!(
        "RESULT sessions={} errors={} open_secs={:.2} quit_sent={}",
        n,
        errs.load(Ordering::Relaxed),
        open_secs,
        quit_ok
    );
}

// ---------------------------------------------------------------- dele (UPDATE cost)

/// Log in, DELE the messages `--which` names (`first`: message 1; `tenth`: 1, 11, 21, ...;
/// `all`), one command at a time (popa3d does not pipeline), then time QUIT: from sending it
/// to its +OK and to the server closing the connection (the UPDATE is done by then in every
/// server measured). A new session then checks that the right number of messages is left.
pub fn dele(a: &Args) {
    let addr = a.addr();
    let user = a.s("user");
    let pass = a.s("pass");
    let which = a.s("which");
    let timeout = Duration::from_secs(300);
    let r = (|| -> Res<(u64, u64, f64, f64, u64)> {
        let mut c = Conn::session_from(None, &addr, timeout, None, &user, &pass)?;
        let (n, _) = parse_stat(&c.cmd_ok("STAT")?);
        let marked: Vec<u64> = match which.as_str() {
            "first" => vec![1],
            "tenth" => (1..=n).step_by(10).collect(),
            "all" => (1..=n).collect(),
            w => return Err(format!("--which {}: first, tenth or all", w)),
        };
        for i in &marked {
            c.cmd_ok(&format!("DELE {}", i))?;
        }
        let t0 = Instant::now();
        c.cmd_ok("QUIT")?;
        let ok = t0.elapsed();
        // the server closes after its UPDATE: wait for EOF
        while c.line().is_ok() {}
        let closed = t0.elapsed();
        let mut c = Conn::session_from(None, &addr, timeout, None, &user, &pass)?;
        let (left, _) = parse_stat(&c.cmd_ok("STAT")?);
        c.cmd_ok("QUIT")?;
        Ok((n, marked.len() as u64, ms(ok), ms(closed), left))
    })();
    match r {
        Ok((n, deleted, ok_ms, closed_ms, left)) => println!(
            "RESULT messages={} deleted={} quit_ok_ms={:.1} quit_closed_ms={:.1} left={} left_ok={}",
            n,
            deleted,
            ok_ms,
            closed_ms,
            left,
            u8::from(left == n - deleted)
        ),
        Err(e) => {
            eprintln!("pop3bench dele: error: {}", e);
            println!("RESULT error=1");
        }
    }
}
