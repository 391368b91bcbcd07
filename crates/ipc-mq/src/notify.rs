//! Notification of a message arriving on an empty queue (`mq_notify`), without signals or
//! threads: the kernel writes to a netlink socket that the caller can poll.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use ipc_core::internal::Wait;
use ipc_core::{Deadline, Error, Result};
use nix::poll::PollFlags;

use crate::MessageQueue;
use crate::sys::{self, COOKIE_LEN};

/// The last byte of the cookie: the notification fired, or the registration was removed.
const WOKEN_UP: u8 = 1;
const REMOVED: u8 = 2;

/// This process's registration for a queue's notification: the kernel signals it (once)
/// when a message arrives on the queue while it is empty and no receiver is waiting.
///
/// Made by [`MessageQueue::notify`]. It is a descriptor to poll ([`AsFd`]) or to
/// [`wait`](Notification::wait) on, fed by the kernel through a netlink socket (the
/// mechanism glibc builds its notification threads on): no signal handler, no thread. The
/// registration is one-shot, as `mq_notify` is: [`rearm`](Notification::rearm) it after
/// each notification, then drain the queue (a message that arrived in between would not
/// notify again). Dropping it unregisters.
///
/// Only one process may be registered for a queue at a time.
#[derive(Debug)]
pub struct Notification<'a> {
    queue: &'a MessageQueue,
    socket: OwnedFd,
    cookie: [u8; COOKIE_LEN],
}

impl MessageQueue {
    /// Registers this process for the queue's notification.
    ///
    /// ```
    /// use ipc_mq::IpcName;
    /// use ipc_mq::QueueOptions;
    /// use std::time::Duration;
    ///
    /// let queue = QueueOptions::new().create(&IpcName::unique("doc-notify")?)?;
    /// let notification = queue.notify()?;
    /// queue.send(b"ping")?;
    /// notification.wait_timeout(Duration::from_secs(5))?;
    /// assert_eq!(queue.recv_message()?.data, b"ping");
    /// # Ok::<(), ipc_mq::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another process (or another registration of this one) is registered;
    /// the errors of creating the netlink socket.
    pub fn notify(&self) -> Result<Notification<'_>> {
        let socket = sys::notification_socket()?;
        let cookie = [0; COOKIE_LEN];
        // Registered before the value exists: a failed registration must not run the
        // drop, which would remove the registration that is in the way.
        register(self, &socket, &cookie)?;
        Ok(Notification {
            queue: self,
            socket,
            cookie,
        })
    }
}

fn register(queue: &MessageQueue, socket: &OwnedFd, cookie: &[u8; COOKIE_LEN]) -> Result<()> {
    sys::mq_notify(queue.as_fd(), Some((socket.as_fd(), cookie))).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::EBUSY) => Error::new(
                "mq_notify",
                io::ErrorKind::AddrInUse,
                "another registration for this queue's notification exists (one per queue)",
            )
            .with_subject(queue.name().as_str()),
            _ => e.with_subject(queue.name().as_str()),
        }
    })
}

impl Notification<'_> {
    /// Registers again after a notification (registrations are one-shot).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another process registered meanwhile.
    pub fn rearm(&mut self) -> Result<()> {
        register(self.queue, &self.socket, &self.cookie)
    }

    /// Waits until the notification fires, as long as it takes, and consumes it.
    ///
    /// # Errors
    ///
    /// Peer-gone if the registration was removed (the queue was closed by this process, or
    /// another unregistered it).
    pub fn wait(&self) -> Result<()> {
        self.wait_with(Wait::Block)
    }

    /// Consumes the notification if it has fired.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if it has not; otherwise as [`wait`](Notification::wait).
    pub fn try_wait(&self) -> Result<()> {
        self.wait_with(Wait::Try)
    }

    /// Waits at most `timeout` for the notification, and consumes it.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it did not fire in time; otherwise as [`wait`](Notification::wait).
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Result<()> {
        self.wait_with(Wait::after(timeout))
    }

    /// Waits until the notification fires, at most until `deadline`, and consumes it.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it did not fire in time; otherwise as [`wait`](Notification::wait).
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<()> {
        self.wait_with(Wait::Until(deadline))
    }

    fn wait_with(&self, wait: Wait) -> Result<()> {
        let deadline = wait
            .deadline()
            .unwrap_or_else(|| Deadline::after(std::time::Duration::ZERO));
        match ipc_core::internal::poll_fd(&self.socket, PollFlags::POLLIN, deadline, "poll") {
            Err(e) if e.is_timeout() && wait == Wait::Try => {
                return Err(Error::would_block("poll").with_subject(self.queue.name().as_str()));
            }
            other => other.map_err(|e| e.with_subject(self.queue.name().as_str()))?,
        };
        let mut cookie = [0u8; COOKIE_LEN];
        let n = ipc_core::internal::retry_eintr(|| {
            nix::unistd::read(&self.socket, &mut cookie).map_err(|e| Error::from_errno("read", e))
        })?;
        match (n, cookie[COOKIE_LEN - 1]) {
            (COOKIE_LEN, WOKEN_UP) => Ok(()),
            (COOKIE_LEN, REMOVED) => Err(Error::peer_gone(
                "mq_notify",
                "the notification was unregistered",
            )
            .with_subject(self.queue.name().as_str())),
            _ => Err(Error::corrupted(
                "mq_notify",
                format!("an unexpected notification of {n} bytes"),
            )),
        }
    }
}

impl AsFd for Notification<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Notification<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for Notification<'_> {
    fn drop(&mut self) {
        // Unregisters if this process is still registered (a fired registration is gone
        // already, and unregistering then is a no-op).
        let _ = sys::mq_notify(self.queue.as_fd(), None);
    }
}

impl ipc_core::Source for Notification<'_> {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(
            std::os::fd::AsFd::as_fd(self),
            interest,
            "a queue notification",
        )
    }
}

/// `Async<Notification>` is a `Stream` of the queue's notifications: each item is one that
/// fired, with the registration made again, so drain the queue after it.
#[cfg(feature = "tokio")]
impl ipc_core::TryNext for Notification<'_> {
    type Item = ();

    fn try_next(&mut self) -> Result<()> {
        self.try_wait()?;
        self.rearm()
    }
}
