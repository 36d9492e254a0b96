//! The modes of issue 18's bench rows about logins: household (a NAT with a wrong password beside a good one), spacing (wrong passwords for one account by each mechanism), guess (distributed guessing), connflood (log volume).

// Every mode connects from loopback addresses it is given (net.rs), and is bounded in count and time.
//   pop3bench household --addr A --from IP --good U --bad U --pass PW [--secs 30] [--good-every-ms 3000]
//                       [--bad-every-ms 2000]
//       One address: a device logs in as --bad with a wrong password every 2 s (one attempt after the
//       other), while --good logs in correctly every 3 s (after one login before the run: it has logged
//       in from there before). Prints the good logins' times, connect to the +OK of PASS.
//   pop3bench spacing --addr A --mech user|plain|login|scram --user U --from-net 127.0.41 [--count 12]
//       --count wrong passwords for U, one after the other, each from an address of its own (NET.1,
//       NET.2, ...), by USER/PASS, AUTH PLAIN, AUTH LOGIN or AUTH SCRAM-SHA-256. Prints when the first
//       and the last answer came (the span).
//   pop3bench guess --addr A --user U --from-net 127.0.60 [--threads 8] [--secs 30] [--max 100000]
//       Distributed guessing: threads guess U's password, one guess per connection, each connection from
//       the next of 250 addresses; counts the answers that came within the window.
//   pop3bench connflood --addr A --from-net 127.0.70 [--addresses 100] [--threads 8] [--secs 10] [--max 200000]
//       Connections that read the greeting and close, from rotating addresses, as fast as they go.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::conn::{Conn, Res};
use crate::load::{micros, on_threads, pct_ms};
use crate::net::address_in;
use crate::scram::ScramClient;
use crate::{die, Args};

/// The longest any read may take: a hang guard (answers spaced by penalties wait up to a few seconds).
const HANG_GUARD: Duration = Duration::from_secs(30);

fn from_arg(a: &Args) -> IpAddr {
    let f = a.s("from");
    f.parse().unwrap_or_else(|_| die(&format!("bad --from {}", f)))
}

/// Sleeps until `at` (if it is still ahead) or `deadline`, whichever is first.
fn sleep_until(at: Instant, deadline: Instant) {
    let until = at.min(deadline);
    let now = Instant::now();
    if until > now {
        thread::sleep(until - now);
    }
}

/// One USER/PASS login from `from`; the answer to PASS and how long after the connect it came.
fn login_answer(addr: &std::net::SocketAddr, from: IpAddr, user: &str, pass: &str) -> Res<(String, Duration)> {
    let t0 = Instant::now();
    let mut c = Conn::connect_from(Some(from), addr, HANG_GUARD, None)?;
    let g = c.line()?;
    if !g.starts_with("+OK") {
        return Err(format!("greeting: {}", g));
    }
    c.cmd_ok(&format!("USER {}", user))?;
    c.send(&format!("PASS {}", pass))?;
    let answer = c.line()?;
    let took = t0.elapsed();
    if c.send("QUIT").is_ok() {
        let _ = c.line();
    }
    Ok((answer, took))
}

