//! Robust process-shared mutexes in a shared region.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::{Clock, Deadline, Error, Result, SharedRegion, ShmSafe};

use crate::block::{self, OBJECT, PARAM};
use crate::sys::{self, Block, RawMutex};

/// "MTX1": a block holding a robust mutex.
const MAGIC: u32 = u32::from_le_bytes(*b"MTX1");

/// Where the guarded value starts in the block: after the header and the mutex, 16-aligned.
const DATA: usize = (OBJECT + std::mem::size_of::<libc::pthread_mutex_t>()).next_multiple_of(16);

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
/// # Ok::<(), ipc_core::Error>(())
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
    /// process is initialising one); the error of `pthread_mutex_init`.
    pub fn init_in<R: SharedRegion, T: ShmSafe>(
        &self,
        region: R,
        offset: usize,
        value: T,
    ) -> Result<RobustMutex<R, T>> {
        let op = "pthread_mutex_init";
        let block = place::<R, T>(region, offset, op)?;
        block::claim(&block, op)?;
        block.write(DATA, value);
        block.word(PARAM).store(data_size::<T>(), Ordering::Relaxed);
        if let Err(errno) = block.mutex(OBJECT).init() {
            block::abandon(&block);
            return Err(Error::from_raw_os_error(op, errno));
        }
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
/// Built on a `pthread_mutex_t` that is process-shared, robust (the kernel releases it when
/// its holder dies, through the thread's robust list) and error-checking (a thread locking
/// it twice gets an error, not a deadlock). It guards a value of a [`ShmSafe`] type `T`,
/// read and written by copy: other processes map the same memory, so no reference into it
/// is handed out.
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
/// A peer that can write the region can corrupt the mutex (detected when the header is
/// wrong; a scribbled `pthread_mutex_t` may make locks fail or wait until their timeout) and
/// can change the guarded value without locking. Nothing it writes causes undefined
/// behaviour in this process.
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
    fn raw(&self) -> RawMutex<'_> {
        self.block.mutex(OBJECT)
    }

    #[inline]
    fn locked(
        &self,
        result: std::result::Result<(), libc::c_int>,
        op: &'static str,
    ) -> Result<Locked<'_, R, T>> {
        match result {
            Ok(()) => Ok(Locked::Clean(MutexGuard::new(self))),
            Err(errno) => self.not_clean(errno, op),
        }
    }

    /// What a lock that did not simply succeed found; kept out of the fast path.
    #[cold]
    fn not_clean(&self, errno: libc::c_int, op: &'static str) -> Result<Locked<'_, R, T>> {
        match errno {
            libc::EOWNERDEAD => Ok(Locked::OwnerDied(OwnerDied {
                guard: MutexGuard::new(self),
            })),
            libc::EBUSY => Err(Error::would_block(op)),
            libc::ETIMEDOUT => Err(Error::timed_out(op)),
            errno => Err(Error::from_raw_os_error(op, errno)),
        }
    }

    /// Locks the mutex, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// `ENOTRECOVERABLE` if an earlier holder died and nobody marked the data consistent;
    /// `EDEADLK` if this thread already holds it.
    #[inline]
    pub fn lock(&self) -> Result<Locked<'_, R, T>> {
        self.locked(self.raw().lock(), "pthread_mutex_lock")
    }

    /// Locks the mutex if it is free now.
    ///
    /// When the mutex is busy the attempt costs a system call: it is a timed lock with a
    /// time long past, because glibc's `pthread_mutex_trylock` leaves an unrecoverable
    /// robust mutex locked by the caller. Spin on it sparingly.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if another thread holds it; otherwise as [`lock`](RobustMutex::lock).
    pub fn try_lock(&self) -> Result<Locked<'_, R, T>> {
        self.locked(self.raw().try_lock(), "pthread_mutex_trylock")
    }

    /// Locks the mutex, waiting at most `timeout` (on the monotonic clock with
    /// `pthread_mutex_clocklock`; on the wall clock, with `pthread_mutex_timedlock`, where
    /// the C library lacks it). A holder that dies meanwhile ends the wait with
    /// [`Locked::OwnerDied`].
    ///
    /// # Errors
    ///
    /// `TimedOut` if it stayed locked; otherwise as [`lock`](RobustMutex::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Locked<'_, R, T>> {
        let clock = sys::wait_clock();
        let op = match clock {
            Clock::Monotonic => "pthread_mutex_clocklock",
            Clock::Realtime => "pthread_mutex_timedlock",
        };
        let Some(at) = Deadline::after(timeout).absolute_timespec(clock)? else {
            return self.lock();
        };
        self.locked(self.raw().timed_lock(&at), op)
    }

    /// The region the mutex lives in.
    pub fn region(&self) -> &R {
        self.block.region()
    }
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
                    "pthread_mutex_lock",
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
    /// A pthread mutex must be unlocked by the thread that locked it.
    _thread: PhantomData<*const ()>,
}

impl<'a, R: SharedRegion, T: ShmSafe> MutexGuard<'a, R, T> {
    #[inline]
    fn new(mutex: &'a RobustMutex<R, T>) -> Self {
        MutexGuard {
            mutex,
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
        // Unlocking fails only for a thread that does not hold the mutex, which a guard
        // rules out.
        let _ = self.mutex.raw().unlock();
    }
}

impl<R: SharedRegion, T: ShmSafe> fmt::Debug for MutexGuard<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MutexGuard")
    }
}

/// A [`RobustMutex`] locked after its previous holder died. Repair the value and call
/// [`mark_consistent`](OwnerDied::mark_consistent); dropping it instead gives the mutex up
/// for good (every later lock fails with `ENOTRECOVERABLE`), as POSIX specifies.
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
    /// The error of `pthread_mutex_consistent` (none for a mutex locked this way); the mutex
    /// is then unlocked and unrecoverable.
    pub fn mark_consistent(self) -> Result<MutexGuard<'a, R, T>> {
        self.guard
            .mutex
            .raw()
            .consistent()
            .map_err(|errno| Error::from_raw_os_error("pthread_mutex_consistent", errno))?;
        Ok(self.guard)
    }
}

impl<R: SharedRegion, T: ShmSafe> fmt::Debug for OwnerDied<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied")
    }
}
