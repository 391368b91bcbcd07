//! Creating and opening queues: the options, the direction of use, and the checks an
//! existing queue must pass.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipc_core::internal::{await_name, check_creation_option};
use ipc_core::{CreationMode, Deadline, Error, IpcName, OpenIntent, Permissions, Result};

use crate::{MessageQueue, SystemLimits, sys};
/// Which way a process uses a queue it opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Receive only (`O_RDONLY`).
    Receive,
    /// Send only (`O_WRONLY`).
    Send,
    /// Both (`O_RDWR`).
    #[default]
    Both,
}

impl Direction {
    fn flags(self) -> libc::c_int {
        match self {
            Direction::Receive => libc::O_RDONLY,
            Direction::Send => libc::O_WRONLY,
            Direction::Both => libc::O_RDWR,
        }
    }
}

/// Options for creating or opening a [`MessageQueue`].
///
/// ```
/// use ipc_mq::IpcName;
/// use ipc_mq::{Direction, QueueOptions};
///
/// let name = IpcName::unique("doc-jobs")?;
/// let jobs = QueueOptions::new().capacity(8).max_message_size(256).create(&name)?;
/// let worker = QueueOptions::new().open(&name, Direction::Receive)?;
/// jobs.send_priority(b"low", 1)?;
/// jobs.send_priority(b"urgent", 9)?;
/// let mut buf = vec![0; worker.max_message_size()];
/// let (len, priority) = worker.recv_priority(&mut buf)?;
/// assert_eq!((&buf[..len], priority), (&b"urgent"[..], 9)); // highest priority first
/// # Ok::<(), ipc_mq::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct QueueOptions {
    capacity: Option<usize>,
    max_message: Option<usize>,
    mode: CreationMode,
    permissions: Permissions,
    nonblocking: bool,
    accept_other_owner: bool,
    timeout: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            capacity: None,
            max_message: None,
            mode: CreationMode::default(),
            permissions: Permissions::default(),
            nonblocking: false,
            accept_other_owner: false,
            timeout: ipc_core::internal::OPEN_TIMEOUT,
        }
    }
}

impl QueueOptions {
    ipc_core::named_object_setters!("queue");

