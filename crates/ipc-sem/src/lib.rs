//! Process-shared semaphores and mutexes for Linux that say what happens when a process
//! holding them dies.
//!
//! ```
//! use ipc_sem::IpcName;
//! use ipc_sem::SemaphoreOptions;
//!
//! let name = IpcName::unique("doc-jobs")?;
//! let jobs = SemaphoreOptions::new().create(&name)?; // the creator removes the name on drop
//! let worker = SemaphoreOptions::new().open(&name)?; // in another process, usually
//! jobs.post()?;
//! worker.wait()?;
//! assert!(worker.try_wait().unwrap_err().is_would_block());
//! # Ok::<(), ipc_sem::Error>(())
//! ```
//!
//! # Which one to use
//!
//! | primitive | lives in | when its holder dies | use it for |
//! |---|---|---|---|
//! | [`NamedSemaphore`] (`sem_open`) | `/dev/shm/sem.<name>` | **the permit is lost** | signalling between processes (producer/consumer counts, "work is ready") |
//! | [`Semaphore`] (a futex count of this crate's) | a shared region you map | **the permit is lost** | the same, next to data in shared memory, without a name |
//! | [`UndoSemaphore`] (System V, `SEM_UNDO`) | the kernel, by key | **the permit returns** | permits that are held and given back: locks, pools of resources |
//! | [`RobustMutex`] (a futex lock of this crate's) | a shared region you map | the next locker is told ([`Locked::OwnerDied`]) and repairs or gives up | mutual exclusion over data in shared memory |
//!
//! POSIX semaphores do not know who took a permit, so nothing can give it back: a process
//! that dies between `wait` and `post` leaves the count one lower for good (the tests prove
//! it). A System V semaphore with `SEM_UNDO` is undone by the kernel when the process exits,
//! but for the same reason it cannot carry signals: a process that waited for a permit
//! someone else posted gives it back when it exits. A robust mutex records its holder's
//! thread; a waiter that finds the holder dead within 20 ms takes the lock over and learns
//! that the data may be half-updated.
//!
//! # Shared memory and untrusted peers
//!
//! [`Semaphore`] and [`RobustMutex`] keep their state in words of the region that this
//! crate's code reads and validates; no C library object (`sem_t`, `pthread_mutex_t`) is
//! ever placed in memory a peer can write, so nothing a peer writes there crashes, aborts
//! or hangs this process past a deadline (the tests scribble on both while another process
//! uses them). [`NamedSemaphore`] is glibc's `sem_open` semaphore, kept for interoperating
//! with C programs: every process that can open it is trusted, as a scribbled `sem_t` can
//! make glibc abort the process that waits on it.
//!
//! Named objects are removed by their creator on drop. A System V set outlives a creator
//! that crashed (the kernel keeps it until `IPC_RMID`), so each set records its creator's
//! pid, and [`remove_stale_undo_sets`] removes those nobody will.
//!
//! Every wait has `try_` and `_timeout` forms, retries `EINTR` against its deadline, and
//! every semaphore hands out RAII [`Permit`]s (`acquire`); bounded and binary semaphores
//! ([`SemaphoreOptions::max`], [`SemaphoreOptions::binary`]) refuse a post beyond the bound.
//!
//! # Limits
//!
//! POSIX semaphores hold up to [`SEM_VALUE_MAX`] (2^31 − 1), System V ones up to [`SEMVMX`]
//! (32767), with at most `SEMMNI` sets on the system (`/proc/sys/kernel/sem`). Timed waits
//! measure against the monotonic clock, so setting the wall clock moves no deadline:
//! relative futex waits for [`Semaphore`] and [`RobustMutex`], `sem_clockwait` (looked up at
//! run time) for named semaphores, and relative `semtimedop` for System V. A C library
//! without `sem_clockwait` (glibc before 2.30, musl) gets `sem_timedwait`, whose deadlines
//! move with the wall clock. Named semaphores are files in `/dev/shm`, which the C library
//! requires. All processes sharing a [`RobustMutex`] must share a PID namespace (it records
//! thread ids).

#![deny(unsafe_code)]

mod block;
mod mutex;
mod named;
mod permit;
mod ready;
mod stale;
#[allow(unsafe_code)]
mod sys;
mod sysv;
mod unnamed;
mod wait;

pub use mutex::{Locked, MutexGuard, MutexOptions, OwnerDied, RobustMutex};
pub use named::{NamedSemaphore, SEM_VALUE_MAX, SemaphoreOptions};
pub use permit::{Permit, Release};
pub use stale::{remove_stale_named_semaphores, stale_named_semaphores};
pub use sysv::{
    SEMVMX, StaleUndoSet, UndoSemaphore, UndoSetRecord, remove_stale_undo_sets, stale_undo_sets,
    undo_set_record,
};
pub use unnamed::{SEMAPHORE_SIZE, Semaphore};

#[cfg(feature = "tokio")]
pub use ipc_core::Async;
pub use ipc_core::{
    Access, Cancel, CreationMode, Error, Interest, IpcName, Key, Permissions, Result, Selector,
    Source,
};
