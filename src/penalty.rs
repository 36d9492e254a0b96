//! Failed logins per address, network, account and known pair, decaying: how long a login's answer waits.
//!
//! In inetd mode the record is a file in state_dir, shared by the sessions.
//!
//! Every failed login adds 1 to the score of its address, of its network
//! (the address masked to `network_prefix_ipv4`/`_ipv6`) and of the account
//! it named; once a key has failures, each attempt counts as one more when
//! it takes its slot (so parallel guesses cannot all find the old score),
//! and a success takes its own back. A success clears nothing else (an
//! attacker's own account must not reset its record). A score halves every
//! `PENALTY_HALF_LIFE`.
//!
//! An account logging in from a network it logged in from lately (`known`)
//! waits behind one key only: its own failures from there (the pair's
//! key). Neither other accounts' failures at that address or network (a
//! neighbour's typos behind the same NAT) nor guesses at the account from
//! elsewhere slow it. The decision is made from the name and the address
//! before any password is checked, so the exemption tells a guesser
//! nothing about a password, and a guesser there is spaced by its own
//! failures at that account as before.
//!
//! Each key also has the earliest time its next answer may leave. A login
//! reserves a slot after each of its keys' (`reserve`): the slot is the
//! latest of their next times, and each key's next time becomes the slot
//! plus `AUTH_FAIL_DELAY` times its score (at most
//! `AUTH_FAIL_DELAY_MAX_STEPS` of them). So however many connections one
//! address, one network or many networks aiming at one account open, their
//! answers leave one at a time once the first have failed: after the first
//! wave of parallel attempts (bounded by the sessions a network may hold
//! before login), 0.5 s more for each failure on record, at most 4 s apart.
//! A clean address pays nothing, however many logins it makes at once. A
//! delay, never a lockout: every login is answered once its slot comes (or
//! the login deadline ends the session).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::limits::{
    AUTH_FAIL_DELAY, AUTH_FAIL_DELAY_MAX_STEPS, PENALTY_FILE_MAX_ENTRIES, PENALTY_HALF_LIFE, PENALTY_MAX_ADDRESSES,
};
use crate::nofollow;

/// What a record is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    /// An address masked to its network prefix, and the prefix length.
    Network(IpAddr, u8),
    /// A (valid) user name logins were tried for.
    Account(String),
    /// An account from a network it logged in from lately: its own failures there.
    Known(String, IpAddr, u8),
}

/// One key's record: a decaying score and when its next answer may leave
/// (both in milliseconds since the epoch: they outlive an inetd process).
#[derive(Debug, Clone, Copy)]
struct Record {
    score: f64,
    at: u64,
    next: u64,
}

impl Record {
    /// The score decayed to `now`.
    fn score(&self, now: u64) -> f64 {
        let age = now.saturating_sub(self.at) as f64 / PENALTY_HALF_LIFE.as_millis() as f64;
        self.score * 0.5f64.powf(age)
    }

    /// The pause after an answer, from the score with that answer counted.
    fn spacing(&self, now: u64) -> u64 {
        let steps = (self.score(now).round() as u32).min(AUTH_FAIL_DELAY_MAX_STEPS);
        (AUTH_FAIL_DELAY * steps).as_millis() as u64
    }

    /// Nothing left to remember.
    fn spent(&self, now: u64) -> bool {
        self.score(now) < 0.5 && self.next <= now
    }
}

/// The records, bounded: beyond `cap` the spent ones go, then the oldest.
#[derive(Default)]
struct Table {
    records: HashMap<Key, Record>,
}

impl Table {
    fn record(&mut self, key: Key, now: u64, cap: usize) -> &mut Record {
        if self.records.len() >= cap && !self.records.contains_key(&key) {
            self.records.retain(|_, r| !r.spent(now));
            if self.records.len() >= cap {
                // The oldest eighth goes at once: a flood of new addresses
                // costs one sort per cap/8 of them, not a scan each.
                let mut ages: Vec<u64> = self.records.values().map(|r| r.at.max(r.next)).collect();
                let cut = ages.len() / 8;
                let (_, &mut limit, _) = ages.select_nth_unstable(cut);
                self.records.retain(|_, r| r.at.max(r.next) > limit);
            }
        }
        self.records.entry(key).or_insert(Record { score: 0.0, at: now, next: now })
    }

