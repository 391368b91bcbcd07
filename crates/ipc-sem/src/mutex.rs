//! Robust process-shared mutexes in a shared region, on a futex protocol of this crate's
//! whose every shared word is validated here.
//!
//! ```text
//! 32  lock u64      0 free; else the holder's thread identity (46 bits), plus bit 62
//!                   while the data is inconsistent (a holder died); 1 << 63 for good once
//!                   a recovery was given up
//! 40  wakes u32     the futex word: bumped by an unlock that finds sleepers
//! 44  sleepers u32  how many threads sleep on it (a hint: wrong values cost a system call
//!                   or a 20 ms slice, never a lost lock)
//! 48  the value
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_core::internal::{ThreadIdentity, Wait};
use ipc_core::{Error, Result, SharedRegion, ShmSafe};

use crate::block::{self, OBJECT, PARAM};
use crate::sys::Block;

/// "MTX2": a block holding a robust mutex of this protocol.
const MAGIC: u32 = u32::from_le_bytes(*b"MTX2");

const LOCK: usize = OBJECT;
const WAKES: usize = OBJECT + 8;
const SLEEPERS: usize = OBJECT + 12;
/// Where the guarded value starts in the block.
const DATA: usize = OBJECT + 16;

/// Set in the lock word while the holder repairs after a holder that died.
const INCONSISTENT: u64 = 1 << 62;
/// The lock word of a mutex whose recovery was given up.
const UNRECOVERABLE: u64 = 1 << 63;

/// How long a waiter sleeps at first before it checks that the holder still lives (whose
/// death wakes nobody); each check that finds it alive doubles the sleep, up to `SLICE`.
const FIRST_SLICE: Duration = Duration::from_millis(1);
/// The longest sleep between two checks of the holder: the bound on noticing its death.
const SLICE: Duration = Duration::from_millis(20);
/// Spins on a held lock before sleeping: about a microsecond, the length of a typical
/// critical section, well below the cost of a wake-up.
const SPINS: u32 = 200;

/// Options for placing a [`RobustMutex`] in a shared region.
///
/// ```
/// use ipc_sem::{Locked, MutexOptions, RobustMutex};
/// use ipc_shm::MemfdOptions;
///
/// let segment = MemfdOptions::new(4096).create()?;
/// let counter: RobustMutex<_, u64> = MutexOptions::new().init_in(&segment, 0, 0)?;
/// match counter.lock()? {
///     Locked::Clean(guard) => guard.set(guard.get() + 1),
///     Locked::OwnerDied(recovery) => {
///         // The last holder died in the middle: repair the value, then say so.
///         recovery.set(0);
///         recovery.mark_consistent()?;
///     }
/// }
/// # Ok::<(), ipc_sem::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MutexOptions {
    timeout: Option<Duration>,
}

impl MutexOptions {
    /// Default options: opening waits up to 5 s for the initialisation.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`open_in`](MutexOptions::open_in) waits for another process to initialise
    /// the mutex.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Initialises a robust mutex guarding `value` at `offset` of `region` (16-byte
    /// aligned, [`RobustMutex::SIZE`] bytes).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a place outside the region, misaligned or read-only, or a `T`
    /// aligned to more than 16 bytes; `AlreadyExists` if the place holds an object (or a live
    /// process is initialising one).
    pub fn init_in<R: SharedRegion, T: ShmSafe>(
        &self,
        region: R,
        offset: usize,
        value: T,
    ) -> Result<RobustMutex<R, T>> {
        let op = "mutex_init_in";
        let block = place::<R, T>(region, offset, op)?;
        block::claim(&block, op)?;
        block.write(DATA, value);
        block.word(PARAM).store(data_size::<T>(), Ordering::Relaxed);
        block.word64(LOCK).store(0, Ordering::Relaxed);
        block.word(WAKES).store(0, Ordering::Relaxed);
        block.word(SLEEPERS).store(0, Ordering::Relaxed);
        block::publish(&block, MAGIC);
        Ok(RobustMutex {
            block,
            data: PhantomData,
        })
    }

    /// Opens the mutex another process initialised at `offset` of `region`, waiting for the
    /// initialisation for at most the [`timeout`](MutexOptions::timeout).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad place; `TimedOut` if nothing was initialised in time;
    /// peer-gone if the initialising process died; corrupted if the memory holds something
    /// else, or a mutex guarding a value of another size.
    pub fn open_in<R: SharedRegion, T: ShmSafe>(
        &self,
        region: R,
        offset: usize,
    ) -> Result<RobustMutex<R, T>> {
        let op = "mutex_open_in";
        let block = place::<R, T>(region, offset, op)?;
        let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
        block::wait_ready(&block, MAGIC, "mutex", timeout, op)?;
        let size = block.word(PARAM).load(Ordering::Relaxed);
        if size != data_size::<T>() {
            return Err(Error::corrupted(
                op,
                format!(
                    "the mutex guards {size} bytes, not the {} of this type",
                    data_size::<T>()
                ),
            ));
        }
        Ok(RobustMutex {
            block,
            data: PhantomData,
        })
    }
}

