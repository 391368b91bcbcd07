//! Signals for Linux, safely: handlers through signal-hook with channel-like receivers,
//! signals read as data with their sender and payload (`signalfd`), sending with payloads
//! (`sigqueue`) and through pidfds that never reach a recycled pid, process control, and
//! graceful shutdown.
//!
//! ```
//! use ipc_signal::{Signal, SignalFd};
//! use std::time::Duration;
//!
//! let rt = Signal::realtime(3)?;
//! let fd = SignalFd::new(&[rt])?; // blocks it in this thread and reads it as data
//! ipc_signal::raise(rt)?; // to this thread; `queue(pid, rt, value)` carries a payload
//! let info = fd.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!((info.signal, info.pid), (rt, std::process::id()));
//! # Ok::<(), ipc_signal::Error>(())
//! ```
//!
//! # Which tool
//!
//! - [`SignalReceiver`], [`flag`]: react to signals in a running program; handlers run
//!   through signal-hook's table, so several users of a signal coexist.
//! - [`SignalFd`]: read signals as data (sender pid and uid, code, `sigqueue` payload),
//!   every real-time signal in order; poll it with other descriptors.
//! - [`send()`], [`queue()`], [`raise()`]: send by pid; [`Process`]: send through a pidfd, wait
//!   for an exit with a deadline, stop and wait until stopped, resume, terminate gracefully
//!   then kill, reap a child.
//! - [`Shutdown`]: `SIGTERM`/`SIGINT` as a flag, a descriptor and a wait; a second signal
//!   can force the exit.
//! - [`set_disposition`]: ignore or default a signal for a scope, then put back what was.
//!
//! # Rules that keep this safe
//!
//! Handlers installed by this crate only touch atomics and call `write` (and `_exit` for a
//! forced shutdown): async-signal-safe operations, no allocation, no lock. Standard signals
//! coalesce (a signal sent while one of its kind is pending is lost), so every API here
//! promises at least one delivery, not a count; real-time signals are queued, up to
//! `RLIMIT_SIGPENDING` (beyond, [`queue`] fails with a limit error). A signal sent to the
//! process goes to any thread that does not block it: block signals read through a
//! [`SignalFd`] in the main thread before spawning others.

#![deny(unsafe_code)]

mod disposition;
mod handler;
mod process;
mod send;
mod shutdown;
mod signal;
mod signalfd;
#[allow(unsafe_code)]
mod sys;

pub use disposition::{Disposition, DispositionGuard, set_disposition};
pub use handler::{Registration, SignalReceiver, flag};
pub use process::{ChildExit, Process, Termination};
pub use send::{queue, raise, send};
pub use shutdown::{Shutdown, ShutdownOptions, ShutdownToken};
pub use signal::{MaskGuard, Signal, SignalSet};
pub use signalfd::{SignalFd, SignalInfo};

#[cfg(feature = "tokio")]
pub use ipc_core::{Async, TryNext};
pub use ipc_core::{Cancel, Deadline, Error, Interest, Key, Result, Selector, Source};
