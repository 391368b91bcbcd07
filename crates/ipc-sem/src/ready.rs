//! Readiness of the futex objects ([`Semaphore`](crate::Semaphore),
//! [`RobustMutex`](crate::RobustMutex)) for a [`Selector`](ipc_core::Selector): their
//! wakers cannot know who waits (any number of processes may), so ipc-core's futex
//! watcher thread sleeps on the word for the poller (see `ipc_core::internal::WordWaiter`
//! for the design and its cost).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::WordWaiter;
use ipc_core::{Error, Interest, Readiness, ReadinessHook, Result, SharedRegion};

use crate::sys::Block;

/// Where an object keeps its words, and when it is ready.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FutexObject {
    /// What a wait on it is called in errors ("a semaphore").
    pub(crate) what: &'static str,
    /// The word its wakers wake.
    pub(crate) word: usize,
    /// The sleeper hint its wakers check before waking.
    pub(crate) sleepers: usize,
    /// Whether a wait would end now (a permit, a free lock).
    pub(crate) ready: fn(&dyn Loads) -> bool,
    /// For conditions no wake-up announces (a holder's death): how often to re-check.
    pub(crate) tick: Option<Duration>,
}

/// Loads of a block's words, for [`FutexObject::ready`].
pub(crate) trait Loads {
    /// The 32-bit word at `offset`.
    fn u32_at(&self, offset: usize) -> u32;
    /// The 64-bit word at `offset`.
    fn u64_at(&self, offset: usize) -> u64;
}

impl<R: SharedRegion> Loads for Block<R> {
    fn u32_at(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::SeqCst)
    }

    fn u64_at(&self, offset: usize) -> u64 {
        self.word64(offset).load(Ordering::SeqCst)
    }
}

/// The hook: a view of the object's block through a clone of its region, and a waiter.
pub(crate) struct FutexHook<R> {
    block: Block<R>,
    object: FutexObject,
    waiter: WordWaiter,
}

impl<R> fmt::Debug for FutexHook<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutexHook")
            .field("object", &self.object.what)
            .finish()
    }
}

/// The readiness of `object` in `block`, for a wait on `interest` (only input: a permit,
/// a lock).
pub(crate) fn readiness<R>(
    block: &Block<R>,
    object: FutexObject,
    interest: Interest,
) -> Result<Readiness>
where
    R: SharedRegion + Clone + Send + Sync + 'static,
{
    if interest != Interest::Readable {
        return Err(Error::new(
            "Selector::add",
            std::io::ErrorKind::InvalidInput,
            format!("{} is waited on as Interest::Readable", object.what),
        ));
    }
    let block = block
        .clone_view()
        .map_err(|why| Error::new("Selector::add", std::io::ErrorKind::InvalidInput, why))?;
    let waiter = WordWaiter::new()?;
    let fd = waiter.descriptor()?;
    Ok(Readiness::hooked(
        fd,
        Arc::new(FutexHook {
            block,
            object,
            waiter,
        }),
    ))
}

impl<R: SharedRegion + Send + Sync> ReadinessHook for FutexHook<R> {
    fn arm(&self) -> Result<bool> {
        let word = self.block.word(self.object.word);
        let sleepers = self.block.word(self.object.sleepers);
        // As a blocking waiter does: the word's value, then the hint, then the condition;
        // a wake-up in between changes the word, which the watcher then sees.
        let expected = word.load(Ordering::SeqCst);
        sleepers.fetch_add(1, Ordering::SeqCst);
        if (self.object.ready)(&self.block) {
            sleepers.fetch_sub(1, Ordering::SeqCst);
            return Ok(true);
        }
        if let Err(err) = self.waiter.arm(word, expected, self.object.tick) {
            sleepers.fetch_sub(1, Ordering::SeqCst);
            return Err(err);
        }
        Ok(false)
    }

    fn disarm(&self) {
        self.waiter.disarm();
        self.block
            .word(self.object.sleepers)
            .fetch_sub(1, Ordering::SeqCst);
    }
}
