//! POSIX message queues for Linux: whole messages with priorities, kept by the kernel,
//! with blocking, non-blocking and timed forms, readiness polling and notification.
//!
//! ```
//! use ipc_core::IpcName;
//! use ipc_mq::{Direction, QueueOptions};
//!
//! let name = IpcName::unique("doc-queue")?;
//! let queue = QueueOptions::new().capacity(4).max_message_size(64).create(&name)?;
//! let reader = QueueOptions::new().open(&name, Direction::Receive)?; // another process
//! queue.send(b"hello", 0)?;
//! let message = reader.recv_message()?;
//! assert_eq!(message.data, b"hello");
//! assert!(reader.try_recv_message().unwrap_err().is_would_block());
//! # Ok::<(), ipc_core::Error>(())
//! ```

#![deny(unsafe_code)]

mod limits;
mod notify;
mod queue;
#[allow(unsafe_code)]
mod sys;

pub use limits::SystemLimits;
pub use notify::Notification;
pub use queue::{Direction, MAX_PRIORITY, Message, MessageQueue, QueueAttributes, QueueOptions};

pub use ipc_core::{CreationMode, Error, IpcName, Permissions, Result};
