//! The foundation shared by the ipc-rs crates: one error type, validated names for named
//! objects, creation modes and permissions, deadlines, and the message traits.
//!
//! Every mechanism crate (`ipc-pipe`, `ipc-socket`, `ipc-shm`, `ipc-sem`, `ipc-mq`,
//! `ipc-signal`) re-exports what it uses from here, so most programs never name this crate.
//! Depend on it directly to write code that is generic over mechanisms, through
//! [`MessageSender`] and [`MessageReceiver`].
//!
//! Two things work across all of them: a [`Selector`] waits on any mix of endpoints (every
//! crate's endpoints are [`Source`]s), and a [`Cancel`] token ends any blocking call.
//!
//! ```
//! use std::time::Duration;
//! use ipc_core::{CreationMode, Deadline, Error, IpcName, Permissions};
//!
//! // A name for a new object that no other process is using.
//! let name = IpcName::unique("example")?;
//! assert!(name.as_str().starts_with("/example-"));
//!
//! // The defaults are the safe choices: exclusive creation, owner-only access.
//! assert_eq!(CreationMode::default(), CreationMode::CreateExclusive);
//! assert_eq!(Permissions::default().mode(), 0o600);
//!
//! // A blocking call retries EINTR against one deadline.
//! let deadline = Deadline::after(Duration::from_secs(1));
//! let got = deadline.retry(|_left| Ok::<_, Error>(7))?;
//! assert_eq!(got, 7);
//!
//! // Errors name the call and the object, and convert to `std::io::Error`.
//! let err = Error::from_raw_os_error("shm_open", libc::ENOENT).with_subject(&name);
//! assert!(err.to_string().starts_with("shm_open(/example-"));
//! let io: std::io::Error = err.into();
//! assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
//! # Ok::<(), ipc_core::Error>(())
//! ```
//!
//! # Linux specifics
//!
//! POSIX shared-memory objects and semaphores live in `/dev/shm` (a semaphore `/x` is the file
//! `sem.x`); message queues live in the `mqueue` file system, usually mounted at
//! `/dev/mqueue`. [`IpcName`] accepts names that work for all three.
//!
//! # Safety model
//!
//! The `unsafe` code is in a private `sys` module (`sigtimedwait`, `pidfd_open`, `futex`,
//! `gettid`, a fork handler) and in the definitions of the unsafe traits [`SharedRegion`] and
//! [`ShmSafe`]. The mechanism crates keep theirs in private `sys` modules too, and treat
//! anything a peer process writes as untrusted input.
//!
//! # What is not API
//!
//! `ipc_core::internal` (hidden from these docs) holds the plumbing the crates share: the
//! one `Wait` of every blocking call, `poll` with a deadline, futexes, thread identities.
//! It may change in any release. No public signature outside it names a type of `nix`, so
//! a `nix` upgrade is never a breaking change for users.

#![deny(unsafe_code)]

#[cfg(feature = "tokio")]
mod asynch;
mod cancel;
mod cleanup;
mod deadline;
mod error;
mod frame;
mod futex;
#[doc(hidden)]
pub mod internal;
mod message;
mod mode;
mod name;
mod named;
mod process;
mod relay;
mod select;
// Declares the unsafe marker traits of shared memory; no unsafe code runs here.
#[allow(unsafe_code)]
mod shared;
mod sigpipe;
mod stream;
#[allow(unsafe_code)]
mod sys;
mod watcher;

#[cfg(feature = "tokio")]
pub use asynch::{Async, Messages, TryNext};
pub use cancel::Cancel;
pub use deadline::{Clock, Deadline};
pub use error::{Error, Limit, Result};
pub use frame::{DEFAULT_MAX_MESSAGE_SIZE, FRAME_HEADER_LEN, FramedReader, FramedWriter, PIPE_BUF};
pub use message::{MessageReceiver, MessageSender};
pub use mode::{Access, CreationMode, OpenIntent, Opened, Permissions, Unlink, UnlinkOnDrop};
pub use name::IpcName;
pub use select::{Interest, Key, Readiness, ReadinessHook, Selector, Source};
pub use shared::{SharedRegion, ShmSafe};
pub use sigpipe::{block_sigpipe, consume_sigpipe};
pub use stream::{ReadReady, WriteReady};
