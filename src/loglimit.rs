//! Logs that cannot be flooded: rate limits on connection and failure lines, and client text made safe.
//!
//! The limits hold per address and in total, and a periodic line counts what
//! was suppressed.
//!
//! Lines about sessions that never logged in (their end, failed logins,
//! TLS failures, sessions closed at the login deadline) pass through
//! `allow`: a token bucket per client address (`LOG_PER_ADDRESS_BURST`
//! lines, then one per `LOG_PER_ADDRESS_EVERY`) and one for all of them
//! (`LOG_BURST`, then `LOG_RATE` a second). What is held back is counted,
//! and `summary` (called every half second by the daemon) logs the count
//! every `LOG_SUMMARY_INTERVAL`. Lines about logged-in sessions are never
//! held back. Client text (user names) goes through `client_text`: at most
//! `LOG_CLIENT_TEXT` bytes, anything but printable ASCII escaped, so no
//! line can be forged or made long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::limits::{
    LOG_BURST, LOG_CLIENT_TEXT, LOG_MAX_ADDRESSES, LOG_PER_ADDRESS_BURST, LOG_PER_ADDRESS_EVERY, LOG_RATE,
    LOG_SHARED_ADDRESSES, LOG_SUMMARY_INTERVAL,
};
use crate::{decimal, nofollow};

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(burst), at: now }
    }

    /// Takes a token if there is one.
    fn take(&mut self, burst: u32, per_second: f64, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Limiter {
    all: Bucket,
    per_address: HashMap<IpAddr, Bucket>,
    suppressed: u64,
    since: Instant,
}

static LIMITER: Mutex<Option<Limiter>> = Mutex::new(None);

fn per_address_rate() -> f64 {
    1.0 / LOG_PER_ADDRESS_EVERY.as_secs_f64()
}

/// inetd mode: each session is a process of its own, so the budget for
/// all of them lives in this file in state_dir.
static SHARED: OnceLock<PathBuf> = OnceLock::new();

/// Keeps the budgets in `path` (inetd mode), read and replaced under a
/// lock for each line held to them: the one for all clients, and one for
/// each address that used some of its own recently (at most
/// `LOG_SHARED_ADDRESSES`; a full bucket is the same as none).
pub fn share_through(path: PathBuf) {
    let _ = SHARED.set(path);
}

/// `allow` through the shared file: a first line `tokens at_ms
/// suppressed since_ms` for all clients, then `address tokens at_ms` for
/// each address with a bucket not full. A file that cannot be used lets
/// the line through (logged, not lost).
fn allow_shared(path: &Path, ip: Option<IpAddr>) -> bool {
    let Ok(_lock) = nofollow::lock_state(&path.with_extension("lock")) else { return true };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let text = nofollow::read_state(path).unwrap_or_default();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    // Every address's bucket as of now; full ones are dropped.
    let burst = f64::from(LOG_PER_ADDRESS_BURST);
    let mut addresses: Vec<(IpAddr, f64)> = rest
        .lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            let (ip, tokens, at) =
                (w.next()?.parse().ok()?, decimal::parse3(w.next()?)?, w.next()?.parse::<u64>().ok()?);
            let tokens = (tokens + now.saturating_sub(at.min(now)) as f64 / 1000.0 * per_address_rate()).min(burst);
            (tokens.is_finite() && tokens < burst).then_some((ip, tokens.max(0.0)))
        })
        .take(LOG_SHARED_ADDRESSES)
        .collect();
    let known = addresses.len();
    let address_ok = match ip.map(|ip| ip.to_canonical()) {
        None => true,
        Some(ip) => match addresses.iter_mut().find(|(a, _)| *a == ip) {
            Some((_, tokens)) if *tokens >= 1.0 => {
                *tokens -= 1.0;
                true
            }
            Some(_) => false,
            // No room to remember it: only the budget for all holds it.
            None if known >= LOG_SHARED_ADDRESSES => true,
            None => {
                addresses.push((ip, burst - 1.0));
                true
            }
        },
    };
    let mut fields = first.split_whitespace();
    let tokens = fields.next().and_then(decimal::parse3);
    let mut next = || fields.next().and_then(|w| w.parse::<u64>().ok());
    let (at, suppressed, since) = (next(), next(), next());
    let at = at.map_or(now, |a| a.min(now));
    let refill = now.saturating_sub(at) as f64 / 1000.0 * LOG_RATE;
    let mut tokens = tokens.map_or(f64::from(LOG_BURST), |t| (t + refill).min(f64::from(LOG_BURST)));
    let mut suppressed = suppressed.unwrap_or(0);
    let mut since = since.unwrap_or(now);
    let ok = address_ok && tokens >= 1.0;
    if ok {
        tokens -= 1.0;
        if suppressed > 0 && now.saturating_sub(since) >= LOG_SUMMARY_INTERVAL.as_millis() as u64 {
            let secs = now.saturating_sub(since) / 1000;
            log::warn!("suppressed {suppressed} connection and failure log lines in the last {secs}s (rate limit)");
            suppressed = 0;
            since = now;
        }
    } else {
        if suppressed == 0 {
            since = now;
        }
        suppressed += 1;
    }
    let mut text = format!("{} {now} {suppressed} {since}\n", decimal::format3(tokens));
    for (ip, tokens) in &addresses {
        text.push_str(&format!("{ip} {} {now}\n", decimal::format3(*tokens)));
    }
    let _ = nofollow::replace_state(path, &text);
    ok
}

