//! The threads sessions start beside their own (UIDL digests, closing a removed journal), counted: beyond a few, the work stays in the session.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::limits::SIDE_THREADS;

/// How many threads of a kind may run at once, and how many do.
pub struct Allowance {
    running: AtomicUsize,
    max: usize,
}

/// The side threads of the whole process.
static SIDE: Allowance = Allowance::new(SIDE_THREADS);

/// Leave to run one thread; moved into the thread, given back when it is
/// dropped (the thread's end, or a thread that did not start).
pub struct Leave(&'static Allowance);

impl Allowance {
    pub const fn new(max: usize) -> Allowance {
        Allowance { running: AtomicUsize::new(0), max }
    }

    /// Leave for one more thread, or None when `max` run.
    pub fn leave(&'static self) -> Option<Leave> {
        let more = |n: usize| (n < self.max).then_some(n + 1);
        self.running.fetch_update(Ordering::AcqRel, Ordering::Acquire, more).ok().map(|_| Leave(self))
    }
}

/// Leave for one more side thread, or None when `SIDE_THREADS` run: the
/// caller then does the work itself.
pub fn leave() -> Option<Leave> {
    SIDE.leave()
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_at_once_and_each_given_back() {
        let allowance: &'static Allowance = Box::leak(Box::new(Allowance::new(2)));
        let (a, b) = (allowance.leave(), allowance.leave());
        assert!(a.is_some() && b.is_some() && allowance.leave().is_none());
        drop(a);
        let c = allowance.leave();
        assert!(c.is_some() && allowance.leave().is_none());
        drop((b, c));
        assert_eq!(allowance.running.load(Ordering::Acquire), 0);
    }
}
