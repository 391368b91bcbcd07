//! POSIX message queues for Linux: whole messages with priorities, kept by the kernel,
//! with blocking, non-blocking and timed forms, readiness polling and notification.
//!
//! ```
//! use ipc_mq::IpcName;
//! use ipc_mq::{Direction, QueueOptions};
//!
//! let name = IpcName::unique("doc-queue")?;
//! let queue = QueueOptions::new().capacity(4).max_message_size(64).create(&name)?;
//! let reader = QueueOptions::new().open(&name, Direction::Receive)?; // another process
//! queue.send(b"hello")?; // priority 0; send_priority chooses one
//! let message = reader.recv_message()?;
//! assert_eq!(message.data, b"hello");
//! assert!(reader.try_recv_message().unwrap_err().is_would_block());
//! # Ok::<(), ipc_mq::Error>(())
//! ```
//!
//! # What it gives
//!
//! - **Queues that clean up**: the creator removes the name on drop (and never a
//!   successor's queue); creation modes handle a queue left behind by a crash; exact
//!   permissions; another user's queue is refused unless accepted; descriptors are
//!   close-on-exec and closed on drop.
//! - **Every wait three ways**: `send`/`recv` wait, `try_send`/`try_recv` never do (also on
//!   a blocking descriptor), `send_timeout`/`recv_timeout` wait until a deadline and retry
//!   `EINTR` against it. They are the calls of [`MessageSender`]/[`MessageReceiver`], so
//!   importing the traits changes nothing; the `_priority` forms (`send_priority`,
//!   `recv_priority`...) choose or report the priority. [`MessageQueue::set_nonblocking`] switches the descriptor.
//! - **Limits named**: a queue beyond `msg_max`, `msgsize_max` or `RLIMIT_MSGQUEUE`, a
//!   system out of queues (`queues_max`), an oversized message or a too-small buffer is an
//!   error that names the limit and the knob to raise ([`SystemLimits`]).
//! - **Asynchronous use**: the queue is a descriptor ([`AsFd`](std::os::fd::AsFd)) to poll,
//!   [`MessageQueue::wait_readable`] and [`MessageQueue::wait_writable`] wait (also
//!   with a timeout or deadline), and [`MessageQueue::notify`]
//!   registers for `mq_notify` through a netlink socket, another pollable descriptor: no
//!   signal handler, no thread.
//! - **Typed messages**: [`MessageQueue::send_value`] and [`MessageQueue::recv_value`] for
//!   plain-old-data ([`ShmSafe`]) types.
//!
//! # Delivery
//!
//! Messages come highest priority first, in order within a priority. Delivery is **at most
//! once**: a message leaves the queue when a receiver takes it, so a receiver that dies
//! before handling it loses it. Build acknowledgements on top (a reply queue) where that
//! matters.
//!
//! # Limits
//!
//! By default a queue holds `msg_default` messages of `msgsize_default` bytes (often 10 of
//! 8 KiB); beyond `msg_max`/`msgsize_max` (`/proc/sys/fs/mqueue`) creation is refused even
//! for root, so behaviour does not depend on privileges (a process reads the two knobs at
//! its first creation and again before it refuses one, not every time). A receive buffer must hold the
//! queue's largest message, whatever the size of the one waiting (the kernel's rule). Timed
//! waits measure against the wall clock (`mq_timedsend`, `mq_timedreceive`). The queues of
//! a user share `RLIMIT_MSGQUEUE` bytes.

#![deny(unsafe_code)]

mod limits;
mod notify;
mod options;
mod queue;
mod stale;
#[allow(unsafe_code)]
mod sys;

pub use limits::SystemLimits;
pub use notify::Notification;
pub use options::{Direction, QueueOptions};
pub use queue::{MAX_PRIORITY, Message, MessageQueue, QueueAttributes};
pub use stale::{remove_stale_queues, stale_queues};

pub use ipc_core::{
    Access, Cancel, CreationMode, Deadline, Error, Interest, IpcName, Key, MessageReceiver,
    MessageSender, Permissions, Result, Selector, ShmSafe, Source,
};
#[cfg(feature = "tokio")]
pub use ipc_core::{Async, TryNext};