    /// The system's default capacity and message size, exclusive creation, owner-only
    /// permissions, blocking; opening waits up to 5 s for the queue to appear.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages a created queue holds (`mq_maxmsg`; at most `msg_max`). Opening
    /// an existing queue with it set checks that the queue holds that many.
    #[must_use]
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = Some(messages);
        self
    }

    /// The largest message of a created queue in bytes (`mq_msgsize`; at most
    /// `msgsize_max`). Opening an existing queue with it set checks that size.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// Opens the queue non-blocking: every operation that would wait fails with
    /// `WouldBlock` instead (see [`MessageQueue::set_nonblocking`]).
    #[must_use]
    pub fn nonblocking(mut self, nonblocking: bool) -> Self {
        self.nonblocking = nonblocking;
        self
    }

    fn flags(&self, direction: Direction) -> libc::c_int {
        direction.flags()
            | if self.nonblocking {
                libc::O_NONBLOCK
            } else {
                0
            }
    }

    /// Creates the queue `name` for sending and receiving (or opens it, as the creation
    /// mode allows). The process that created it removes the name on drop, unless
    /// [`persist`](MessageQueue::persist)ed.
    ///
    /// # Errors
    ///
    /// A limit error naming the knob (`msg_max`, `msgsize_max`, `RLIMIT_MSGQUEUE`,
    /// `queues_max`) when the queue would exceed it; `AlreadyExists` for an exclusive
    /// creation of a taken name; `InvalidInput` if an existing queue it opens has another
    /// capacity or message size than these options set; `PermissionDenied`; the errors of
    /// `mq_open`.
    pub fn create(&self, name: &IpcName) -> Result<MessageQueue> {
        let limits = SystemLimits::read()?;
        let capacity = self.capacity.unwrap_or(limits.msg_default);
        let max_message = self.max_message.unwrap_or(limits.msgsize_default);
        limits
            .check(capacity, max_message)
            .map_err(|e| e.with_subject(name.as_str()))?;
        let to_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let opened = self.mode.open_with(
            |intent| {
                let create = match intent {
                    OpenIntent::Create => libc::O_CREAT | libc::O_EXCL,
                    OpenIntent::OpenExisting => 0,
                };
                sys::mq_open(
                    name.as_cstr(),
                    self.flags(Direction::Both) | create,
                    0o600,
                    to_i64(capacity),
                    to_i64(max_message),
                )
                .map_err(|e| open_error(e, name, &limits))
            },
            || sys::mq_unlink(name.as_cstr()).map_err(|e| e.with_subject(name.as_str())),
        )?;
        let fd = opened.object;
        if opened.created {
            self.permissions
                .apply(fd.as_fd())
                .map_err(|e| e.with_subject(name.as_str()))?;
        } else {
            check_owner(&fd, name, self.accept_other_owner)?;
        }
        let queue = MessageQueue::new(fd, name, opened.created)?;
        if !opened.created {
            self.check_existing(&queue)?;
        }
        Ok(queue)
    }

    /// Refuses an existing queue whose shape differs from what these options set.
    fn check_existing(&self, queue: &MessageQueue) -> Result<()> {
        let attributes = queue.attributes()?;
        for (option, requested, actual) in [
            ("QueueOptions::capacity", self.capacity, attributes.capacity),
            (
                "QueueOptions::max_message_size",
                self.max_message,
                attributes.max_message_size,
            ),
        ] {
            check_creation_option("mq_open", queue.subject(), option, requested, actual)?;
        }
        Ok(())
    }

    /// Opens the existing queue `name` to use as `direction` says, waiting up to the
    /// [`timeout`](QueueOptions::timeout) for a creator that has not made it yet.
    ///
    /// # Errors
    ///
    /// `NotFound` if none appeared in time; `PermissionDenied` if this user may not use it
    /// that way, or it belongs to another user (unless accepted); `InvalidInput` if its
    /// capacity or message size differs from one these options set; the errors of
    /// `mq_open`.
    pub fn open(&self, name: &IpcName, direction: Direction) -> Result<MessageQueue> {
        let limits = SystemLimits::read()?;
        let fd = await_name(
            "queue of this name",
            "QueueOptions::timeout",
            self.timeout,
            Deadline::after(self.timeout),
            || {
                sys::mq_open(name.as_cstr(), self.flags(direction), 0, 0, 0)
                    .map_err(|e| open_error(e, name, &limits))
            },
        )?;
        check_owner(&fd, name, self.accept_other_owner)?;
        let queue = MessageQueue::new(fd, name, false)?;
        self.check_existing(&queue)?;
        Ok(queue)
    }
}

/// `mq_open`'s error, with the limit behind `EMFILE`, `ENOSPC` and `EINVAL` named.
fn open_error(e: Error, name: &IpcName, limits: &SystemLimits) -> Error {
    let explained = match e.raw_os_error() {
        Some(libc::ENOSPC) => Some(format!(
            "the system's queues are all in use: raise /proc/sys/fs/mqueue/queues_max (now {})",
            limits.queues_max
        )),
        Some(libc::EMFILE) => Some(format!(
            "this user's queues would exceed RLIMIT_MSGQUEUE ({} bytes; raise it with ulimit -q), \
             or this process has too many descriptors open",
            limits.rlimit_bytes
        )),
        _ => None,
    };
    match explained {
        Some(message) => Error::new("mq_open", e.kind(), message).with_subject(name.as_str()),
        None => e.with_subject(name.as_str()),
    }
}

fn check_owner(fd: &OwnedFd, name: &IpcName, accept_other_owner: bool) -> Result<()> {
    let owner = nix::sys::stat::fstat(fd.as_fd())
        .map_err(|e| Error::from_errno("fstat", e).with_subject(name.as_str()))?
        .st_uid;
    ipc_core::internal::check_owner(
        "mq_open",
        name.as_str(),
        owner,
        accept_other_owner,
        "QueueOptions",
    )
}