fn data_size<T>() -> u32 {
    u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX)
}

fn place<R: SharedRegion, T>(region: R, offset: usize, op: &'static str) -> Result<Block<R>> {
    if std::mem::align_of::<T>() > 16 {
        return Err(Error::new(
            op,
            std::io::ErrorKind::InvalidInput,
            "the guarded type is aligned to more than 16 bytes",
        ));
    }
    Block::new(region, offset, DATA + std::mem::size_of::<T>())
        .map_err(|why| Error::new(op, std::io::ErrorKind::InvalidInput, why))
}

/// A mutex in shared memory that survives its holder: when a process (or thread) dies
/// holding it, the next [`lock`](RobustMutex::lock) returns [`Locked::OwnerDied`] instead
/// of hanging, and that caller decides whether the guarded data can be repaired.
///
/// The lock is a word in the region holding the holder's thread id and start time, taken
/// with a compare-exchange and waited on with a futex. A waiter checks that the holder still
/// runs after 1 ms, then at least every 20 ms, so a holder that died is noticed within that
/// bound; the same thread
/// locking it twice gets `EDEADLK`, not a deadlock. It guards a value of a [`ShmSafe`] type
/// `T`, read and written by copy: other processes map the same memory, so no reference
/// into it is handed out. All processes using it must share a PID namespace.
///
/// # When the holder dies
///
/// ```text
///  lock() -> Locked::OwnerDied(recovery)
///       recovery.set(repaired); recovery.mark_consistent()  -> a normal guard; all is well
///       drop(recovery)                                        -> unlocked, unrecoverable:
///                                                                every later lock fails
/// ```
///
/// There is no way to unlock without choosing: a normal guard comes only from a clean lock
/// or from `mark_consistent`.
///
/// # Untrusted peers
///
/// Every shared word is read and checked by this crate's code, never handed to the C
/// library: whatever a peer that can write the region puts there, this process gets a
/// lock, an error (corrupted header, `ENOTRECOVERABLE`, `EDEADLK`) or a timeout at its
/// deadline, never undefined behaviour, a crash or an abort. Such a peer can still hold the
/// lock for as long as it lives, or break mutual exclusion by clearing the word, and change
/// the guarded value without locking: share the region only with processes you trust to
/// follow the protocol, as with any lock.
pub struct RobustMutex<R, T: ShmSafe = ()> {
    block: Block<R>,
    data: PhantomData<T>,
}

impl<R, T: ShmSafe> RobustMutex<R, T> {
    /// The bytes the mutex and its value take in a region.
    pub const SIZE: usize = DATA + std::mem::size_of::<T>();
}

impl<R: SharedRegion, T: ShmSafe> RobustMutex<R, T> {
    #[inline]
    fn lock_word(&self) -> &AtomicU64 {
        self.block.word64(LOCK)
    }

    /// Takes the lock for the calling thread.
    #[inline]
    fn acquire(&self, wait: Wait, op: &'static str) -> Result<Locked<'_, R, T>> {
        let me = ThreadIdentity::current().to_bits();
        match self
            .lock_word()
            .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => Ok(Locked::Clean(MutexGuard::new(self, me))),
            Err(_) => self.contended(me, wait, op),
        }
    }

