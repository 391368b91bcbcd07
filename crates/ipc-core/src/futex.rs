//! Futex waits and wakes on words in shared memory, and the thread identities that
//! protocols built on them record, for the crates that keep their own state in shared
//! memory instead of handing a C library object to a peer.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::sys;

/// Sleeps while `*word == expected`, at most `timeout` (`FUTEX_WAIT`, shared between
/// processes). Returns on a wake, a changed value, a signal or the timeout alike: callers
/// re-check their condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    sys::futex_wait(word, expected, timeout);
}

/// Wakes up to `count` threads (of any process) sleeping on `word` (`FUTEX_WAKE`).
pub fn futex_wake(word: &AtomicU32, count: i32) {
    sys::futex_wake(word, count);
}

/// Bumped in the child after every `fork`, so that identities cached before it are renewed.
static FORKS: AtomicU32 = AtomicU32::new(0);

extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

thread_local! {
    /// This thread's identity and the fork count it was computed at.
    static IDENTITY: Cell<Option<(u32, ThreadIdentity)>> = const { Cell::new(None) };
}

/// A thread, named for good: its id and the low 24 bits of its start time (in clock ticks
/// since boot), packed into 46 bits, so that a later thread that reuses the id is told
/// apart. All processes that compare identities must share a PID namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadIdentity(u64);

impl ThreadIdentity {
    /// The bits the identity takes in a word: [`ThreadIdentity::to_bits`] never sets more.
    pub const BITS: u32 = 46;
    const TID_BITS: u32 = 22;

    /// The calling thread's identity (cached per thread, renewed after `fork`).
    pub fn current() -> ThreadIdentity {
        static HANDLER: Once = Once::new();
        HANDLER.call_once(|| sys::at_fork_in_child(forked));
        let forks = FORKS.load(Ordering::Relaxed);
        IDENTITY.with(|cell| match cell.get() {
            Some((seen, identity)) if seen == forks => identity,
            _ => {
                let tid = sys::gettid();
                let start = thread_start_time(tid).unwrap_or(0);
                let identity = ThreadIdentity::new(tid, start);
                cell.set(Some((forks, identity)));
                identity
            }
        })
    }

    fn new(tid: u32, start: u64) -> ThreadIdentity {
        let tid = u64::from(tid) & ((1 << Self::TID_BITS) - 1);
        ThreadIdentity(tid | (start & 0xff_ffff) << Self::TID_BITS)
    }

    /// The identity as the low [`BITS`](ThreadIdentity::BITS) bits of a word.
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// The identity in the low [`BITS`](ThreadIdentity::BITS) bits of `bits` (the rest is
    /// ignored). Any value is an identity, perhaps of no thread.
    pub fn from_bits(bits: u64) -> ThreadIdentity {
        ThreadIdentity(bits & ((1 << Self::BITS) - 1))
    }

    /// The thread id.
    pub fn tid(self) -> u32 {
        (self.0 & ((1 << Self::TID_BITS) - 1)) as u32
    }

    /// Whether this thread still runs: its id names a thread that is not a zombie and
    /// started at the recorded time.
    pub fn is_alive(self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.tid())) else {
            return false;
        };
        match parse_stat(&stat) {
            Some((state, start)) => {
                !matches!(state, 'Z' | 'X' | 'x') && ThreadIdentity::new(self.tid(), start) == self
            }
            None => false,
        }
    }
}

/// The state (field 3) and start time (field 22) of a `/proc/<id>/stat` line.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) may contain anything, so count from its closing parenthesis.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.nth(18)?.parse().ok()?))
}

/// When thread `tid` started, in clock ticks since boot.
fn thread_start_time(tid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, start)| start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_alive_until_it_ends() {
        let me = ThreadIdentity::current();
        assert!(me.is_alive());
        assert_eq!(me, ThreadIdentity::from_bits(me.to_bits()));
        let other = std::thread::spawn(ThreadIdentity::current).join().unwrap();
        assert_ne!(other, me);
        // `join` returns once the thread cleared its id, which can be a moment before the
        // kernel has finished with its task.
        let gone = crate::Deadline::after(std::time::Duration::from_secs(10));
        while other.is_alive() {
            assert!(!gone.has_expired(), "a joined thread is gone");
            std::thread::yield_now();
        }
        // The same id with another start time is another thread.
        assert!(!ThreadIdentity::from_bits(me.to_bits() ^ 1 << 22).is_alive());
    }
}
