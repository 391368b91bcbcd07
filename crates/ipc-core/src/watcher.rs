//! Readiness for futex words that the other side wakes without knowing who waits (a
//! semaphore's count, a mutex's wake counter): a process-wide thread sleeps on them all at
//! once with `futex_waitv` and turns each wake-up into a write to the waiter's eventfd.
//!
//! This costs a thread hop: measured with `ipc-bench-readiness` (round trips between
//! pinned processes), 1.43–1.56× a plain futex wait, where a wake descriptor the other side
//! writes (the shared-memory channel's FIFO) costs 1.11–1.13×. It is used where the waker
//! cannot know its waiters: a semaphore or a mutex has any number, from any process.
//!
//! The thread never reads the words itself: it hands their addresses to the kernel, which
//! fails with `EFAULT` for an address no longer mapped. A wake-up it receives is passed on
//! to one more sleeper on the same word, so that a wake-up a poller's owner does not use
//! (it never takes the permit) is never stranded while a blocking waiter sleeps. Up to 127
//! words per thread; more words start more threads.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::sys::{self, WaitvEntry};
use crate::{Error, Result};

/// The words a thread sleeps on besides its own control word.
const PER_THREAD: usize = 127;

/// A waiter's eventfd, signalled when the word it armed is woken or changes.
#[derive(Debug)]
pub struct WordWaiter {
    eventfd: Arc<OwnedFd>,
    armed: Mutex<Option<(Arc<Shard>, u64)>>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    addr: usize,
    expected: u32,
    tick: Option<Instant>,
    eventfd: Arc<OwnedFd>,
}

#[derive(Debug)]
struct Shard {
    /// Bumped (and woken) when the entries change, so that the thread rebuilds its set.
    control: AtomicU32,
    entries: Mutex<Vec<Entry>>,
}

#[derive(Debug)]
struct Registry {
    pid: u32,
    shards: Mutex<Vec<Arc<Shard>>>,
}

static REGISTRY: Mutex<Option<Arc<Registry>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// This process's registry: a child after `fork` has none of its parent's threads, so it
/// starts its own.
fn registry() -> Arc<Registry> {
    let mut current = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    match &*current {
        Some(registry) if registry.pid == pid => Arc::clone(registry),
        _ => {
            let registry = Arc::new(Registry {
                pid,
                shards: Mutex::new(Vec::new()),
            });
            *current = Some(Arc::clone(&registry));
            registry
        }
    }
}

impl WordWaiter {
    /// A waiter with its eventfd, armed on nothing.
    ///
    /// # Errors
    ///
    /// The `eventfd` error.
    pub fn new() -> Result<WordWaiter> {
        Ok(WordWaiter {
            eventfd: Arc::new(sys::eventfd()?),
            armed: Mutex::new(None),
        })
    }

    /// A duplicate of the eventfd, for a poller to watch.
    ///
    /// # Errors
    ///
    /// The `dup` error.
    pub fn descriptor(&self) -> Result<OwnedFd> {
        self.eventfd
            .try_clone()
            .map_err(|e| Error::from(e).with_op("dup"))
    }

    /// Signals the eventfd once `word` (shared between processes) is woken or no longer
    /// holds `expected`, or after `tick` if given (for conditions no wake-up announces,
    /// such as a lock holder's death). Replaces an earlier arming.
    ///
    /// # Errors
    ///
    /// If the watching thread cannot be started.
    pub fn arm(&self, word: &AtomicU32, expected: u32, tick: Option<Duration>) -> Result<()> {
        self.disarm_entry();
        let registry = registry();
        let mut shards = registry.shards.lock().unwrap_or_else(|e| e.into_inner());
        let shard = match shards.iter().find(|shard| {
            shard
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len()
                < PER_THREAD
        }) {
            Some(shard) => Arc::clone(shard),
            None => {
                let shard = Arc::new(Shard {
                    control: AtomicU32::new(0),
                    entries: Mutex::new(Vec::new()),
                });
                let thread = Arc::clone(&shard);
                std::thread::Builder::new()
                    .name("ipc-futex-watch".into())
                    .spawn(move || watch(&thread))
                    .map_err(|e| Error::from(e).with_op("spawn a futex watcher"))?;
                shards.push(Arc::clone(&shard));
                shard
            }
        };
        drop(shards);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        shard
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                id,
                addr: word.as_ptr() as usize,
                expected,
                tick: tick.map(|tick| Instant::now() + tick),
                eventfd: Arc::clone(&self.eventfd),
            });
        shard.changed();
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some((shard, id));
        Ok(())
    }

    /// Withdraws the arming (if it has not fired yet) and empties the eventfd.
    pub fn disarm(&self) {
        self.disarm_entry();
        let _ = nix::unistd::read(self.eventfd.as_fd(), &mut [0u8; 8]);
    }

    fn disarm_entry(&self) {
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((shard, id)) = armed {
            let mut entries = shard.entries.lock().unwrap_or_else(|e| e.into_inner());
            let before = entries.len();
            entries.retain(|entry| entry.id != id);
            let removed = entries.len() != before;
            drop(entries);
            if removed {
                shard.changed();
            }
        }
    }
}

impl Drop for WordWaiter {
    fn drop(&mut self) {
        self.disarm_entry();
    }
}

