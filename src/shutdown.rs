//! Stopping on SIGTERM without cutting an UPDATE in half: none starts once the process is about to end.
//!
//! UPDATEs in progress are counted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::limits::PAUSE_STEP;

/// UPDATEs running now.
static UPDATES: AtomicUsize = AtomicUsize::new(0);

/// Set when the process is about to end: no UPDATE may start.
static ENDING: AtomicBool = AtomicBool::new(false);

/// An UPDATE in progress; the process does not end while one exists.
pub struct Updating(());

impl Updating {
    /// Marks an UPDATE as running; None when the process is ending (the
    /// caller then deletes nothing and says so).
    pub fn start() -> Option<Updating> {
        UPDATES.fetch_add(1, Ordering::SeqCst);
        if ENDING.load(Ordering::SeqCst) {
            UPDATES.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Updating(()))
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        UPDATES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets no UPDATE start from now on and waits for those running to finish
/// (an UPDATE is bounded by `lock_timeout` and its I/O).
pub fn end_updates() {
    ENDING.store(true, Ordering::SeqCst);
    while UPDATES.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(PAUSE_STEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (The only test that touches the process-wide flags; it puts them back.)
    #[test]
    fn no_update_starts_once_ending_and_running_ones_are_waited_for() {
        let running = Updating::start().unwrap();
        let waiter = std::thread::spawn(end_updates);
        while !ENDING.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        assert!(Updating::start().is_none(), "none starts once ending");
        assert!(!waiter.is_finished(), "the running one is waited for");
        drop(running);
        waiter.join().unwrap();
        ENDING.store(false, Ordering::SeqCst);
    }
}
