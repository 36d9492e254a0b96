//! The credentials helper's spacing of failed checks: per user name, and for all names together, beyond a burst each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::limits::{
    HELPER_FAILURE_BURST, HELPER_FAILURE_SPACING, HELPER_NAMES, HELPER_NAME_BURST, HELPER_NAME_SPACING,
};

/// Failures close together: how many, and when the last was.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next check may run, given `burst` and `spacing`.
    fn next(&self, burst: u32, spacing: Duration) -> Option<Instant> {
        (self.count >= burst).then(|| self.last + spacing)
    }

    /// A quiet spell of burst times spacing gives the burst back.
    fn quiet(&self, burst: u32, spacing: Duration, now: Instant) -> bool {
        now.duration_since(self.last) > spacing * burst
    }

    fn add(this: Option<Failures>, burst: u32, spacing: Duration, now: Instant) -> Failures {
        match this {
            Some(f) if !f.quiet(burst, spacing, now) => Failures { count: f.count + 1, last: now },
            _ => Failures { count: 1, last: now },
        }
    }
}

/// Guessing one account is held to `HELPER_NAME_SPACING` after a burst;
/// guessing many to `HELPER_FAILURE_SPACING` in all, so a good password
/// waits only behind a flood, never behind someone else's typos.
#[derive(Default)]
pub struct Spacing {
    names: HashMap<String, Failures>,
    all: Option<Failures>,
}

impl Spacing {
    /// Waits until a check of `name` may run.
    pub fn wait(&self, name: &str) {
        if let Some(until) = self.next_check(name) {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
    }

    /// When a check of `name` may run: None at once.
    pub fn next_check(&self, name: &str) -> Option<Instant> {
        let one = self.names.get(name).and_then(|f| f.next(HELPER_NAME_BURST, HELPER_NAME_SPACING));
        one.max(self.all.and_then(|f| f.next(HELPER_FAILURE_BURST, HELPER_FAILURE_SPACING)))
    }

    /// A check of `name` failed.
    pub fn failed(&mut self, name: &str) {
        let now = Instant::now();
        self.all = Some(Failures::add(self.all, HELPER_FAILURE_BURST, HELPER_FAILURE_SPACING, now));
        if !self.names.contains_key(name) && self.names.len() >= HELPER_NAMES {
            self.names.retain(|_, f| !f.quiet(HELPER_NAME_BURST, HELPER_NAME_SPACING, now));
            if self.names.len() >= HELPER_NAMES {
                // Still full: the name failed longest ago goes.
                let oldest = self.names.iter().min_by_key(|(_, f)| f.last).map(|(n, _)| n.clone());
                oldest.map(|n| self.names.remove(&n));
            }
        }
        let old = self.names.get(name).copied();
        self.names.insert(name.to_string(), Failures::add(old, HELPER_NAME_BURST, HELPER_NAME_SPACING, now));
    }
}
