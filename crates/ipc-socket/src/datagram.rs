//! Unix datagram sockets with message semantics, exact file permissions and credentials.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use ipc_core::{Deadline, Error, MessageReceiver, MessageSender, Result};
use nix::sys::socket::{MsgFlags, SockType, sockopt};

use crate::bind::{self, BoundPath, ListenerOptions};
use crate::ext::recv_with_fds;
use crate::message::{self, DEFAULT_MAX_MESSAGE_SIZE, Wait};
use crate::{PeerCredentials, UnixAddr, UnixSocketExt};

/// A Unix datagram socket (`SOCK_DGRAM`): messages arrive whole and in order from each
/// sender, and are never lost between processes on one machine (a sender waits when the
/// receiver's queue is full).
///
/// It wraps std's [`UnixDatagram`] ([`as_std`](Datagram::as_std)) and adds a bound path
/// with exact permissions that is removed on drop, try and timeout forms, size checks that
/// keep a message that does not fit, and the sender's credentials (`SCM_CREDENTIALS`).
///
/// Datagram sockets have no connection, so a receiver cannot learn that its senders are
/// gone: use deadlines, or seqpacket sockets when that matters.
///
/// ```
/// use ipc_socket::Datagram;
///
/// let (a, b) = Datagram::pair()?;
/// b.set_pass_credentials(true)?;
/// a.send(b"ping")?;
/// let mut buf = [0u8; 16];
/// let (n, sender) = b.recv_with_credentials(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// assert_eq!(sender.map(|c| c.pid), Some(std::process::id()));
/// # Ok::<(), ipc_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct Datagram {
    socket: UnixDatagram,
    bound: Option<BoundPath>,
    max: usize,
}

impl Datagram {
    fn new(socket: UnixDatagram, bound: Option<BoundPath>) -> Self {
        Datagram {
            socket,
            bound,
            max: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// Binds a datagram socket to `addr` with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind_stream`].
    pub fn bind(addr: &UnixAddr) -> Result<Datagram> {
        ListenerOptions::new().bind_datagram(addr)
    }

    /// An unbound socket, for sending with [`send_to`](Datagram::send_to) or after
    /// [`connect`](Datagram::connect).
    ///
    /// # Errors
    ///
    /// The `socket` error.
    pub fn unbound() -> Result<Datagram> {
        let socket = UnixDatagram::unbound().map_err(|e| Error::from(e).with_op("socket"))?;
        Ok(Datagram::new(socket, None))
    }

    /// A connected pair (`socketpair`), close-on-exec.
    ///
    /// # Errors
    ///
    /// The `socketpair` error.
    pub fn pair() -> Result<(Datagram, Datagram)> {
        let (a, b) = UnixDatagram::pair().map_err(|e| Error::from(e).with_op("socketpair"))?;
        Ok((Datagram::new(a, None), Datagram::new(b, None)))
    }

    /// Sends to `addr` by default and receives only from it.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` or `NotFound` if nothing is bound there.
    pub fn connect(&self, addr: &UnixAddr) -> Result<()> {
        let sockaddr = addr.to_sockaddr("connect")?;
        nix::sys::socket::connect(self.socket.as_raw_fd(), &sockaddr)
            .map_err(|e| Error::from_errno("connect", e).with_subject(addr.to_string()))
    }

    /// Sets the largest message sent or accepted.
    #[must_use]
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// The underlying std socket.
    pub fn as_std(&self) -> &UnixDatagram {
        &self.socket
    }

    /// Sends `msg` to the connected peer, waiting while its queue is full.
    ///
    /// # Errors
    ///
    /// A limit error above the maximum size; `ConnectionRefused` if the peer is gone.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        message::send(
            self.socket.as_fd(),
            msg,
            None,
            self.max,
            Wait::Block,
            "send",
        )
    }

    /// Sends `msg` to `addr`.
    ///
    /// # Errors
    ///
    /// As [`Datagram::send`]; `NotFound` if nothing is bound at `addr`.
    pub fn send_to(&self, msg: &[u8], addr: &UnixAddr) -> Result<()> {
        let sockaddr = addr.to_sockaddr("sendto")?;
        message::send(
            self.socket.as_fd(),
            msg,
            Some(&sockaddr),
            self.max,
            Wait::Block,
            "sendto",
        )
        .map_err(|e| e.with_subject(addr.to_string()))
    }