    /// The slow path: the lock was held, or given up, or its holder is dead.
    #[cold]
    fn contended(&self, me: u64, wait: Wait, op: &'static str) -> Result<Locked<'_, R, T>> {
        let lock = self.lock_word();
        let wakes = self.block.word(WAKES);
        let sleepers = self.block.word(SLEEPERS);
        let mut spins = 0u32;
        let mut sleep = FIRST_SLICE;
        // Whether the holder has had time to finish: check that it lives before waiting on.
        let mut check_holder = matches!(wait, Wait::Try);
        loop {
            let seen = lock.load(Ordering::SeqCst);
            if seen == 0 {
                if lock
                    .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Locked::Clean(MutexGuard::new(self, me)));
                }
                continue;
            }
            if seen & UNRECOVERABLE != 0 {
                return Err(not_recoverable(op));
            }
            let holder = ThreadIdentity::from_bits(seen);
            if holder.to_bits() == me {
                return Err(Error::from_raw_os_error(op, libc::EDEADLK));
            }
            if check_holder && !holder.is_alive() {
                // The holder died: take the lock over, marking the data inconsistent, so
                // that this caller repairs it (or gives up).
                let taken = me | INCONSISTENT;
                if lock
                    .compare_exchange(seen, taken, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Locked::OwnerDied(OwnerDied {
                        guard: MutexGuard::new(self, taken),
                    }));
                }
                continue;
            }
            let Some(deadline) = wait.deadline() else {
                return Err(Error::would_block(op));
            };
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            // Sleep until an unlock, or for a slice, then check the holder if nothing moved.
            let slice = deadline.remaining().map_or(sleep, |left| left.min(sleep));
            if slice.is_zero() {
                return Err(Error::timed_out(op));
            }
            ipc_core::internal::check_cancelled(op)?;
            let seq = wakes.load(Ordering::SeqCst);
            sleepers.fetch_add(1, Ordering::SeqCst);
            if lock.load(Ordering::SeqCst) == seen {
                ipc_core::internal::futex_wait(wakes, seq, Some(slice));
            }
            sleepers.fetch_sub(1, Ordering::SeqCst);
            check_holder = lock.load(Ordering::SeqCst) == seen;
            sleep = if check_holder {
                (sleep * 2).min(SLICE)
            } else {
                FIRST_SLICE
            };
        }
    }

    /// Locks the mutex, waiting as long as it takes (or until the holder is found dead).
    ///
    /// # Errors
    ///
    /// `ENOTRECOVERABLE` if an earlier holder died and nobody marked the data consistent;
    /// `EDEADLK` if this thread already holds it.
    #[inline]
    pub fn lock(&self) -> Result<Locked<'_, R, T>> {
        self.acquire(Wait::Block, "mutex_lock")
    }

    /// Locks the mutex if it is free now, or if its holder is dead (which a busy mutex
    /// costs a look at `/proc` to tell).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if a live thread holds it; otherwise as [`lock`](RobustMutex::lock).
    pub fn try_lock(&self) -> Result<Locked<'_, R, T>> {
        self.acquire(Wait::Try, "mutex_try_lock")
    }

    /// Locks the mutex, waiting at most `timeout` (on the monotonic clock). A holder that
    /// dies meanwhile ends the wait with [`Locked::OwnerDied`].
    ///
    /// # Errors
    ///
    /// `TimedOut` if it stayed locked; otherwise as [`lock`](RobustMutex::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Locked<'_, R, T>> {
        self.acquire(Wait::after(timeout), "mutex_lock_timeout")
    }

    /// The region the mutex lives in.
    pub fn region(&self) -> &R {
        self.block.region()
    }

    /// Unlocks a lock this thread holds as `held`, waking a sleeper if there is one.
    #[inline]
    fn unlock(&self, held: u64) {
        // A word that is no longer ours (a peer wrote it) is left alone.
        if self
            .lock_word()
            .compare_exchange(held, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            self.wake(1);
        }
    }

    /// Wakes up to `count` sleepers, if the hint says there are any.
    #[inline]
    fn wake(&self, count: i32) {
        if self.block.word(SLEEPERS).load(Ordering::SeqCst) != 0 {
            let wakes = self.block.word(WAKES);
            wakes.fetch_add(1, Ordering::SeqCst);
            ipc_core::internal::futex_wake(wakes, count);
        }
    }
}

fn not_recoverable(op: &'static str) -> Error {
    Error::from_raw_os_error(op, libc::ENOTRECOVERABLE)
}

impl<R, T: ShmSafe> fmt::Debug for RobustMutex<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutex")
            .field("value", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// What a lock of a [`RobustMutex`] found.
#[derive(Debug)]
#[must_use = "an owner-died lock must be repaired and marked consistent, or given up"]
pub enum Locked<'a, R: SharedRegion, T: ShmSafe> {
    /// The mutex was free or released normally.
    Clean(MutexGuard<'a, R, T>),
    /// The previous holder died holding it: the data may be half-updated.
    OwnerDied(OwnerDied<'a, R, T>),
}

impl<'a, R: SharedRegion, T: ShmSafe> Locked<'a, R, T> {
    /// The guard of a clean lock; for an owner-died lock, gives the mutex up (it becomes
    /// unrecoverable) and returns an owner-died error. For callers that cannot repair.
    ///
    /// # Errors
    ///
    /// Owner-died, as above.
    pub fn clean(self) -> Result<MutexGuard<'a, R, T>> {
        match self {
            Locked::Clean(guard) => Ok(guard),
            Locked::OwnerDied(recovery) => {
                drop(recovery);
                Err(Error::owner_died(
                    "mutex_lock",
                    "the previous holder died; the mutex was given up and is now unrecoverable",
                ))
            }
        }
    }
}

/// A locked [`RobustMutex`]: read and write the guarded value; unlocked on drop. Bound to
/// the thread that locked it.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, R: SharedRegion, T: ShmSafe> {
    mutex: &'a RobustMutex<R, T>,
    /// The lock word this thread holds the mutex as.
    held: u64,
    /// The lock word names the thread that locked it.
    _thread: PhantomData<*const ()>,
}