    /// The file form: one record per line.
    fn to_text(&self) -> String {
        let mut out = String::new();
        for (key, r) in &self.records {
            let key = match key {
                Key::Address(ip) => format!("a {ip}"),
                Key::Network(ip, len) => format!("n {ip}/{len}"),
                Key::Account(name) => format!("u {name}"),
                Key::Known(name, ip, len) => format!("k {name}@{ip}/{len}"),
            };
            out.push_str(&format!("{key} {} {} {}\n", crate::decimal::format3(r.score), r.at, r.next));
        }
        out
    }

    /// Reads the file form; lines that do not parse are skipped (a record
    /// is a hint: losing one costs a delay, nothing more).
    fn parse(text: &str) -> Table {
        let mut table = Table::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            let net = |s: &str| -> Option<(IpAddr, u8)> {
                let (ip, len) = s.split_once('/')?;
                Some((ip.parse().ok()?, len.parse().ok()?))
            };
            let [kind, key, score, at, next] = w[..] else { continue };
            let key = match kind {
                "a" => key.parse().ok().map(Key::Address),
                "n" => net(key).map(|(ip, len)| Key::Network(ip, len)),
                "u" if crate::users::valid_name(key) => Some(Key::Account(key.to_string())),
                // The name may hold an `@` (user@domain); the network never does.
                "k" => key
                    .rsplit_once('@')
                    .filter(|(name, _)| crate::users::valid_name(name))
                    .and_then(|(name, n)| net(n).map(|(ip, len)| Key::Known(name.to_string(), ip, len))),
                _ => None,
            };
            if let (Some(key), Some(score), Ok(at), Ok(next)) =
                (key, crate::decimal::parse3(score), at.parse(), next.parse())
            {
                table.records.insert(key, Record { score, at, next });
            }
        }
        table
    }
}

/// The failure records of a daemon (in memory) or of inetd sessions (a file
/// in state_dir, read and replaced under a lock at each login).
pub struct Penalties {
    table: Mutex<Table>,
    file: Option<PathBuf>,
    prefix_v4: u8,
    prefix_v6: u8,
    cap: usize,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `ip` masked to its network (IPv4-mapped IPv6 addresses count as IPv4).
pub fn network(ip: IpAddr, prefix_v4: u8, prefix_v6: u8) -> (IpAddr, u8) {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let len = prefix_v4.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (IpAddr::from((u32::from(a) & mask).to_be_bytes()), len)
        }
        IpAddr::V6(a) => {
            let len = prefix_v6.min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            (IpAddr::from((u128::from(a) & mask).to_be_bytes()), len)
        }
    }
}

impl Penalties {
    /// In memory, for the daemon's sessions.
    pub fn new(prefix_v4: u8, prefix_v6: u8) -> Penalties {
        Penalties { table: Mutex::default(), file: None, prefix_v4, prefix_v6, cap: PENALTY_MAX_ADDRESSES }
    }

    /// In `file` (state_dir/penalties), for inetd sessions, one per process.
    pub fn in_file(file: PathBuf, prefix_v4: u8, prefix_v6: u8) -> Penalties {
        Penalties { table: Mutex::default(), file: Some(file), prefix_v4, prefix_v6, cap: PENALTY_FILE_MAX_ENTRIES }
    }

    /// The keys a login is spaced and counted by: the known pair's alone when
    /// `known`, else the address's, the network's and the account's.
    fn keys(&self, ip: IpAddr, account: Option<&str>, known: bool) -> Vec<Key> {
        let (net, len) = network(ip, self.prefix_v4, self.prefix_v6);
        let account = account.filter(|n| crate::users::valid_name(n));
        if let (true, Some(name)) = (known, account) {
            return vec![Key::Known(name.to_string(), net, len)];
        }
        let mut keys = vec![Key::Address(ip.to_canonical()), Key::Network(net, len)];
        if let Some(name) = account {
            keys.push(Key::Account(name.to_string()));
        }
        keys
    }

    /// The keys a failure counts against: the known pair's (when known) and
    /// always the address's, the network's and the account's, so strangers
    /// there and guessers elsewhere still see it.
    fn failure_keys(&self, ip: IpAddr, account: Option<&str>, known: bool) -> Vec<Key> {
        let mut keys = self.keys(ip, account, false);
        if known {
            keys.extend(self.keys(ip, account, true));
        }
        keys
    }

