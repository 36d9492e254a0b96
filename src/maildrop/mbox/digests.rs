//! The UIDL digests of a scan (MD5 of each message's header), computed on a thread of their own while the scan goes on.
//!
//! The scan hands over the bytes each digest covers, in order, with a mark
//! where each message's ends; they travel in batches of `DIGEST_BATCH`
//! octets, so the two threads meet a few hundred times per gigabyte, not
//! once per message. MD5 is about a third of a cold scan's work: on two
//! cores the scan no longer waits for it. Where no thread can be started,
//! the same batches are hashed in place.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use md5::{Digest, Md5};

use crate::limits::{DIGEST_BATCH, DIGEST_STACK};

/// Bytes to hash, and the positions in them where a message's bytes end.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Hashes batches in order; the digests of the messages ended so far.
#[derive(Default)]
struct Hashing {
    md5: Md5,
    digests: Vec<[u8; 16]>,
}

impl Hashing {
    fn take(&mut self, batch: &Batch) {
        let mut from = 0;
        for &end in &batch.ends {
            self.md5.update(&batch.bytes[from..end]);
            self.digests.push(self.md5.finalize_reset().into());
            from = end;
        }
        self.md5.update(&batch.bytes[from..]);
    }
}

/// The hashing thread: where batches go, and what it gives back.
type Worker<'scope> = (SyncSender<Batch>, ScopedJoinHandle<'scope, Vec<[u8; 16]>>);

/// The scan's side.
pub struct Digests<'scope> {
    batch: Batch,
    worker: Option<Worker<'scope>>,
    inline: Hashing,
    /// The thread went away with batches it had taken: no digests at all.
    lost: bool,
}

impl<'scope> Digests<'scope> {
    /// Starts the hashing thread in `scope` (or hashes in place if it cannot,
    /// or when the process runs `SIDE_THREADS` already).
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>) -> Digests<'scope> {
        let (tx, rx) = sync_channel::<Batch>(2);
        let worker = crate::side_threads::leave().and_then(|leave| {
            let work = move || {
                let _leave = leave;
                work(rx)
            };
            let spawned = std::thread::Builder::new().stack_size(DIGEST_STACK).spawn_scoped(scope, work);
            spawned.ok().map(|handle| (tx, handle))
        });
        Digests { batch: Batch::default(), worker, inline: Hashing::default(), lost: false }
    }

    /// More bytes of the current message's digest.
    pub fn update(&mut self, bytes: &[u8]) {
        self.batch.bytes.extend_from_slice(bytes);
        if self.batch.bytes.len() >= DIGEST_BATCH {
            self.send();
        }
    }

    /// The current message's bytes are all given.
    pub fn end_message(&mut self) {
        self.batch.ends.push(self.batch.bytes.len());
    }

    fn send(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if let Some((tx, _)) = &self.worker {
            // The thread is gone (it cannot panic short of memory).
            self.lost |= tx.send(batch).is_err();
            return;
        }
        self.inline.take(&batch);
    }

    /// The digests of every ended message, in order; None if the thread
    /// was lost on the way.
    pub fn finish(mut self) -> Option<Vec<[u8; 16]>> {
        self.send();
        match self.worker.take() {
            Some((tx, handle)) => {
                drop(tx);
                handle.join().ok().filter(|_| !self.lost)
            }
            None => Some(self.inline.digests),
        }
    }
}

fn work(rx: Receiver<Batch>) -> Vec<[u8; 16]> {
    let mut hashing = Hashing::default();
    for batch in rx {
        hashing.take(&batch);
    }
    hashing.digests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Rng;

    /// Whatever the pieces and the batch cuts, each digest is the MD5 of its
    /// message's bytes: messages of every size, one over several batches.
    #[test]
    fn digests_in_batches_are_each_messages_md5() {
        let mut rng = Rng(7);
        let messages: Vec<Vec<u8>> = (0..300)
            .map(|i| {
                let len = if i == 17 { 3 * DIGEST_BATCH + 5 } else { (rng.next() % 5000) as usize };
                (0..len).map(|_| rng.next() as u8).collect()
            })
            .collect();
        let got = std::thread::scope(|scope| {
            let mut d = Digests::start(scope);
            for m in &messages {
                let mut rest = &m[..];
                while !rest.is_empty() {
                    let n = ((rng.next() % 700) as usize + 1).min(rest.len());
                    d.update(&rest[..n]);
                    rest = &rest[n..];
                }
                d.end_message();
            }
            d.finish().unwrap()
        });
        let want: Vec<[u8; 16]> = messages.iter().map(|m| Md5::digest(m).into()).collect();
        assert_eq!(got, want);
        // The same batches hashed in place give the same.
        let mut inline = Hashing::default();
        let mut batch = Batch::default();
        for m in &messages {
            batch.bytes.extend_from_slice(m);
            batch.ends.push(batch.bytes.len());
        }
        inline.take(&batch);
        assert_eq!(inline.digests, want);
    }
}
