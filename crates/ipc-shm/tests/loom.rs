//! Loom models of the channel's protocol: every interleaving (and every weak-memory outcome
//! loom models) of a producer and a consumer running it.
//!
//! The models restate the protocol with loom's atomics, in the same orderings as the
//! channel (`src/channel.rs`): publication of a record with a release store of `head` and
//! an acquire load by the consumer; release of a record with a release store of `tail` and
//! an acquire load by the producer before it reuses the space; and the wake-skip handshake
//! (a sequentially consistent fence on each side between its own store and its load of the
//! other side's word). Loom reports any data race on the record bytes and any execution in
//! which a sleeper would not be woken.

// The record slots are `UnsafeCell`s, as the ring's bytes are plain memory in the channel.
#![allow(unsafe_code)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use loom::thread;

/// A ring of two one-word slots, with the channel's positions.
struct Ring {
    head: AtomicU64,
    tail: AtomicU64,
    slots: [UnsafeCell<u64>; 2],
}

// SAFETY: the slots are only accessed under the protocol being checked; loom reports any
// access that the protocol does not order.
unsafe impl Sync for Ring {}

impl Ring {
    fn new() -> Self {
        Ring {
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
        }
    }
}

#[test]
fn records_are_published_loaned_and_released_without_races() {
    loom::model(|| {
        let ring = Arc::new(Ring::new());
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                // Three messages through two slots: the third reuses the first slot, so it
                // must wait for the consumer to release it.
                for message in 1..=3u64 {
                    let head = ring.head.load(Ordering::Relaxed);
                    while head - ring.tail.load(Ordering::Acquire) == 2 {
                        thread::yield_now();
                    }
                    let slot = usize::from(head % 2 == 1);
                    // SAFETY: the slot was released by the consumer (or never used), which
                    // the acquire load of `tail` above orders before this write.
                    ring.slots[slot].with_mut(|slot| unsafe { *slot = message });
                    ring.head.store(head + 1, Ordering::Release);
                }
            })
        };
        let mut received = Vec::new();
        while received.len() < 3 {
            let tail = ring.tail.load(Ordering::Relaxed);
            if ring.head.load(Ordering::Acquire) == tail {
                thread::yield_now();
                continue;
            }
            // The consumer borrows the record in place: it reads it, lets the producer run
            // while it holds the loan, reads it again, and only then releases it.
            let slot = usize::from(tail % 2 == 1);
            // SAFETY: the producer published the slot with the release store of `head`
            // that the acquire load above observed, and cannot reuse it before `tail` moves.
            let first = ring.slots[slot].with(|slot| unsafe { *slot });
            thread::yield_now();
            // SAFETY: as above; the loan is still held.
            let again = ring.slots[slot].with(|slot| unsafe { *slot });
            assert_eq!(first, again, "a loaned record changed under its borrower");
            received.push(first);
            ring.tail.store(tail + 1, Ordering::Release);
        }
        producer.join().unwrap();
        assert_eq!(received, [1, 2, 3]);
    });
}

/// The wake-skip handshake: the consumer announces that it will sleep, the producer
/// publishes and then checks for a sleeper. In no execution may the consumer decide to
/// sleep (it saw no data) while the producer decides not to wake it (it saw no sleeper).
#[test]
fn a_sleeper_is_never_left_unwoken() {
    loom::model(|| {
        let head = Arc::new(AtomicU64::new(0));
        let sleeping = Arc::new(AtomicU32::new(0));
        let producer = {
            let (head, sleeping) = (Arc::clone(&head), Arc::clone(&sleeping));
            thread::spawn(move || {
                head.store(1, Ordering::Release);
                fence(Ordering::SeqCst);
                sleeping.load(Ordering::Relaxed) != 0
            })
        };
        sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let sees_data = head.load(Ordering::Acquire) != 0;
        let will_wake = producer.join().unwrap();
        assert!(
            sees_data || will_wake,
            "the consumer would sleep and nobody would wake it"
        );
    });
}