    /// Runs `f` on the table: in inetd mode the file is read before and
    /// replaced after, under an exclusive lock. A file that cannot be used
    /// is logged, and the login goes on with what this process knows.
    fn with<T>(&self, f: impl FnOnce(&mut Table, u64) -> T) -> T {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &self.file else {
            return f(&mut table, now_ms());
        };
        let lock_path = path.with_extension("lock");
        let lock = nofollow::lock_state(&lock_path);
        if let Err(e) = &lock {
            log::warn!("{}: {e}; failed logins are not shared with other sessions now", lock_path.display());
            return f(&mut table, now_ms());
        }
        match nofollow::read_state(path) {
            Ok(text) if text.len() <= PENALTY_FILE_MAX_ENTRIES * 128 => *table = Table::parse(&text),
            Ok(_) => log::warn!("{}: too long, starting afresh", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: {e}; starting afresh", path.display()),
        }
        let now = now_ms();
        let out = f(&mut table, now);
        table.records.retain(|_, r| !r.spent(now));
        if let Err(e) = nofollow::replace_state(path, &table.to_text()) {
            log::warn!("cannot write {}: {e}", path.display());
        }
        drop(lock);
        out
    }

    /// Reserves the time the answer to a login from `ip` for `account` may
    /// leave (`known`: the account logged in from this network lately). A
    /// key with failures on record counts the attempt as one more at once
    /// (parallel guesses must not all find the old score); a clean key
    /// counts it only if it fails (clean addresses log in in parallel).
    pub fn reserve(&self, ip: IpAddr, account: Option<&str>, known: bool) -> Slot {
        let keys = self.keys(ip, account, known);
        let known = known && matches!(keys[..], [Key::Known(..)]);
        let cap = self.cap;
        self.with(|table, now| {
            let at = keys.iter().map(|k| table.records.get(k).map_or(now, |r| r.next)).max().unwrap_or(now).max(now);
            let mut counted = Vec::new();
            for key in keys {
                let r = table.record(key.clone(), now, cap);
                if r.score(now) >= 0.5 {
                    r.score = r.score(now) + 1.0;
                    r.at = now;
                    counted.push(key);
                }
                r.next = at + r.spacing(now);
            }
            Slot { wait: Duration::from_millis(at - now), counted, known }
        })
    }

    /// A failed login; returns the address's recent failures (for the log).
    pub fn failed(&self, ip: IpAddr, account: Option<&str>, slot: &Slot) -> u32 {
        let keys = self.failure_keys(ip, account, slot.known);
        let cap = self.cap;
        let address = Key::Address(ip.to_canonical());
        self.with(|table, now| {
            for key in keys.into_iter().filter(|k| !slot.counted.contains(k)) {
                let r = table.record(key, now, cap);
                r.score = r.score(now) + 1.0;
                r.at = now;
            }
            table.records.get(&address).map_or(0.0, |r| r.score(now)).round() as u32
        })
    }

    /// A successful login: it takes back the failure its slot counted, and
    /// a key left clean is free again at once. Nothing else is cleared.
    pub fn succeeded(&self, ip: IpAddr, account: &str, slot: &Slot) {
        let keys = self.failure_keys(ip, Some(account), slot.known);
        self.with(|table, now| {
            for key in &keys {
                if let Some(r) = table.records.get_mut(key) {
                    if slot.counted.contains(key) {
                        r.score = (r.score(now) - 1.0).max(0.0);
                        r.at = now;
                    }
                    if r.score(now) < 0.5 {
                        r.next = r.next.min(now);
                    }
                }
            }
        })
    }
}

/// A login's place in line: how long its answer waits, and the keys that
/// counted it as a failure already.
pub struct Slot {
    pub wait: Duration,
    counted: Vec<Key>,
    /// Spaced as a known (account, network) pair.
    known: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A failed attempt, as a session makes it: a slot, then the failure.
    fn fail(p: &Penalties, from: &str, account: Option<&str>) -> u32 {
        let slot = p.reserve(ip(from), account, false);
        p.failed(ip(from), account, &slot)
    }