    /// Sends `msgs` in order to the connected peer, each as one message, in one system call
    /// (`sendmmsg`) when its queue has room for them all, waiting for room as needed;
    /// returns how many were sent: all, unless an error came after some were (the next
    /// send reports it).
    ///
    /// # Errors
    ///
    /// As [`Datagram::send`]; a message too large fails the call before anything is sent.
    pub fn send_batch(&self, msgs: &[&[u8]]) -> Result<usize> {
        let fd = self.socket.as_fd();
        message::send_batch(fd, msgs, self.max, Wait::Block, false, "sendmmsg")
    }

    /// Sends as many of `msgs`, in order, as the peer's queue has room for now, in one
    /// system call; returns how many (at least one).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if there is no room for the first; otherwise as
    /// [`Datagram::send_batch`].
    pub fn try_send_batch(&self, msgs: &[&[u8]]) -> Result<usize> {
        let fd = self.socket.as_fd();
        message::send_batch(fd, msgs, self.max, Wait::Try, false, "sendmmsg")
    }

    /// Sends `msgs` as [`Datagram::send_batch`] does, waiting at most `timeout` for room;
    /// returns how many were sent (fewer than all if the time ran out after some).
    ///
    /// # Errors
    ///
    /// `TimedOut` if none was sent; otherwise as [`Datagram::send_batch`].
    pub fn send_batch_timeout(&self, msgs: &[&[u8]], timeout: Duration) -> Result<usize> {
        let wait = Wait::Until(Deadline::after(timeout));
        message::send_batch(self.socket.as_fd(), msgs, self.max, wait, false, "sendmmsg")
    }

    /// Receives into `batch` the next message, waiting for one, and every further one
    /// queued by then, up to the batch's capacity, in one system call (`recvmmsg`);
    /// returns how many.
    ///
    /// # Errors
    ///
    /// As [`Datagram::recv`], for a batch's slot size; a message lost with others received
    /// is reported by the next call ([`RecvBatch`](crate::RecvBatch)).
    pub fn recv_batch(&self, batch: &mut crate::RecvBatch) -> Result<usize> {
        let fd = self.socket.as_fd();
        message::recv_batch(fd, batch, self.max, Wait::Block, false, "recvmmsg")
    }

    /// Receives into `batch` the messages queued now, up to its capacity; returns how many
    /// (at least one).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; otherwise as [`Datagram::recv_batch`].
    pub fn try_recv_batch(&self, batch: &mut crate::RecvBatch) -> Result<usize> {
        let fd = self.socket.as_fd();
        message::recv_batch(fd, batch, self.max, Wait::Try, false, "recvmmsg")
    }

    /// As [`Datagram::recv_batch`], waiting at most `timeout` for the first message.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`Datagram::recv_batch`].
    pub fn recv_batch_timeout(
        &self,
        batch: &mut crate::RecvBatch,
        timeout: Duration,
    ) -> Result<usize> {
        let wait = Wait::Until(Deadline::after(timeout));
        message::recv_batch(
            self.socket.as_fd(),
            batch,
            self.max,
            wait,
            false,
            "recvmmsg",
        )
    }

