//! Failed logins per client address, shared by the daemon's sessions, so the delay after a failure grows per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::limits::{PENALTY_FORGET_AFTER as FORGET_AFTER, PENALTY_MAX_ADDRESSES as MAX_ADDRESSES};

/// Recent failed logins by client address.
#[derive(Default)]
pub struct Penalties {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Penalties {
    /// Records a failed login from `ip`; returns its recent failures.
    pub fn failed(&self, ip: IpAddr) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES {
                if let Some(stalest) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip) {
                    map.remove(&stalest);
                }
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }

    /// A successful login from `ip` clears its record.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_clears_on_success() {
        let p = Penalties::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!((p.failed(a), p.failed(a), p.failed(b)), (1, 2, 1));
        p.succeeded(a);
        assert_eq!(p.failed(a), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let p = Penalties::default();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            p.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(p.failures.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