    #[test]
    fn failures_count_per_address_and_are_not_cleared_by_a_success() {
        let p = Penalties::new(32, 64);
        assert_eq!((fail(&p, "192.0.2.1", None), fail(&p, "192.0.2.1", None)), (1, 2));
        assert_eq!(fail(&p, "192.0.2.2", None), 1);
        let slot = p.reserve(ip("192.0.2.1"), Some("alice"), false);
        p.succeeded(ip("192.0.2.1"), "alice", &slot);
        assert_eq!(fail(&p, "192.0.2.1", None), 3, "the success took back only its own attempt");
        assert_eq!(fail(&p, "::ffff:192.0.2.1", None), 4, "IPv4-mapped is the same address");
    }

    #[test]
    fn answers_are_spaced_per_address_network_and_account() {
        let p = Penalties::new(24, 64);
        let delay = |steps: u32| AUTH_FAIL_DELAY * steps;
        let near = |d: Duration, want: Duration| d <= want && d + Duration::from_millis(100) > want;
        // A clean address logs in as often as it likes.
        for _ in 0..3 {
            let slot = p.reserve(ip("198.18.0.1"), Some("bob"), false);
            assert_eq!(slot.wait, Duration::ZERO);
            p.succeeded(ip("198.18.0.1"), "bob", &slot);
        }
        // One failure on record: then every attempt counts at once, and
        // the next answers leave 1 s, 1.5 s, 2 s apart...
        fail(&p, "192.0.2.1", Some("alice"));
        let waits: Vec<Duration> = (0..4).map(|_| p.reserve(ip("192.0.2.1"), Some("alice"), false).wait).collect();
        for (wait, steps) in waits.iter().zip([0, 2, 2 + 3, 2 + 3 + 4]) {
            assert!(near(*wait, delay(steps)) || steps == 0 && wait.is_zero(), "{waits:?}");
        }
        // Another address of the same /24 waits behind them.
        assert!(near(p.reserve(ip("192.0.2.77"), None, false).wait, delay(2 + 3 + 4 + 5)));
        // Other networks aiming at alice: behind her slots too...
        assert!(near(p.reserve(ip("198.51.100.1"), Some("alice"), false).wait, delay(2 + 3 + 4 + 5)));
        // ...unless alice logged in from there lately (the session knows it from state_dir).
        assert_eq!(p.reserve(ip("198.18.0.9"), Some("alice"), true).wait, Duration::ZERO);
        assert_eq!(p.reserve(ip("2001:db8::1"), Some("bob"), false).wait, Duration::ZERO);
    }

    #[test]
    fn a_known_account_waits_only_behind_its_own_failures_there() {
        let p = Penalties::new(32, 64);
        let home = "192.0.2.1";
        // A device at home keeps an old password for bob (known there): its failures...
        for _ in 0..6 {
            let slot = p.reserve(ip(home), Some("bob"), true);
            p.failed(ip(home), Some("bob"), &slot);
        }
        // ...slow bob from there, and strangers from there (after the first, which takes the
        // address's slot), but not alice, who is known there too.
        assert!(p.reserve(ip(home), Some("bob"), true).wait >= AUTH_FAIL_DELAY * 5);
        p.reserve(ip(home), Some("mallory"), false);
        assert!(p.reserve(ip(home), Some("mallory"), false).wait >= AUTH_FAIL_DELAY * 5);
        assert!(p.reserve(ip(home), None, false).wait >= AUTH_FAIL_DELAY * 5);
        let slot = p.reserve(ip(home), Some("alice"), true);
        assert_eq!(slot.wait, Duration::ZERO);
        p.succeeded(ip(home), "alice", &slot);
        // bob's failures also count against bob everywhere else.
        p.reserve(ip("198.51.100.1"), Some("bob"), false);
        assert!(p.reserve(ip("198.51.100.2"), Some("bob"), false).wait >= AUTH_FAIL_DELAY * 5);
        // alice's own failures at home do slow alice there.
        for _ in 0..3 {
            let slot = p.reserve(ip(home), Some("alice"), true);
            p.failed(ip(home), Some("alice"), &slot);
        }
        assert!(p.reserve(ip(home), Some("alice"), true).wait > Duration::ZERO);
    }