/// Whether a connection or failure line about a client at `ip` may be
/// logged now; if not, it is counted for the next summary.
pub fn allow(ip: Option<IpAddr>) -> bool {
    if let Some(path) = SHARED.get() {
        return allow_shared(path, ip);
    }
    let mut guard = LIMITER.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let l = guard.get_or_insert_with(|| Limiter {
        all: Bucket::full(LOG_BURST, now),
        per_address: HashMap::new(),
        suppressed: 0,
        since: now,
    });
    let address_ok = match ip {
        None => true,
        Some(ip) => {
            if l.per_address.len() >= LOG_MAX_ADDRESSES && !l.per_address.contains_key(&ip) {
                // Full buckets are the same as none: forget them, or all.
                let (rate, burst) = (per_address_rate(), f64::from(LOG_PER_ADDRESS_BURST));
                l.per_address.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
                if l.per_address.len() >= LOG_MAX_ADDRESSES {
                    l.per_address.clear();
                }
            }
            let bucket = l.per_address.entry(ip.to_canonical()).or_insert(Bucket::full(LOG_PER_ADDRESS_BURST, now));
            bucket.take(LOG_PER_ADDRESS_BURST, per_address_rate(), now)
        }
    };
    let ok = address_ok && l.all.take(LOG_BURST, LOG_RATE, now);
    if !ok {
        l.suppressed += 1;
    }
    ok
}

/// Logs how many lines were held back, at most every `LOG_SUMMARY_INTERVAL`.
pub fn summary() {
    let mut guard = LIMITER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(l) = guard.as_mut() else { return };
    let now = Instant::now();
    let elapsed = now.duration_since(l.since);
    if l.suppressed > 0 && elapsed >= LOG_SUMMARY_INTERVAL {
        log::warn!(
            "suppressed {} connection and failure log lines in the last {}s (rate limit)",
            l.suppressed,
            elapsed.as_secs()
        );
        l.suppressed = 0;
        l.since = now;
    } else if l.suppressed == 0 && elapsed >= LOG_SUMMARY_INTERVAL {
        l.since = now;
    }
}

/// Client text as it may be logged: at most `LOG_CLIENT_TEXT` bytes,
/// printable ASCII kept (but `\` and `"`), everything else `\xNN`, and
/// how much was cut.
pub fn client_text(text: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in text.iter().take(LOG_CLIENT_TEXT) {
        match b {
            b'\\' | b'"' => out.push_str(&format!("\\{}", b as char)),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if text.len() > LOG_CLIENT_TEXT {
        out.push_str(&format!("...({} bytes)", text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn client_text_is_escaped_and_truncated() {
        assert_eq!(client_text(b"alice"), "\"alice\"");
        assert_eq!(client_text(b"a\nb\r\x1b[31m\"\\\xff"), "\"a\\x0ab\\x0d\\x1b[31m\\\"\\\\\\xff\"");
        let long = client_text(&[b'\n'; 6000]);
        assert!(long.len() <= 4 * LOG_CLIENT_TEXT + 20 && long.ends_with("...(6000 bytes)"), "{long}");
        assert!(!long.contains('\n'));
    }

    #[test]
    fn buckets_hold_back_bursts() {
        let now = Instant::now();
        let mut b = Bucket::full(3, now);
        assert!((0..3).all(|_| b.take(3, 1.0, now)));
        assert!(!b.take(3, 1.0, now));
        assert!(b.take(3, 1.0, now + Duration::from_millis(1100)), "refilled");
        assert!(!b.take(3, 1.0, now + Duration::from_millis(1200)));
    }

    #[test]
    fn one_address_is_held_back_before_the_rest() {
        let ip: IpAddr = "192.0.2.99".parse().unwrap();
        let allowed = (0..50).filter(|_| allow(Some(ip))).count();
        // Other tests share the global bucket: this address gets its burst at most.
        assert!(allowed as u32 <= LOG_PER_ADDRESS_BURST + 1, "{allowed}");
    }

    /// inetd's sessions share the per-address budgets too: one address
    /// gets its burst across "processes" (calls that reread the file),
    /// another address its own, and the file stays bounded.
    #[test]
    fn the_shared_file_holds_each_address_to_its_own_budget() {
        let dir = crate::testkit::TempDir::new("logbudget");
        let path = dir.join("logbudget");
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = (0..30).filter(|_| allow_shared(&path, Some(one))).count();
        assert_eq!(first as u32, LOG_PER_ADDRESS_BURST, "one address: its burst, then held back");
        let second = (0..5).filter(|_| allow_shared(&path, Some(two))).count();
        assert_eq!(second, 5, "another address has a budget of its own");
        for i in 0..(LOG_SHARED_ADDRESSES + 50) {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            allow_shared(&path, Some(ip));
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= LOG_SHARED_ADDRESSES + 1, "{lines} lines");
    }
}