impl<'a, R: SharedRegion, T: ShmSafe> MutexGuard<'a, R, T> {
    #[inline]
    fn new(mutex: &'a RobustMutex<R, T>, held: u64) -> Self {
        MutexGuard {
            mutex,
            held,
            _thread: PhantomData,
        }
    }

    /// A copy of the guarded value.
    pub fn get(&self) -> T {
        self.mutex.block.read(DATA)
    }

    /// Replaces the guarded value.
    pub fn set(&self, value: T) {
        self.mutex.block.write(DATA, value);
    }

    /// Where the guarded value lives, for in-place access through raw pointers (other
    /// processes map the same memory: never turn it into a reference).
    pub fn as_ptr(&self) -> *mut T {
        self.mutex.block.ptr(DATA).cast()
    }
}

impl<R: SharedRegion, T: ShmSafe> Drop for MutexGuard<'_, R, T> {
    #[inline]
    fn drop(&mut self) {
        if self.held & INCONSISTENT == 0 {
            self.mutex.unlock(self.held);
            return;
        }
        // A recovery given up: the mutex is unusable for good, and every waiter is told.
        if self
            .mutex
            .lock_word()
            .compare_exchange(
                self.held,
                UNRECOVERABLE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.mutex.wake(i32::MAX);
        }
    }
}

impl<R: SharedRegion, T: ShmSafe> fmt::Debug for MutexGuard<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MutexGuard")
    }
}

/// A [`RobustMutex`] locked after its previous holder died. Repair the value and call
/// [`mark_consistent`](OwnerDied::mark_consistent); dropping it instead gives the mutex up
/// for good (every later lock fails with `ENOTRECOVERABLE`), as POSIX specifies for robust
/// mutexes.
#[must_use = "dropping it makes the mutex unrecoverable; repair and mark_consistent instead"]
pub struct OwnerDied<'a, R: SharedRegion, T: ShmSafe> {
    guard: MutexGuard<'a, R, T>,
}

impl<'a, R: SharedRegion, T: ShmSafe> OwnerDied<'a, R, T> {
    /// A copy of the guarded value, as the dead holder left it.
    pub fn get(&self) -> T {
        self.guard.get()
    }

    /// Replaces the guarded value (the repair).
    pub fn set(&self, value: T) {
        self.guard.set(value);
    }

    /// Where the guarded value lives (see [`MutexGuard::as_ptr`]).
    pub fn as_ptr(&self) -> *mut T {
        self.guard.as_ptr()
    }

    /// Declares the data repaired: the mutex stays usable and this becomes a normal guard.
    ///
    /// # Errors
    ///
    /// Corrupted if another process rewrote the lock word meanwhile (then nothing is
    /// unlocked for it).
    pub fn mark_consistent(mut self) -> Result<MutexGuard<'a, R, T>> {
        let repaired = self.guard.held & !INCONSISTENT;
        if self
            .guard
            .mutex
            .lock_word()
            .compare_exchange(
                self.guard.held,
                repaired,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            // Not ours any more: dropping the guard must not touch the word either.
            self.guard.held = 0;
            return Err(Error::corrupted(
                "mutex_mark_consistent",
                "another process rewrote the lock word of a mutex this thread held",
            ));
        }
        self.guard.held = repaired;
        Ok(self.guard)
    }
}

impl<R: SharedRegion, T: ShmSafe> fmt::Debug for OwnerDied<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied")
    }
}

impl<R: SharedRegion + Clone + Send + Sync + 'static, T: ShmSafe> ipc_core::Source
    for RobustMutex<R, T>
{
    /// Ready when the lock is free, or every 20 ms while it is held (a holder's death
    /// wakes nobody: [`try_lock`](RobustMutex::try_lock) then finds it dead). The region
    /// must be shareable (`Arc<SharedMemory>`, say): the selector keeps a clone of it.
    fn readiness(&self, interest: ipc_core::Interest) -> Result<ipc_core::Readiness> {
        crate::ready::readiness(&self.block, FUTEX_OBJECT, interest)
            .map_err(|e| e.with_subject("robust mutex"))
    }
}

/// How a poller waits for the lock: on the wake counter an unlock bumps.
const FUTEX_OBJECT: crate::ready::FutexObject = crate::ready::FutexObject {
    what: "a mutex",
    word: WAKES,
    sleepers: SLEEPERS,
    ready: |block| {
        let lock = block.u64_at(LOCK);
        lock == 0 || lock & UNRECOVERABLE != 0
    },
    tick: Some(SLICE),
};