    #[test]
    fn every_record_reads_back_from_the_file_form_names_with_at_included() {
        let mut table = Table::default();
        let keys = [
            Key::Address(ip("192.0.2.1")),
            Key::Network(ip("2001:db8::"), 64),
            Key::Account("ann@example.org".into()),
            Key::Known("ann@example.org".into(), ip("192.0.2.1"), 32),
            Key::Known("bob".into(), ip("2001:db8::"), 64),
        ];
        for (i, key) in keys.iter().enumerate() {
            table.records.insert(key.clone(), Record { score: 1.5 + i as f64, at: 7, next: 9 });
        }
        let back = Table::parse(&table.to_text());
        for key in &keys {
            let (r, b) = (&table.records[key], &back.records[key]);
            assert_eq!((r.score, r.at, r.next), (b.score, b.at, b.next), "{key:?}");
        }
        assert_eq!(back.records.len(), keys.len());
    }

    #[test]
    fn scores_decay() {
        let r = Record { score: 8.0, at: 0, next: 0 };
        let half = PENALTY_HALF_LIFE.as_millis() as u64;
        assert!((r.score(half) - 4.0).abs() < 1e-9);
        assert_eq!(r.spacing(0), (AUTH_FAIL_DELAY * 8).as_millis() as u64);
        assert!(r.spent(half * 5));
    }

    #[test]
    fn networks() {
        assert_eq!(network(ip("192.0.2.77"), 24, 64), (ip("192.0.2.0"), 24));
        assert_eq!(network(ip("2001:db8:1:2:3:4:5:6"), 32, 64), (ip("2001:db8:1:2::"), 64));
        assert_eq!(network(ip("::ffff:10.1.2.3"), 8, 64), (ip("10.0.0.0"), 8));
        assert_eq!(network(ip("10.1.2.3"), 0, 0), (ip("0.0.0.0"), 0));
    }

    #[test]
    fn the_table_is_bounded() {
        let p = Penalties::new(32, 64);
        for i in 0..(PENALTY_MAX_ADDRESSES as u32 + 50) {
            fail(&p, &std::net::Ipv4Addr::from(i).to_string(), None);
        }
        assert!(p.table.lock().unwrap().records.len() <= PENALTY_MAX_ADDRESSES);
    }

    #[test]
    fn links_planted_for_the_record_files_are_never_followed() {
        let dir = TempDir::new("penalty-links");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let file = dir.join("penalties");
        for (name, target) in
            [("penalties", &victim), ("penalties.new", &victim), ("penalties.lock", &dir.join("made"))]
        {
            std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
        }
        // The lock is a link: the record is this process's alone, and nothing is written through it.
        assert_eq!(fail(&Penalties::in_file(file.clone(), 32, 64), "192.0.2.1", None), 1);
        assert!(!dir.join("made").exists());
        std::fs::remove_file(dir.join("penalties.lock")).unwrap();
        // The record and its temporary file are links: replaced, not followed.
        fail(&Penalties::in_file(file.clone(), 32, 64), "192.0.2.1", None);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
    }

    #[test]
    fn the_file_is_shared_between_processes_and_bounded() {
        let dir = TempDir::new("penalties");
        let file = dir.join("penalties");
        fail(&Penalties::in_file(file.clone(), 32, 64), "192.0.2.1", Some("alice"));
        let other = Penalties::in_file(file.clone(), 32, 64);
        let slot = other.reserve(ip("192.0.2.9"), Some("alice"), false);
        other.succeeded(ip("192.0.2.9"), "alice", &slot);
        let later = Penalties::in_file(file.clone(), 32, 64);
        assert_eq!(fail(&later, "192.0.2.1", Some("alice")), 2, "another process sees the first failure");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("u alice 2.0"), "{text}");
        let known = Penalties::in_file(file.clone(), 32, 64);
        let slot = known.reserve(ip("192.0.2.9"), Some("alice"), true);
        known.failed(ip("192.0.2.9"), Some("alice"), &slot);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("k alice@192.0.2.9/32 1.0"), "a known pair's record is shared too: {text}");
        let flood = Penalties::in_file(file.clone(), 32, 64);
        for i in 0..(PENALTY_FILE_MAX_ENTRIES as u32 / 2 + 10) {
            fail(&flood, &std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(), None);
        }
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= PENALTY_FILE_MAX_ENTRIES + 1, "{lines}");
        std::fs::write(&file, format!("garbage\nu ../x 1 2 3\na 1.2.3.4 1.0 {} 0\n", now_ms())).unwrap();
        assert_eq!(fail(&Penalties::in_file(file, 32, 64), "1.2.3.4", None), 2, "bad lines are skipped");
    }
}
