//! Process-shared semaphores and mutexes for Linux that say what happens when a process
//! holding them dies.
//!
//! ```
//! use ipc_core::IpcName;
//! use ipc_sem::SemaphoreOptions;
//!
//! let name = IpcName::unique("doc-jobs")?;
//! let jobs = SemaphoreOptions::new().create(&name)?; // the creator removes the name on drop
//! let worker = SemaphoreOptions::new().open(&name)?; // in another process, usually
//! jobs.post()?;
//! worker.wait()?;
//! assert!(worker.try_wait().unwrap_err().is_would_block());
//! # Ok::<(), ipc_core::Error>(())
//! ```

#![deny(unsafe_code)]

mod block;
mod mutex;
mod named;
mod permit;
#[allow(unsafe_code)]
mod sys;
mod sysv;
mod unnamed;
mod wait;

pub use mutex::{Locked, MutexGuard, MutexOptions, OwnerDied, RobustMutex};
pub use named::{NamedSemaphore, SEM_VALUE_MAX, SemaphoreOptions};
pub use permit::{Permit, Release};
pub use sysv::{SEMVMX, UndoSemaphore};
pub use unnamed::{SEMAPHORE_SIZE, Semaphore};

pub use ipc_core::{CreationMode, Error, IpcName, Permissions, Result};
