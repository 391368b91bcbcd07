//! POSIX message queues.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ipc_core::internal::{ObjectId, Wait, poll_fd, retry_eintr, unlink_if_ours};
use ipc_core::{
    Clock, Deadline, Error, IpcName, Limit, MessageReceiver, MessageSender, Result, ShmSafe,
    Unlink, UnlinkOnDrop,
};
use nix::poll::PollFlags;

use crate::sys;

/// The highest priority a message may have (`MQ_PRIO_MAX - 1` on Linux).
pub const MAX_PRIORITY: u32 = 32767;

/// A queue's name and the queue it led to when this process created it (mqueue inode).
#[derive(Debug)]
struct QueueName {
    name: IpcName,
    id: ObjectId,
}

impl Unlink for QueueName {
    /// Removes the name, unless it now leads to another queue (one created after a purge).
    fn unlink(&self) -> Result<()> {
        let current = sys::mq_open(self.name.as_cstr(), libc::O_RDONLY, 0, None)
            .ok()
            .and_then(|fd| ObjectId::of_fd(fd.as_fd()).ok());
        unlink_if_ours(
            "mq_unlink",
            self.name.as_str(),
            "queue",
            self.id,
            current,
            || sys::mq_unlink(self.name.as_cstr()).map_err(|e| e.with_subject(self.name.as_str())),
        )
    }
}

/// A queue's attributes, as [`MessageQueue::attributes`] reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAttributes {
    /// How many messages it holds at most.
    pub capacity: usize,
    /// The largest message in bytes.
    pub max_message_size: usize,
    /// How many messages it holds now.
    pub queued: usize,
    /// Whether this descriptor is non-blocking.
    pub nonblocking: bool,
}

/// A message received whole, with its priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The bytes.
    pub data: Vec<u8>,
    /// Its priority (higher first).
    pub priority: u32,
}

/// A POSIX message queue: whole messages with priorities between processes, kept by the
/// kernel, highest priority first and in order within a priority.
///
/// Its descriptor is close-on-exec and can be polled ([`AsFd`]). Its creator removes the
/// name on drop (processes that have it open keep using it). The handle may be shared
/// between threads.
///
/// **Delivery is at most once**: a message is gone from the queue once a receiver has it,
/// so a receiver that dies before handling it loses it.
#[derive(Debug)]
pub struct MessageQueue {
    fd: OwnedFd,
    max_message: usize,
    name: UnlinkOnDrop<QueueName>,
}

impl MessageQueue {
    /// The queue open at `fd`, the object `id` behind `name`, of messages of up to
    /// `max_message` bytes; removed on drop if this process `created` it.
    pub(crate) fn new(
        fd: OwnedFd,
        name: &IpcName,
        id: ObjectId,
        created: bool,
        max_message: usize,
    ) -> MessageQueue {
        let target = QueueName {
            name: name.clone(),
            id,
        };
        MessageQueue {
            fd,
            max_message,
            name: if created {
                UnlinkOnDrop::owned(target)
            } else {
                UnlinkOnDrop::not_owned(target)
            },
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &IpcName {
        &self.name.get().name
    }

    /// The largest message the queue takes, and the smallest buffer a receive accepts.
    pub fn max_message_size(&self) -> usize {
        self.max_message
    }

    /// Keeps the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.name.persist();
    }

    /// Removes the name now; processes that have the queue open keep using it.
    ///
    /// # Errors
    ///
    /// The error of `mq_unlink`.
    pub fn unlink(&mut self) -> Result<()> {
        self.name.unlink()
    }

    /// The queue's name, for an error's subject: shared, not copied (an empty `try_recv`
    /// makes an error each time).
    pub(crate) fn subject(&self) -> &IpcName {
        self.name()
    }

    /// The queue's attributes now.
    ///
    /// # Errors
    ///
    /// The error of `mq_getattr` (none for an open queue).
    pub fn attributes(&self) -> Result<QueueAttributes> {
        let (capacity, msgsize, queued, flags) =
            sys::mq_getattr(self.fd.as_fd()).map_err(|e| e.with_subject(self.subject()))?;
        let count = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(QueueAttributes {
            capacity: count(capacity),
            max_message_size: count(msgsize),
            queued: count(queued),
            nonblocking: flags & i64::from(libc::O_NONBLOCK) != 0,
        })
    }

    /// Makes this descriptor non-blocking (every operation that would wait fails with
    /// `WouldBlock`) or blocking again. Other descriptors of the queue are not affected.
    ///
    /// # Errors
    ///
    /// The error of `mq_setattr` (none for an open queue).
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        sys::mq_set_nonblocking(self.fd.as_fd(), nonblocking)
            .map_err(|e| e.with_subject(self.subject()))
    }

