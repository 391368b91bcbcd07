//! Creating and opening queues: the options, the direction of use, and the checks an
//! existing queue must pass.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use ipc_core::internal::{ObjectId, await_name, check_creation_option};
use ipc_core::{CreationMode, Deadline, Error, IpcName, Permissions, Result};

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
        let subject = |e: Error| e.with_subject(name.as_str());
        let shape = self.shape().map_err(subject)?;
        let opened = self.mode.open_with(
            |intent| {
                sys::mq_open(
                    name.as_cstr(),
                    self.flags(Direction::Both) | intent.flags(),
                    self.permissions.mode(),
                    shape,
                )
                .map_err(|e| open_error(e, name, shape))
            },
            || sys::mq_unlink(name.as_cstr()).map_err(subject),
        )?;
        let fd = opened.object;
        let stat = fstat(&fd, name)?;
        if opened.created {
            self.permissions
                .ensure(fd.as_fd(), stat.st_mode)
                .map_err(subject)?;
        } else {
            check_owner(stat.st_uid, name, self.accept_other_owner)?;
        }
        let id = ObjectId::new(stat.st_dev, stat.st_ino);
        let max_message = match shape {
            Some((_, max_message)) if opened.created => max_message,
            _ => self.check_existing(&fd, name)?,
        };
        Ok(MessageQueue::new(fd, name, id, opened.created, max_message))
    }

    /// The capacity and message size to create a queue with, checked against the limits;
    /// `None` when neither is set, for the kernel's defaults.
    fn shape(&self) -> Result<Option<(usize, usize)>> {
        if self.capacity.is_none() && self.max_message.is_none() {
            return Ok(None);
        }
        let (capacity, max_message) = SystemLimits::or_defaults(self.capacity, self.max_message)?;
        SystemLimits::check_shape(capacity, max_message)?;
        Ok(Some((capacity, max_message)))
    }

    /// Refuses an existing queue whose shape differs from what these options set; returns
    /// its largest message.
    fn check_existing(&self, fd: &OwnedFd, name: &IpcName) -> Result<usize> {
        let (capacity, max_message, _, _) =
            sys::mq_getattr(fd.as_fd()).map_err(|e| e.with_subject(name.as_str()))?;
        let count = |v: i64| usize::try_from(v).unwrap_or(0);
        for (option, requested, actual) in [
            ("QueueOptions::capacity", self.capacity, count(capacity)),
            (
                "QueueOptions::max_message_size",
                self.max_message,
                count(max_message),
            ),
        ] {
            check_creation_option("mq_open", name.as_str(), option, requested, actual)?;
        }
        Ok(count(max_message))
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
        let fd = await_name(
            "queue of this name",
            "QueueOptions::timeout",
            self.timeout,
            Deadline::after(self.timeout),
            || {
                sys::mq_open(name.as_cstr(), self.flags(direction), 0, None)
                    .map_err(|e| open_error(e, name, None))
            },
        )?;
        let stat = fstat(&fd, name)?;
        check_owner(stat.st_uid, name, self.accept_other_owner)?;
        let max_message = self.check_existing(&fd, name)?;
        let id = ObjectId::new(stat.st_dev, stat.st_ino);
        Ok(MessageQueue::new(fd, name, id, false, max_message))
    }
}

/// `mq_open`'s error, with the limit behind `EMFILE`, `ENOSPC` and `EINVAL` named: the
/// limits are read only now, so a creation that succeeds never reads them. `shape` is the
/// capacity and message size asked for, if any.
fn open_error(e: Error, name: &IpcName, shape: Option<(usize, usize)>) -> Error {
    let Some(errno @ (libc::ENOSPC | libc::EMFILE | libc::EINVAL)) = e.raw_os_error() else {
        return e.with_subject(name.as_str());
    };
    let Ok(limits) = SystemLimits::read() else {
        return e.with_subject(name.as_str());
    };
    if let Some((capacity, max_message)) = shape
        && let Err(exceeded) = limits.check(capacity, max_message)
    {
        return exceeded.with_subject(name.as_str());
    }
    let message = match errno {
        libc::ENOSPC => format!(
            "the system's queues are all in use: raise /proc/sys/fs/mqueue/queues_max (now {})",
            limits.queues_max
        ),
        libc::EMFILE => format!(
            "this user's queues would exceed RLIMIT_MSGQUEUE ({} bytes; raise it with ulimit -q), \
             or this process has too many descriptors open",
            limits.rlimit_bytes
        ),
        _ => return e.with_subject(name.as_str()),
    };
    Error::new("mq_open", e.kind(), message).with_subject(name.as_str())
}

/// The queue's `fstat`: its identity, owner and mode.
fn fstat(fd: &OwnedFd, name: &IpcName) -> Result<libc::stat> {
    nix::sys::stat::fstat(fd.as_fd())
        .map_err(|e| Error::from_errno("fstat", e).with_subject(name.as_str()))
}

fn check_owner(owner: libc::uid_t, name: &IpcName, accept_other_owner: bool) -> Result<()> {
    ipc_core::internal::check_owner(
        "mq_open",
        name.as_str(),
        owner,
        accept_other_owner,
        "QueueOptions",
    )
}