impl Shard {
    fn changed(&self) {
        self.control.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&self.control, 1);
    }
}

/// The watching thread: sleeps on the control word and every armed word, and fires the
/// entries that were woken, changed, or whose tick came.
fn watch(shard: &Shard) {
    loop {
        let control = shard.control.load(Ordering::SeqCst);
        let (set, ids, tick) = {
            let entries = shard.entries.lock().unwrap_or_else(|e| e.into_inner());
            let mut set = vec![WaitvEntry {
                addr: shard.control.as_ptr() as usize,
                expected: control,
            }];
            set.extend(entries.iter().map(|entry| WaitvEntry {
                addr: entry.addr,
                expected: entry.expected,
            }));
            let ids: Vec<u64> = entries.iter().map(|entry| entry.id).collect();
            let tick = entries.iter().filter_map(|entry| entry.tick).min();
            (set, ids, tick)
        };
        let woken = sys::futex_waitv(&set, tick);
        let mut entries = shard.entries.lock().unwrap_or_else(|e| e.into_inner());
        let fire = |entries: &mut Vec<Entry>, which: &dyn Fn(&Entry) -> bool| {
            entries.retain(|entry| {
                if which(entry) {
                    sys::eventfd_signal(entry.eventfd.as_raw_fd());
                    false
                } else {
                    true
                }
            });
        };
        match woken {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(index) => {
                let Some(&id) = ids.get(index - 1) else {
                    continue;
                };
                if let Some(entry) = entries.iter().find(|entry| entry.id == id) {
                    // Pass the wake-up on: another sleeper may need the permit this
                    // one's owner does not take.
                    sys::futex_wake_addr(entry.addr);
                }
                fire(&mut entries, &|entry| entry.id == id);
            }
            Err(Errno::ETIMEDOUT) => {
                let now = Instant::now();
                fire(&mut entries, &|entry| {
                    entry.tick.is_some_and(|at| at <= now)
                });
            }
            // A word changed before the thread slept (or the control word did: then just
            // rebuild), or one is no longer mapped. Which one, the kernel tells by a
            // wait on each alone that may not sleep (the thread never reads the words).
            Err(_) => {
                if shard.control.load(Ordering::SeqCst) == control {
                    let now = Some(Instant::now());
                    let stale: Vec<u64> = set[1..]
                        .iter()
                        .zip(&ids)
                        .filter(|(entry, _)| {
                            let alone = [WaitvEntry {
                                addr: entry.addr,
                                expected: entry.expected,
                            }];
                            sys::futex_waitv(&alone, now) != Err(Errno::ETIMEDOUT)
                        })
                        .map(|(_, &id)| id)
                        .collect();
                    fire(&mut entries, &|entry| stale.contains(&entry.id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::poll_fd;
    use crate::{Deadline, Result};
    use nix::poll::PollFlags;

    fn fired(waiter: &WordWaiter, within: Duration) -> Result<bool> {
        match poll_fd(
            &*waiter.eventfd,
            PollFlags::POLLIN,
            Deadline::after(within),
            "poll",
        ) {
            Ok(_) => Ok(true),
            Err(err) if err.is_timeout() => Ok(false),
            Err(err) => Err(err),
        }
    }

    #[test]
    fn a_wake_a_change_or_a_tick_signals_the_eventfd_and_a_disarm_stops_it() {
        let word = Box::leak(Box::new(AtomicU32::new(0)));
        let waiter = WordWaiter::new().unwrap();
        waiter.arm(word, 0, None).unwrap();
        assert!(!fired(&waiter, Duration::from_millis(20)).unwrap());
        word.store(1, Ordering::SeqCst);
        sys::futex_wake(word, 1);
        assert!(fired(&waiter, Duration::from_secs(10)).unwrap());
        waiter.disarm();
        assert!(!fired(&waiter, Duration::ZERO).unwrap());
        // A word that changed before the arming fires at once.
        waiter.arm(word, 0, None).unwrap();
        assert!(fired(&waiter, Duration::from_secs(10)).unwrap());
        waiter.disarm();
        // A tick fires without a wake-up.
        waiter
            .arm(word, 1, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(fired(&waiter, Duration::from_secs(10)).unwrap());
        waiter.disarm();
        // Disarmed: a wake-up signals nothing.
        waiter.arm(word, 1, None).unwrap();
        waiter.disarm();
        sys::futex_wake(word, 1);
        assert!(!fired(&waiter, Duration::from_millis(20)).unwrap());
    }

    #[test]
    fn more_words_than_one_thread_takes_are_all_watched() {
        let words: Vec<&'static AtomicU32> = (0..PER_THREAD + 5)
            .map(|_| &*Box::leak(Box::new(AtomicU32::new(0))))
            .collect();
        let waiters: Vec<WordWaiter> = words
            .iter()
            .map(|word| {
                let waiter = WordWaiter::new().unwrap();
                waiter.arm(word, 0, None).unwrap();
                waiter
            })
            .collect();
        for (word, waiter) in words.iter().zip(&waiters).rev().take(10) {
            word.store(1, Ordering::SeqCst);
            sys::futex_wake(word, 1);
            assert!(fired(waiter, Duration::from_secs(10)).unwrap());
        }
    }
}