    /// Receives the next message, waiting for one.
    ///
    /// One system call takes the whole message, so threads sharing the socket never cut
    /// or steal each other's messages.
    ///
    /// # Errors
    ///
    /// Buffer too small, with the size the message needed (that message is gone: a buffer
    /// of [`max_message_size`](Datagram::max_message_size) bytes never loses one); corrupted
    /// if a sender exceeded the maximum (that message is dropped).
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        message::recv(
            self.socket.as_fd(),
            buf,
            self.max,
            Wait::Block,
            false,
            "recv",
        )
    }

    /// Receives the next message and the address it came from (`None` for an unbound
    /// sender), in one system call.
    ///
    /// # Errors
    ///
    /// As [`Datagram::recv`].
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, Option<UnixAddr>)> {
        self.recv_from_with(buf, MsgFlags::empty())
    }

    /// Receives the next message and its sender's address if one is there now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; otherwise as [`Datagram::recv`].
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, Option<UnixAddr>)> {
        self.recv_from_with(buf, MsgFlags::MSG_DONTWAIT)
    }

    fn recv_from_with(&self, buf: &mut [u8], flags: MsgFlags) -> Result<(usize, Option<UnixAddr>)> {
        const OP: &str = "recvfrom";
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let (n, from) = loop {
            match nix::sys::socket::recvmsg::<nix::sys::socket::UnixAddr>(
                self.socket.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_TRUNC | flags,
            ) {
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Err(Error::would_block(OP)),
                other => {
                    let msg = other.map_err(|e| Error::from_errno(OP, e))?;
                    break (msg.bytes, msg.address);
                }
            }
        };
        if n > buf.len() {
            return Err(message::cut(OP, n, buf.len(), self.max));
        }
        Ok((n, from.as_ref().and_then(UnixAddr::from_sockaddr)))
    }

    /// Asks the kernel to attach each sender's credentials to the messages it receives
    /// (`SO_PASSCRED`), read with [`recv_with_credentials`](Datagram::recv_with_credentials).
    ///
    /// # Errors
    ///
    /// The `setsockopt` error.
    #[doc(alias = "SO_PASSCRED")]
    pub fn set_pass_credentials(&self, on: bool) -> Result<()> {
        nix::sys::socket::setsockopt(&self.socket, sockopt::PassCred, &on)
            .map_err(|e| Error::from_errno("setsockopt(SO_PASSCRED)", e))
    }

    /// Receives the next message with the sender's pid, uid and gid (`SCM_CREDENTIALS`),
    /// which the kernel vouches for; `None` unless
    /// [`set_pass_credentials`](Datagram::set_pass_credentials) is on.
    ///
    /// # Errors
    ///
    /// A message longer than `buf` is an error saying the size it needed (that message is
    /// gone); a message carrying descriptors is refused (they are closed).
    #[doc(alias = "SCM_CREDENTIALS")]
    pub fn recv_with_credentials(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, Option<PeerCredentials>)> {
        self.recv_with_credentials_with(buf, MsgFlags::empty())
    }

    /// Receives the next message with its sender's credentials if one is there now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; otherwise as
    /// [`recv_with_credentials`](Datagram::recv_with_credentials).
    pub fn try_recv_with_credentials(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, Option<PeerCredentials>)> {
        self.recv_with_credentials_with(buf, MsgFlags::MSG_DONTWAIT)
    }

    fn recv_with_credentials_with(
        &self,
        buf: &mut [u8],
        flags: MsgFlags,
    ) -> Result<(usize, Option<PeerCredentials>)> {
        let received = recv_with_fds(self.socket.as_fd(), buf, 0, MsgFlags::MSG_TRUNC | flags)?;
        if received.truncated || received.len > buf.len() {
            return Err(Error::buffer_too_small("recvmsg", received.len, buf.len()));
        }
        Ok((received.len, received.credentials))
    }

    /// Keeps the socket file after the socket is dropped.
    pub fn persist(&mut self) {
        if let Some(bound) = &mut self.bound {
            bound.persist();
        }
    }
}

impl MessageSender for Datagram {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Datagram::send(self, msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        message::send(self.socket.as_fd(), msg, None, self.max, Wait::Try, "send")
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        message::send(
            self.socket.as_fd(),
            msg,
            None,
            self.max,
            Wait::Until(Deadline::after(timeout)),
            "send",
        )
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl MessageReceiver for Datagram {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Datagram::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        message::recv(self.socket.as_fd(), buf, self.max, Wait::Try, false, "recv")
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        message::recv(
            self.socket.as_fd(),
            buf,
            self.max,
            Wait::Until(Deadline::after(timeout)),
            false,
            "recv",
        )
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl UnixSocketExt for Datagram {}

impl AsFd for Datagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Datagram {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl From<UnixDatagram> for Datagram {
    /// Wraps a std socket, bound or not, connected or not.
    fn from(socket: UnixDatagram) -> Self {
        Datagram::new(socket, None)
    }
}

impl From<OwnedFd> for Datagram {
    /// Wraps a descriptor that must be a Unix datagram socket.
    fn from(fd: OwnedFd) -> Self {
        Datagram::new(UnixDatagram::from(fd), None)
    }
}

impl From<Datagram> for OwnedFd {
    fn from(socket: Datagram) -> Self {
        OwnedFd::from(socket.socket)
    }
}

impl ListenerOptions {
    /// Binds a datagram socket to `addr` (the backlog and allowed users do not apply).
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind_stream`].
    pub fn bind_datagram(&self, addr: &UnixAddr) -> Result<Datagram> {
        let (fd, bound) = bind::bind(SockType::Datagram, addr, self, false)?;
        Ok(Datagram::new(UnixDatagram::from(fd), bound))
    }
}

impl ipc_core::Source for Datagram {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::Readiness::of_fd(std::os::fd::AsFd::as_fd(self), interest)
    }
}
