//! Unnamed process-shared counting semaphores in a shared region, on a futex protocol of
//! this crate's whose every shared word is validated here.
//!
//! ```text
//! 32  value u32     the count; waiters sleep on it while it is 0
//! 36  sleepers u32  how many threads sleep on it (a hint: a wrong value costs a system
//!                   call, never a lost wake-up of a correct peer)
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::internal::{Wait, check_creation_option};
use ipc_core::{Error, Limit, Result, SharedRegion};

use crate::block::{self, OBJECT, PARAM};
use crate::permit::{Release, Sealed};
use crate::sys::Block;
use crate::{SEM_VALUE_MAX, SemaphoreOptions};

/// The bytes a [`Semaphore`] takes in a region (its offset must be a multiple of 16).
pub const SEMAPHORE_SIZE: usize = 64;

/// "SEM2": a block holding a semaphore of this protocol.
const MAGIC: u32 = u32::from_le_bytes(*b"SEM2");

const VALUE: usize = OBJECT;
const SLEEPERS: usize = OBJECT + 4;
/// Spins on a zero value before sleeping: well below the cost of a wake-up.
const SPINS: u32 = 100;

/// What names the semaphore in errors.
const SUBJECT: &str = "unnamed semaphore";

/// An unnamed process-shared semaphore, living in a shared region such as an `ipc-shm`
/// segment at a fixed offset: a count in the region, waited on with a futex.
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
/// The count and the sleeper hint are read and checked by this crate's code, never handed
/// to the C library (glibc's `sem_t` aborts the process when a scribbled one makes the
/// futex call fail). A process that can write the region can corrupt the semaphore: a
/// wrong header is an error, a scribbled count is just another count (posts beyond the
/// bound are refused, waits may block until their timeout). Nothing a peer writes causes
/// undefined behaviour, a crash or an abort in this process, or a wait past its deadline.
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
        let op = "semaphore_init_in";
        self.check_values(op)?;
        let block = place(region, offset, op)?;
        block::claim(&block, op)?;
        block
            .word(PARAM)
            .store(self.bound().unwrap_or(0), Ordering::Relaxed);
        block
            .word(VALUE)
            .store(self.initial_value(), Ordering::Relaxed);
        block.word(SLEEPERS).store(0, Ordering::Relaxed);
        block::publish(&block, MAGIC);
        Ok(Semaphore {
            block,
            max: self.bound(),
        })
    }

    /// Opens the semaphore another process initialised at `offset` of `region`, waiting
    /// for the initialisation for at most the [`timeout`](SemaphoreOptions::timeout). The
    /// bound is the one stored with it.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad place, for an [`initial`](SemaphoreOptions::initial) value
    /// set in these options, or a [`max`](SemaphoreOptions::max) other than the stored
    /// one; `TimedOut` if nothing was initialised in time;
    /// peer-gone if the initialising process died; corrupted if the memory holds something
    /// else.
    pub fn open_in<R: SharedRegion>(&self, region: R, offset: usize) -> Result<Semaphore<R>> {
        let op = "semaphore_open_in";
        self.refuse_initial(op, "semaphore")?;
        let block = place(region, offset, op)?;
        block::wait_ready(&block, MAGIC, "semaphore", self.open_timeout(), op)?;
        let max = match block.word(PARAM).load(Ordering::Relaxed) {
            0 => None,
            max if max <= SEM_VALUE_MAX => Some(max),
            max => return Err(Error::corrupted(op, format!("a semaphore bound of {max}"))),
        };
        // Unbounded is the largest value a semaphore holds.
        check_creation_option(
            op,
            "semaphore",
            "SemaphoreOptions::max",
            self.bound().map(|max| max as usize),
            max.map_or(SEM_VALUE_MAX, |max| max) as usize,
        )?;
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

    fn value_word(&self) -> &AtomicU32 {
        self.block.word(VALUE)
    }

    /// Adds one permit, waking a waiter.
    ///
    /// # Errors
    ///
    /// For a bounded semaphore, a limit error if the value is already at the maximum
    /// (nothing changes); `EOVERFLOW` at [`SEM_VALUE_MAX`].
    #[inline]
    pub fn post(&self) -> Result<()> {
        const OP: &str = "post";
        let value = self.value_word();
        let limit = self.max.unwrap_or(SEM_VALUE_MAX);
        let mut seen = value.load(Ordering::Relaxed);
        loop {
            if seen >= limit {
                return Err(self.full(OP, seen));
            }
            match value.compare_exchange_weak(seen, seen + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        if self.block.word(SLEEPERS).load(Ordering::SeqCst) != 0 {
            ipc_core::internal::futex_wake(value, 1);
        }
        Ok(())
    }

    /// The error of a post that finds the value at `value`, at or beyond the bound.
    #[cold]
    fn full(&self, op: &'static str, value: u32) -> Error {
        match self.max {
            Some(max) => Error::limit_exceeded(
                op,
                "semaphore value",
                u64::from(value) + 1,
                Limit::new("SemaphoreOptions::max", u64::from(max)),
            ),
            None => Error::from_raw_os_error(op, libc::EOVERFLOW),
        }
        .with_subject(SUBJECT)
    }

    /// Takes one permit, waiting as `wait` says.
    #[inline]
    fn take(&self, wait: Wait, op: &'static str) -> Result<()> {
        let value = self.value_word();
        let mut spins = 0u32;
        loop {
            let seen = value.load(Ordering::Relaxed);
            if seen > 0 {
                if value
                    .compare_exchange_weak(seen, seen - 1, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            let Some(deadline) = wait.deadline() else {
                return Err(Error::would_block(op).with_subject(SUBJECT));
            };
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let left = deadline.remaining();
            if left.is_some_and(|left| left.is_zero()) {
                return Err(Error::timed_out(op).with_subject(SUBJECT));
            }
            ipc_core::internal::check_cancelled(op).map_err(|e| e.with_subject(SUBJECT))?;
            // Sleeps only while the value is still 0; a post in between changes it, so no
            // wake-up is missed. Signals and spurious wake-ups just go round again; while a
            // cancellation token is watched, a slice at a time lets it end the wait.
            let slice = if ipc_core::internal::cancellation_watched() {
                let slice = ipc_core::internal::CANCEL_SLICE;
                Some(left.map_or(slice, |left| left.min(slice)))
            } else {
                left
            };
            let sleepers = self.block.word(SLEEPERS);
            sleepers.fetch_add(1, Ordering::SeqCst);
            ipc_core::internal::futex_wait(value, 0, slice);
            sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes one permit, waiting as long as it takes. Interruptions by signals are retried.
    ///
    /// # Errors
    ///
    /// None for a semaphore whose header checked out; the `Result` matches the other forms.
    #[inline]
    pub fn wait(&self) -> Result<()> {
        self.take(Wait::Block, "wait")
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the value is 0.
    pub fn try_wait(&self) -> Result<()> {
        self.take(Wait::Try, "try_wait")
    }

    /// Takes one permit, waiting at most `timeout` (on the monotonic clock).
    ///
    /// # Errors
    ///
    /// `TimedOut` if no permit came in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.take(Wait::after(timeout), "wait_timeout")
    }

    /// The current value.
    ///
    /// # Errors
    ///
    /// None; the `Result` matches [`NamedSemaphore::value`](crate::NamedSemaphore::value).
    pub fn value(&self) -> Result<u32> {
        Ok(self.value_word().load(Ordering::Relaxed))
    }

    crate::permit::acquire_methods!();
}

impl<R> Sealed for Semaphore<R> {}

impl<R: SharedRegion> Release for Semaphore<R> {
    fn release_one(&self) -> Result<()> {
        self.post()
    }
}

impl<R: SharedRegion + Clone + Send + Sync + 'static> ipc_core::Source for Semaphore<R> {
    /// Ready when a permit is there (a [`try_wait`](Semaphore::try_wait) may still lose
    /// it to another waiter). The region must be shareable (`Arc<SharedMemory>`, say):
    /// the selector keeps a clone of it.
    fn readiness(&self, interest: ipc_core::Interest) -> Result<ipc_core::Readiness> {
        crate::ready::readiness(&self.block, FUTEX_OBJECT, interest)
            .map_err(|e| e.with_subject(SUBJECT))
    }
}

/// How a poller waits for a permit: on the count, while it is 0.
const FUTEX_OBJECT: crate::ready::FutexObject = crate::ready::FutexObject {
    what: "a semaphore",
    word: VALUE,
    sleepers: SLEEPERS,
    ready: |block| block.u32_at(VALUE) > 0,
    tick: None,
};