    /// Checks a message's size and priority before sending.
    fn check_send(&self, len: usize, priority: u32, op: &'static str) -> Result<()> {
        if len > self.max_message {
            let limit = Limit::new("the queue's mq_msgsize", self.max_message as u64);
            return Err(Error::limit_exceeded(op, "message size", len as u64, limit)
                .with_subject(self.subject()));
        }
        if priority > MAX_PRIORITY {
            let limit = Limit::new("MQ_PRIO_MAX - 1", u64::from(MAX_PRIORITY));
            return Err(
                Error::limit_exceeded(op, "priority", u64::from(priority), limit)
                    .with_subject(self.subject()),
            );
        }
        Ok(())
    }

    fn send_with(&self, msg: &[u8], priority: u32, wait: Wait, op: &'static str) -> Result<()> {
        self.check_send(msg.len(), priority, op)?;
        self.run(PollFlags::POLLOUT, wait, op, |at| {
            sys::mq_send(self.fd.as_fd(), msg, priority, at)
        })
    }

    /// Sends `msg` at priority 0, waiting for room as long as it takes; the same call as
    /// [`MessageSender::send`], so importing the trait changes nothing.
    /// [`send_priority`](MessageQueue::send_priority) chooses the priority.
    ///
    /// # Errors
    ///
    /// A limit error for a message above the queue's size (nothing is sent); `WouldBlock`
    /// on a non-blocking queue that is full; `PermissionDenied` on a queue opened for
    /// receiving only (`EBADF`).
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_priority(msg, 0)
    }

    /// Sends `msg` at priority 0 if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the queue is full; otherwise as [`send`](MessageQueue::send).
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        self.try_send_priority(msg, 0)
    }

    /// Sends `msg` at priority 0, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// `TimedOut` if the queue stayed full; otherwise as [`send`](MessageQueue::send).
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_priority_timeout(msg, 0, timeout)
    }

    /// Sends `msg` with `priority` (0 to [`MAX_PRIORITY`], higher first), waiting for room
    /// as long as it takes. Signals interrupt nothing.
    ///
    /// # Errors
    ///
    /// A limit error for a priority above [`MAX_PRIORITY`]; otherwise as
    /// [`send`](MessageQueue::send).
    #[doc(alias = "mq_send")]
    pub fn send_priority(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_with(msg, priority, Wait::Block, "mq_send")
    }

    /// Sends `msg` with `priority` if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the queue is full; otherwise as
    /// [`send_priority`](MessageQueue::send_priority).
    pub fn try_send_priority(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_with(msg, priority, Wait::Try, "mq_send")
    }

    /// Sends `msg` with `priority`, waiting at most `timeout` for room (measured against
    /// the wall clock, as `mq_timedsend` does).
    ///
    /// # Errors
    ///
    /// `TimedOut` if the queue stayed full; otherwise as
    /// [`send_priority`](MessageQueue::send_priority).
    #[doc(alias = "mq_timedsend")]
    pub fn send_priority_timeout(
        &self,
        msg: &[u8],
        priority: u32,
        timeout: Duration,
    ) -> Result<()> {
        self.send_with(
            msg,
            priority,
            Wait::Until(Deadline::after(timeout)),
            "mq_timedsend",
        )
    }

    fn recv_with(&self, buf: &mut [u8], wait: Wait, op: &'static str) -> Result<(usize, u32)> {
        if buf.len() < self.max_message {
            // The kernel refuses any buffer smaller than the queue's message size, whatever
            // the length of the message waiting, so that length cannot be named; the
            // message stays queued.
            let message = format!(
                "a receive needs a buffer of at least the queue's message size limit, {} \
                 bytes, whatever the length of the waiting message; this buffer has {} bytes \
                 (use recv_message, or a buffer of max_message_size())",
                self.max_message,
                buf.len()
            );
            return Err(Error::buffer_below_minimum(op, self.max_message, message)
                .with_subject(self.subject()));
        }
        self.run(PollFlags::POLLIN, wait, op, |at| {
            sys::mq_receive(self.fd.as_fd(), buf, at)
        })
    }

    /// Receives the highest-priority message into `buf`, waiting as long as it takes, and
    /// returns its length; the same call as [`MessageReceiver::recv`].
    /// [`recv_priority`](MessageQueue::recv_priority) also returns the priority.
    ///
    /// # Errors
    ///
    /// Buffer-too-small if `buf` is smaller than [`max_message_size`](MessageQueue::max_message_size)
    /// (nothing is received); `WouldBlock` on a non-blocking queue that is empty;
    /// `PermissionDenied` on a queue opened for sending only.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_priority(buf).map(|(len, _)| len)
    }

    /// Receives a message if one is there now, and returns its length.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the queue is empty; otherwise as [`recv`](MessageQueue::recv).
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.try_recv_priority(buf).map(|(len, _)| len)
    }

    /// Receives a message, waiting at most `timeout`, and returns its length.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came; otherwise as [`recv`](MessageQueue::recv).
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_priority_timeout(buf, timeout).map(|(len, _)| len)
    }

    /// Receives the highest-priority message into `buf`, waiting as long as it takes, and
    /// returns its length and priority.
    ///
    /// # Errors
    ///
    /// As [`recv`](MessageQueue::recv).
    #[doc(alias = "mq_receive")]
    pub fn recv_priority(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_with(buf, Wait::Block, "mq_receive")
    }

    /// Receives a message if one is there now: its length and priority.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the queue is empty; otherwise as [`recv`](MessageQueue::recv).
    pub fn try_recv_priority(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_with(buf, Wait::Try, "mq_receive")
    }

    /// Receives a message, waiting at most `timeout`: its length and priority.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came; otherwise as [`recv`](MessageQueue::recv).
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_priority_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.recv_with(
            buf,
            Wait::Until(Deadline::after(timeout)),
            "mq_timedreceive",
        )
    }

    /// Receives a message into a buffer sized from the queue's attributes.
    ///
    /// # Errors
    ///
    /// As [`recv`](MessageQueue::recv).
    pub fn recv_message(&self) -> Result<Message> {
        self.recv_owned(Wait::Block, "mq_receive")
    }

    /// [`recv_message`](MessageQueue::recv_message) if a message is there now.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](MessageQueue::try_recv).
    pub fn try_recv_message(&self) -> Result<Message> {
        self.recv_owned(Wait::Try, "mq_receive")
    }

    /// [`recv_message`](MessageQueue::recv_message), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](MessageQueue::recv_timeout).
    pub fn recv_message_timeout(&self, timeout: Duration) -> Result<Message> {
        self.recv_owned(Wait::Until(Deadline::after(timeout)), "mq_timedreceive")
    }

    fn recv_owned(&self, wait: Wait, op: &'static str) -> Result<Message> {
        let mut data = vec![0; self.max_message];
        let (len, priority) = self.recv_with(&mut data, wait, op)?;
        data.truncate(len);
        Ok(Message { data, priority })
    }

    fn send_value_with<T: ShmSafe>(
        &self,
        value: &T,
        priority: u32,
        wait: Wait,
        op: &'static str,
    ) -> Result<()> {
        self.check_send(std::mem::size_of::<T>(), priority, op)?;
        self.run(PollFlags::POLLOUT, wait, op, |at| {
            sys::mq_send_value(self.fd.as_fd(), value, priority, at)
        })
    }

    /// Sends a value of a plain-old-data type (a [`ShmSafe`] type: `#[repr(C)]`, every bit
    /// pattern valid) as one message of its size, waiting for room as long as it takes.
    ///
    /// ```
    /// use ipc_mq::{IpcName, ShmSafe};
    /// use ipc_mq::QueueOptions;
    ///
    /// #[derive(Clone, Copy, Debug, PartialEq)]
    /// #[repr(C)]
    /// struct Order {
    ///     id: u64,
    ///     quantity: u32,
    ///     side: u32,
    /// }
    /// // SAFETY: repr(C), integers only, no padding (8 + 4 + 4 bytes).
    /// unsafe impl ShmSafe for Order {}
    ///
    /// let queue = QueueOptions::new().max_message_size(64).create(&IpcName::unique("doc-orders")?)?;
    /// queue.send_value(&Order { id: 7, quantity: 100, side: 1 }, 0)?;
    /// let (order, _priority): (Order, u32) = queue.recv_value()?;
    /// assert_eq!(order.quantity, 100);
    /// # Ok::<(), ipc_mq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](MessageQueue::send) (a type larger than the queue's messages is a limit
    /// error).
    pub fn send_value<T: ShmSafe>(&self, value: &T, priority: u32) -> Result<()> {
        self.send_value_with(value, priority, Wait::Block, "mq_send")
    }

    /// [`send_value`](MessageQueue::send_value) if there is room now.
    ///
    /// # Errors
    ///
    /// As [`try_send`](MessageQueue::try_send).
    pub fn try_send_value<T: ShmSafe>(&self, value: &T, priority: u32) -> Result<()> {
        self.send_value_with(value, priority, Wait::Try, "mq_send")
    }

    /// [`send_value`](MessageQueue::send_value), waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](MessageQueue::send_timeout).
    pub fn send_value_timeout<T: ShmSafe>(
        &self,
        value: &T,
        priority: u32,
        timeout: Duration,
    ) -> Result<()> {
        let wait = Wait::Until(Deadline::after(timeout));
        self.send_value_with(value, priority, wait, "mq_timedsend")
    }

    fn recv_value_with<T: ShmSafe>(&self, wait: Wait, op: &'static str) -> Result<(T, u32)> {
        let message = self.recv_owned(wait, op)?;
        let value = sys::value_from_bytes(&message.data).ok_or_else(|| {
            Error::new(
                op,
                io::ErrorKind::InvalidData,
                format!(
                    "a message of {} bytes is not a {} of {}",
                    message.data.len(),
                    std::any::type_name::<T>(),
                    std::mem::size_of::<T>()
                ),
            )
            .with_subject(self.subject())
        })?;
        Ok((value, message.priority))
    }

    /// Receives a value sent with [`send_value`](MessageQueue::send_value), waiting as long
    /// as it takes, with its priority.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a message that is not exactly the size of a `T` (it is consumed);
    /// otherwise as [`recv`](MessageQueue::recv).
    pub fn recv_value<T: ShmSafe>(&self) -> Result<(T, u32)> {
        self.recv_value_with(Wait::Block, "mq_receive")
    }

    /// [`recv_value`](MessageQueue::recv_value) if a message is there now.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](MessageQueue::try_recv), and `InvalidData` as above.
    pub fn try_recv_value<T: ShmSafe>(&self) -> Result<(T, u32)> {
        self.recv_value_with(Wait::Try, "mq_receive")
    }

    /// [`recv_value`](MessageQueue::recv_value), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](MessageQueue::recv_timeout), and `InvalidData` as above.
    pub fn recv_value_timeout<T: ShmSafe>(&self, timeout: Duration) -> Result<(T, u32)> {
        self.recv_value_with(Wait::Until(Deadline::after(timeout)), "mq_timedreceive")
    }

    /// Waits until a message can be received: the descriptor polled for `POLLIN`, for
    /// callers that wait before choosing what to do. [`try_recv`](MessageQueue::try_recv)
    /// is the form that never waits.
    ///
    /// # Errors
    ///
    /// The `poll` error, naming the queue.
    pub fn wait_readable(&self) -> Result<()> {
        self.wait_for(PollFlags::POLLIN, Deadline::NEVER)
    }

    /// [`wait_readable`](MessageQueue::wait_readable), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no message arrived in time.
    pub fn wait_readable_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_for(PollFlags::POLLIN, Deadline::after(timeout))
    }

    /// [`wait_readable`](MessageQueue::wait_readable), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no message arrived in time.
    pub fn wait_readable_deadline(&self, deadline: Deadline) -> Result<()> {
        self.wait_for(PollFlags::POLLIN, deadline)
    }

    /// Waits until a message can be sent (the queue has room): the descriptor polled for
    /// `POLLOUT`. [`try_send`](MessageQueue::try_send) is the form that never waits.
    ///
    /// # Errors
    ///
    /// The `poll` error, naming the queue.
    pub fn wait_writable(&self) -> Result<()> {
        self.wait_for(PollFlags::POLLOUT, Deadline::NEVER)
    }

    /// [`wait_writable`](MessageQueue::wait_writable), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no room appeared in time.
    pub fn wait_writable_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_for(PollFlags::POLLOUT, Deadline::after(timeout))
    }

    /// [`wait_writable`](MessageQueue::wait_writable), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no room appeared in time.
    pub fn wait_writable_deadline(&self, deadline: Deadline) -> Result<()> {
        self.wait_for(PollFlags::POLLOUT, deadline)
    }

    /// Runs a queue call (which takes an absolute `CLOCK_REALTIME` time) that may wait as `wait`
    /// says for the queue's descriptor to be `ready`, naming the outcome.
    fn run<T>(
        &self,
        ready: PollFlags,
        wait: Wait,
        op: &'static str,
        mut call: impl FnMut(Option<&libc::timespec>) -> Result<T>,
    ) -> Result<T> {
        let (fd, subject) = (self.fd.as_fd(), self.subject());
        let name = |e: Error| match e.raw_os_error() {
            // A non-blocking descriptor: the caller asked not to wait.
            Some(libc::EAGAIN) => Error::would_block(op).with_subject(subject),
            Some(libc::ETIMEDOUT) if wait == Wait::Try => {
                Error::would_block(op).with_subject(subject)
            }
            Some(libc::ETIMEDOUT) => Error::timed_out(op).with_subject(subject),
            Some(libc::EBADF) => Error::new(
                op,
                io::ErrorKind::PermissionDenied,
                "the queue was not opened for this direction",
            )
            .with_subject(subject),
            _ => e.with_op(op).with_subject(subject),
        };
        let Some(deadline) = wait.deadline() else {
            // A time already past: the call succeeds if it can at once, and times out
            // otherwise (also on a blocking descriptor).
            return retry_eintr(|| call(Some(&LONG_AGO)).map_err(name));
        };
        if !ipc_core::internal::cancellation_watched() {
            // One blocking call, resumed after `EINTR` for the time left.
            return deadline.retry(|deadline| {
                let at = deadline.absolute_timespec(Clock::Realtime)?;
                call(at.as_ref()).map_err(name)
            });
        }
        // With a cancellation token watched, a wait is an attempt that cannot wait, a `poll`
        // for `ready` (which watches the tokens' descriptors too) and another attempt: a
        // shutdown then ends it, where a blocking `mq_receive` would be restarted. It costs
        // a system call or two more per wait (about 1 µs here), so only then.
        retry_eintr(|| {
            loop {
                match call(Some(&LONG_AGO)) {
                    Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT) => {
                        poll_fd(fd, ready, deadline, op).map_err(|e| e.with_subject(subject))?;
                    }
                    other => return other.map_err(name),
                }
            }
        })
    }

    fn wait_for(&self, events: PollFlags, deadline: Deadline) -> Result<()> {
        ipc_core::internal::poll_fd(&self.fd, events, deadline, "poll")
            .map(drop)
            .map_err(|e| e.with_subject(self.subject()))
    }
}

