//! The system's message-queue limits, and checks that name the limit a request exceeds.

use std::sync::atomic::{AtomicUsize, Ordering};

use ipc_core::{Error, Limit, Result};

use crate::sys;

const MQUEUE: &str = "/proc/sys/fs/mqueue";

/// `msg_max` and `msgsize_max` as this process last read them (0 before the first read):
/// a creation within them reads nothing, one beyond them reads the knobs again before it
/// is refused.
static MSG_MAX: AtomicUsize = AtomicUsize::new(0);
static MSGSIZE_MAX: AtomicUsize = AtomicUsize::new(0);

/// The system's limits on POSIX message queues, read from `/proc/sys/fs/mqueue/*` and
/// `RLIMIT_MSGQUEUE`.
///
/// ```
/// let limits = ipc_mq::SystemLimits::read()?;
/// assert!(limits.msg_max >= 1 && limits.msgsize_max >= 128);
/// # Ok::<(), ipc_mq::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemLimits {
    /// The largest capacity of a queue (`msg_max`).
    pub msg_max: usize,
    /// The largest message size of a queue (`msgsize_max`).
    pub msgsize_max: usize,
    /// The capacity of a queue created without one (`msg_default`).
    pub msg_default: usize,
    /// The message size of a queue created without one (`msgsize_default`).
    pub msgsize_default: usize,
    /// How many queues may exist on the system (`queues_max`).
    pub queues_max: usize,
    /// The bytes all of this user's queues may take (`RLIMIT_MSGQUEUE`, soft limit).
    pub rlimit_bytes: usize,
}

/// A size as the `u64` that limit errors carry.
fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn knob(name: &str) -> Result<usize> {
    let path = format!("{MQUEUE}/{name}");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::from(e).with_op("read").with_subject(path.clone()))?;
    text.trim().parse().map_err(|_| {
        Error::new(
            "read",
            std::io::ErrorKind::InvalidData,
            format!("not a number: {:?}", text.trim()),
        )
        .with_subject(path)
    })
}

impl SystemLimits {
    /// Reads the limits.
    ///
    /// # Errors
    ///
    /// If `/proc/sys/fs/mqueue` cannot be read (no `/proc`, or no message-queue support).
    pub fn read() -> Result<SystemLimits> {
        Ok(SystemLimits {
            msg_max: knob("msg_max")?,
            msgsize_max: knob("msgsize_max")?,
            msg_default: knob("msg_default")?,
            msgsize_default: knob("msgsize_default")?,
            queues_max: knob("queues_max")?,
            rlimit_bytes: usize::try_from(sys::rlimit_msgqueue()?).unwrap_or(usize::MAX),
        })
    }

    /// The bytes the kernel charges against `RLIMIT_MSGQUEUE` for a queue of `capacity`
    /// messages of `max_message` bytes: the messages, plus a message header (48 bytes) and
    /// a priority-tree node (48 bytes) for each slot, as `ipc/mqueue.c` counts them on
    /// 64-bit Linux.
    pub fn queue_bytes(capacity: usize, max_message: usize) -> usize {
        capacity
            .saturating_mul(48)
            .saturating_add(capacity.min(32_768).saturating_mul(48))
            .saturating_add(capacity.saturating_mul(max_message))
    }

    /// `capacity` and `max_message`, the unset one replaced by its `msg_default` or
    /// `msgsize_default` (only that knob is read).
    pub(crate) fn or_defaults(
        capacity: Option<usize>,
        max_message: Option<usize>,
    ) -> Result<(usize, usize)> {
        let capacity = match capacity {
            Some(capacity) => capacity,
            None => knob("msg_default")?,
        };
        let max_message = match max_message {
            Some(max_message) => max_message,
            None => knob("msgsize_default")?,
        };
        Ok((capacity, max_message))
    }

    /// Checks the shape of a queue about to be created against `msg_max` and
    /// `msgsize_max`, which the kernel does not enforce on a process with
    /// `CAP_SYS_RESOURCE`: behaviour does not depend on privileges. The knobs are read at
    /// the first creation and again before a refusal, not every time (`RLIMIT_MSGQUEUE`
    /// and `queues_max` the kernel enforces for everyone; their errors are named after
    /// the fact).
    pub(crate) fn check_shape(capacity: usize, max_message: usize) -> Result<()> {
        if capacity != 0
            && max_message != 0
            && capacity <= MSG_MAX.load(Ordering::Relaxed)
            && max_message <= MSGSIZE_MAX.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        let limits = SystemLimits::read()?;
        MSG_MAX.store(limits.msg_max, Ordering::Relaxed);
        MSGSIZE_MAX.store(limits.msgsize_max, Ordering::Relaxed);
        limits.check(capacity, max_message)
    }

    /// Checks a queue's capacity and message size against the limits, naming the limit
    /// and the knob to raise.
    pub(crate) fn check(&self, capacity: usize, max_message: usize) -> Result<()> {
        let op = "mq_open";
        if capacity == 0 || max_message == 0 {
            return Err(Error::new(
                op,
                std::io::ErrorKind::InvalidInput,
                "a queue needs a capacity and a message size of at least 1",
            ));
        }
        if capacity > self.msg_max {
            return Err(Error::limit_exceeded(
                op,
                "capacity",
                wide(capacity),
                Limit::new("/proc/sys/fs/mqueue/msg_max", wide(self.msg_max)),
            ));
        }
        if max_message > self.msgsize_max {
            return Err(Error::limit_exceeded(
                op,
                "message size",
                wide(max_message),
                Limit::new("/proc/sys/fs/mqueue/msgsize_max", wide(self.msgsize_max)),
            ));
        }
        let bytes = Self::queue_bytes(capacity, max_message);
        if bytes > self.rlimit_bytes {
            return Err(Error::limit_exceeded(
                op,
                "queue bytes",
                wide(bytes),
                Limit::new("RLIMIT_MSGQUEUE (ulimit -q)", wide(self.rlimit_bytes)),
            ));
        }
        Ok(())
    }
}
