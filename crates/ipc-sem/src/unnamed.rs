//! Unnamed process-shared POSIX semaphores (`sem_init` with `pshared = 1`) in a shared
//! region.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::{Error, Limit, Result, SharedRegion};

use crate::block::{self, OBJECT, PARAM, WordLock};
use crate::permit::{Release, Sealed};
use crate::sys::Block;
use crate::{SEM_VALUE_MAX, SemaphoreOptions, wait};

/// The bytes a [`Semaphore`] takes in a region (its offset must be a multiple of 16).
pub const SEMAPHORE_SIZE: usize = 64;

/// "SEM1": a block holding a semaphore.
const MAGIC: u32 = u32::from_le_bytes(*b"SEM1");

/// An unnamed process-shared semaphore (`sem_init` with `pshared = 1`), living in a shared
/// region such as an `ipc-shm` segment at a fixed offset.
///
/// One process initialises it ([`SemaphoreOptions::init_in`]); the others open it
/// ([`SemaphoreOptions::open_in`]), which waits until it is initialised and refuses memory
/// that holds something else. Its bound, if any, is stored with it, so every process's
/// posts respect it. It has no name: it lives as long as the region.
///
/// **A permit is lost if its holder dies**, as with every POSIX semaphore.
///
/// # Untrusted peers
///
/// A process that can write the region can corrupt the semaphore: this is detected when
/// the header is wrong (an error), but a scribbled `sem_t` just holds some other value, so
/// waits may block until a timeout. Nothing a peer writes causes undefined behaviour in
/// this process.
#[derive(Debug)]
pub struct Semaphore<R> {
    block: Block<R>,
    max: Option<u32>,
}

impl SemaphoreOptions {
    /// Initialises a semaphore at `offset` of `region` (16-byte aligned,
    /// [`SEMAPHORE_SIZE`] bytes) with the initial value and bound of these options; the
    /// creation mode and permissions do not apply.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a place outside the region, misaligned or read-only;
    /// `AlreadyExists` if the place already holds an object (or a live process is
    /// initialising one); a limit error for an initial value above the bound.
    pub fn init_in<R: SharedRegion>(&self, region: R, offset: usize) -> Result<Semaphore<R>> {
        let op = "sem_init";
        self.check_values(op)?;
        let block = place(region, offset, op)?;
        block::claim(&block, op)?;
        block
            .word(PARAM)
            .store(self.bound().unwrap_or(0), Ordering::Relaxed);
        if let Err(e) = block.sem(OBJECT).init_shared(self.initial_value()) {
            block::abandon(&block);
            return Err(Error::from(e).with_op(op));
        }
        block::publish(&block, MAGIC);
        Ok(Semaphore {
            block,
            max: self.bound(),
        })
    }

    /// Opens the semaphore another process initialised at `offset` of `region`, waiting
    /// for the initialisation for at most the [`timeout`](SemaphoreOptions::timeout). The
    /// bound is the one stored with it (these options' initial value and bound do not
    /// apply).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad place; `TimedOut` if nothing was initialised in time;
    /// peer-gone if the initialising process died; corrupted if the memory holds something
    /// else.
    pub fn open_in<R: SharedRegion>(&self, region: R, offset: usize) -> Result<Semaphore<R>> {
        let op = "sem_open_in";
        let block = place(region, offset, op)?;
        block::wait_ready(&block, MAGIC, "semaphore", self.open_timeout(), op)?;
        let max = match block.word(PARAM).load(Ordering::Relaxed) {
            0 => None,
            max if max <= SEM_VALUE_MAX => Some(max),
            max => return Err(Error::corrupted(op, format!("a semaphore bound of {max}"))),
        };
        Ok(Semaphore { block, max })
    }
}

fn place<R: SharedRegion>(region: R, offset: usize, op: &'static str) -> Result<Block<R>> {
    Block::new(region, offset, SEMAPHORE_SIZE)
        .map_err(|why| Error::new(op, std::io::ErrorKind::InvalidInput, why))
}

impl<R: SharedRegion> Semaphore<R> {
    /// The region the semaphore lives in.
    pub fn region(&self) -> &R {
        self.block.region()
    }

    /// The bound stored with the semaphore, if any.
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    /// Adds one permit, waking a waiter.
    ///
    /// # Errors
    ///
    /// For a bounded semaphore, a limit error if the value is already at the maximum
    /// (nothing changes); `EOVERFLOW` at [`SEM_VALUE_MAX`].
    #[inline]
    pub fn post(&self) -> Result<()> {
        let sem = self.block.sem(OBJECT);
        let Some(max) = self.max else {
            return sem.post().map_err(|e| Error::from(e).with_op("sem_post"));
        };
        // The check and the post must not interleave with another process's.
        let _lock = WordLock::take(&self.block);
        let value = self.value()?;
        if value >= max {
            let limit = Limit::new("SemaphoreOptions::max", u64::from(max));
            return Err(Error::limit_exceeded(
                "sem_post",
                "semaphore value",
                u64::from(value) + 1,
                limit,
            ));
        }
        sem.post().map_err(|e| Error::from(e).with_op("sem_post"))
    }

    /// Takes one permit, waiting as long as it takes. Interruptions by signals are retried.
    ///
    /// # Errors
    ///
    /// The errors of `sem_wait` other than `EINTR` (none for a valid semaphore).
    #[inline]
    pub fn wait(&self) -> Result<()> {
        wait::wait(self.block.sem(OBJECT), "unnamed semaphore")
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the value is 0.
    pub fn try_wait(&self) -> Result<()> {
        wait::try_wait(self.block.sem(OBJECT), "unnamed semaphore")
    }

    /// Takes one permit, waiting at most `timeout` (on the monotonic clock, as for
    /// [`NamedSemaphore::wait_timeout`](crate::NamedSemaphore::wait_timeout)).
    ///
    /// # Errors
    ///
    /// `TimedOut` if no permit came in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        wait::wait_timeout(self.block.sem(OBJECT), timeout, "unnamed semaphore")
    }

    /// The current value (0 while processes wait).
    ///
    /// # Errors
    ///
    /// The error of `sem_getvalue` (none for a valid semaphore).
    pub fn value(&self) -> Result<u32> {
        wait::value(self.block.sem(OBJECT), "unnamed semaphore")
    }

    crate::permit::acquire_methods!();
}

impl<R> Sealed for Semaphore<R> {}

impl<R: SharedRegion> Release for Semaphore<R> {
    fn release_one(&self) -> Result<()> {
        self.post()
    }
}