/// A time long past, for an attempt that must not wait.
const LONG_AGO: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

impl MessageQueue {
    /// A second handle to the same queue (its descriptor duplicated, close-on-exec), for
    /// another thread. It does not own the name: only the creator's handle removes it.
    ///
    /// # Errors
    ///
    /// The `fcntl(F_DUPFD_CLOEXEC)` error.
    pub fn try_clone(&self) -> Result<MessageQueue> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::from(e).with_op("fcntl(F_DUPFD_CLOEXEC)"))?;
        Ok(MessageQueue {
            fd,
            max_message: self.max_message,
            name: UnlinkOnDrop::not_owned(QueueName {
                name: self.name.get().name.clone(),
                id: self.name.get().id,
            }),
        })
    }
}

impl AsFd for MessageQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for MessageQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl MessageSender for MessageQueue {
    /// Sends at priority 0.
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        MessageQueue::send(self, msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        MessageQueue::try_send(self, msg)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        MessageQueue::send_timeout(self, msg, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.max_message
    }
}

impl MessageReceiver for MessageQueue {
    /// Receives the highest-priority message (its priority is dropped).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        MessageQueue::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        MessageQueue::try_recv(self, buf)
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        MessageQueue::recv_timeout(self, buf, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.max_message
    }
}

impl ipc_core::Source for MessageQueue {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::Readiness::of_fd(std::os::fd::AsFd::as_fd(self), interest)
    }
}