pub fn household(a: &Args) {
    let addr = a.addr();
    let from = from_arg(a);
    let (good, bad, pass) = (a.s("good"), a.s("bad"), a.s("pass"));
    let secs = a.n("secs", 30);
    let good_every = Duration::from_millis(a.n("good-every-ms", 3000));
    let bad_every = Duration::from_millis(a.n("bad-every-ms", 2000));
    // The good account has logged in from this address before (as a household's would).
    match login_answer(&addr, from, &good, &pass) {
        Ok((answer, _)) if answer.starts_with("+OK") => {}
        Ok((answer, _)) => die(&format!("the first login of {} failed: {}", good, answer)),
        Err(e) => die(&format!("the first login of {} failed: {}", good, e)),
    }
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let bad_pass = format!("old-{}", pass);
    let (bad_tries, bad_refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let good_lat = Mutex::new(Vec::new());
    let good_failed = Mutex::new(Vec::new());
    thread::scope(|s| {
        s.spawn(|| {
            let mut next = t0;
            while Instant::now() < deadline {
                bad_tries.fetch_add(1, Ordering::Relaxed);
                if let Ok((answer, _)) = login_answer(&addr, from, &bad, &bad_pass) {
                    bad_refused.fetch_add(u64::from(answer.starts_with("-ERR")), Ordering::Relaxed);
                }
                next += bad_every;
                sleep_until(next, deadline);
            }
        });
        s.spawn(|| {
            // half a second after the device, so the two meet at different moments of its cycle
            let mut next = t0 + Duration::from_millis(500);
            sleep_until(next, deadline);
            while Instant::now() < deadline {
                match login_answer(&addr, from, &good, &pass) {
                    Ok((answer, took)) if answer.starts_with("+OK") => good_lat.lock().unwrap().push(micros(took)),
                    Ok((answer, _)) => good_failed.lock().unwrap().push(answer),
                    Err(e) => good_failed.lock().unwrap().push(e),
                }
                next += good_every;
                sleep_until(next, deadline);
            }
        });
    });
    let mut lat = good_lat.into_inner().unwrap();
    lat.sort_unstable();
    let failed = good_failed.into_inner().unwrap();
    for e in failed.iter().take(3) {
        eprintln!("pop3bench household: good login failed: {}", e);
    }
    println!(
        "RESULT good_logins={} good_failed={} good_p50_ms={:.1} good_max_ms={:.1} bad_tries={} bad_refused={} secs={:.1}",
        lat.len(),
        failed.len(),
        pct_ms(&lat, 0.5),
        pct_ms(&lat, 1.0),
        bad_tries.load(Ordering::Relaxed),
        bad_refused.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );
}

/// One wrong password for `user` by `mech`, from `from`: the answer (the last line the server sent).
fn wrong_login(addr: &std::net::SocketAddr, from: IpAddr, mech: &str, user: &str, wrong: &str) -> Res<String> {
    let mut c = Conn::connect_from(Some(from), addr, HANG_GUARD, None)?;
    let g = c.line()?;
    if !g.starts_with("+OK") {
        return Err(format!("greeting: {}", g));
    }
    let mut say = |line: &str| -> Res<String> {
        c.send(line)?;
        c.line()
    };
    let answer = match mech {
        "user" => {
            let u = say(&format!("USER {}", user))?;
            if !u.starts_with("+OK") {
                return Err(format!("USER: {}", u));
            }
            say(&format!("PASS {}", wrong))?
        }
        "plain" => say(&format!("AUTH PLAIN {}", B64.encode(format!("\0{}\0{}", user, wrong))))?,
        "login" => {
            let u = say(&format!("AUTH LOGIN {}", B64.encode(user)))?;
            if !u.starts_with("+ ") {
                return Err(format!("AUTH LOGIN: {}", u));
            }
            say(&B64.encode(wrong))?
        }
        "scram" => {
            let mut client = ScramClient::new(user, wrong, None);
            let first = say(&format!("AUTH SCRAM-SHA-256 {}", client.first()))?;
            let Some(challenge) = first.strip_prefix("+ ") else {
                return Err(format!("AUTH SCRAM-SHA-256: {}", first));
            };
            say(&client.finish(challenge)?)?
        }
        m => die(&format!("--mech {}: user, plain, login or scram", m)),
    };
    if c.send("QUIT").is_ok() {
        let _ = c.line();
    }
    Ok(answer)
}

pub fn spacing(a: &Args) {
    let addr = a.addr();
    let (mech, user, net) = (a.s("mech"), a.s("user"), a.s("from-net"));
    let count = a.n("count", 12).max(2);
    let t0 = Instant::now();
    let mut times = Vec::new();
    let mut refused = 0;
    for i in 0..count {
        match wrong_login(&addr, address_in(&net, i), &mech, &user, "wrong-password") {
            Ok(answer) => {
                times.push(t0.elapsed().as_secs_f64());
                refused += u64::from(answer.starts_with("-ERR [AUTH]"));
                if !answer.starts_with("-ERR") {
                    eprintln!("pop3bench spacing: {} attempt {}: {}", mech, i + 1, answer);
                }
            }
            Err(e) => {
                eprintln!("pop3bench spacing: {} attempt {}: {}", mech, i + 1, e);
                println!("RESULT error=1 mech={}", mech);
                return;
            }
        }
    }
    let gaps: Vec<String> = times.windows(2).map(|w| format!("{:.2}", w[1] - w[0])).collect();
    println!(
        "RESULT mech={} answers={} auth_refusals={} first_s={:.2} last_s={:.2} span_s={:.2} gaps={}",
        mech,
        times.len(),
        refused,
        times[0],
        times[times.len() - 1],
        times[times.len() - 1] - times[0],
        gaps.join(",")
    );
}

pub fn guess(a: &Args) {
    let addr = a.addr();
    let (user, net) = (a.s("user"), a.s("from-net"));
    let threads = a.n("threads", 8).max(1);
    let secs = a.n("secs", 30);
    let max = a.n("max", 100_000);
    let next = AtomicU64::new(0);
    let (answered, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    on_threads(threads, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let left = deadline.saturating_duration_since(Instant::now());
        if i >= max || left.is_zero() {
            return;
        }
        // the window, not a hang guard: an answer not back by the deadline is not counted
        let r = (|| -> Res<String> {
            let mut c =
                Conn::connect_from(Some(address_in(&net, i)), &addr, left.max(Duration::from_millis(50)), None)?;
            c.line()?;
            c.cmd_ok(&format!("USER {}", user))?;
            c.send(&format!("PASS wrong-{}", i))?;
            c.line()
        })();
        match r {
            Ok(answer) if answer.starts_with("-ERR") && Instant::now() <= deadline => {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let n = answered.load(Ordering::Relaxed);
    println!(
        "RESULT guesses={} unanswered={} secs={} rate={:.2}",
        n,
        lost.load(Ordering::Relaxed),
        secs,
        n as f64 / secs.max(1) as f64
    );
}

pub fn connflood(a: &Args) {
    let addr = a.addr();
    let net = a.s("from-net");
    let addresses = a.n("addresses", 100).clamp(1, 250);
    let threads = a.n("threads", 8).max(1);
    let secs = a.n("secs", 10);
    let max = a.n("max", 200_000);
    let (next, tried) = (AtomicU64::new(0), AtomicU64::new(0));
    let greeted = AtomicU64::new(0);
    let lat = Mutex::new(Vec::new());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    on_threads(threads, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= max || Instant::now() >= deadline {
            return;
        }
        tried.fetch_add(1, Ordering::Relaxed);
        let c0 = Instant::now();
        if let Ok(mut c) =
            Conn::connect_from(Some(address_in(&net, i % addresses)), &addr, Duration::from_secs(1), None)
        {
            if c.line().is_ok() {
                greeted.fetch_add(1, Ordering::Relaxed);
                lat.lock().unwrap().push(micros(c0.elapsed()));
            }
        }
    });
    let el = t0.elapsed().as_secs_f64();
    let mut lat = lat.into_inner().unwrap();
    lat.sort_unstable();
    let n = tried.load(Ordering::Relaxed);
    println!(
        "RESULT connections={} greeted={} secs={:.2} rate={:.0} greeting_p50_ms={:.2}",
        n,
        greeted.load(Ordering::Relaxed),
        el,
        n as f64 / el,
        pct_ms(&lat, 0.5)
    );
}
