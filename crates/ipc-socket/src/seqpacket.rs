//! Unix seqpacket sockets: connection-oriented, reliable, ordered messages, which std lacks.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ipc_core::{Deadline, Error, MessageReceiver, MessageSender, Result};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};

use crate::bind::{self, BoundPath, ListenerOptions};
use crate::message::{self, DEFAULT_MAX_MESSAGE_SIZE, Wait};
use crate::stream::accept_allowed;
use crate::{PeerCredentials, UnixAddr, UnixSocketExt};

/// A connected Unix seqpacket socket (`SOCK_SEQPACKET`): messages arrive whole, in order,
/// exactly once, and the connection tells when the peer is gone. The natural choice for
/// request-reply between processes.
///
/// ```
/// use ipc_socket::Seqpacket;
///
/// let (mut a, mut b) = Seqpacket::pair()?;
/// a.send(b"request")?;
/// let mut buf = [0u8; 64];
/// let n = b.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"request");
/// # Ok::<(), ipc_socket::Error>(())
/// ```
///
/// Messages are at most [`max_message_size`](Seqpacket::max_message_size) bytes (64 KiB
/// by default, settable up to the socket send buffer). A zero-length read means the peer
/// is gone, so empty messages cannot be sent.
#[derive(Debug)]
pub struct Seqpacket {
    fd: OwnedFd,
    max: usize,
}

impl Seqpacket {
    fn from_fd(fd: OwnedFd) -> Self {
        Seqpacket {
            fd,
            max: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// A connected pair (`socketpair`), close-on-exec.
    ///
    /// # Errors
    ///
    /// The `socketpair` error.
    pub fn pair() -> Result<(Seqpacket, Seqpacket)> {
        let (a, b) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::from_errno("socketpair", e))?;
        Ok((Seqpacket::from_fd(a), Seqpacket::from_fd(b)))
    }

    /// Connects to a [`SeqpacketListener`].
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` if nobody listens; other `connect` errors.
    pub fn connect(addr: &UnixAddr) -> Result<Seqpacket> {
        bind::connect(SockType::SeqPacket, addr, Deadline::NEVER).map(Seqpacket::from_fd)
    }

    /// Connects, waiting at most `timeout` for a full backlog to make room.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`Seqpacket::connect`].
    pub fn connect_timeout(addr: &UnixAddr, timeout: Duration) -> Result<Seqpacket> {
        bind::connect(SockType::SeqPacket, addr, Deadline::after(timeout)).map(Seqpacket::from_fd)
    }

    /// Sets the largest message sent or accepted.
    #[must_use]
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// The largest message sent or accepted.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    fn send_with(&self, msg: &[u8], wait: Wait, op: &'static str) -> Result<()> {
        if msg.is_empty() {
            return Err(message::empty_refused(op));
        }
        message::send(self.fd.as_fd(), msg, None, self.max, wait, op)
    }

    /// Sends `msg` as one message, waiting for room.
    ///
    /// # Errors
    ///
    /// A limit error above the maximum size; `InvalidInput` for an empty message;
    /// `BrokenPipe` if the peer is gone.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Block, "send")
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`Seqpacket::send`].
    pub fn try_send(&self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Try, "send")
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`Seqpacket::send`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Wait::Until(Deadline::after(timeout)), "send")
    }

    /// Receives the next message into `buf`, waiting for one.
    ///
    /// # Errors
    ///
    /// Buffer too small, with the size the message needed (that message is gone: a buffer
    /// of [`max_message_size`](Seqpacket::max_message_size) bytes never loses one); peer
    /// gone at end of stream; corrupted if the peer sent more than the maximum.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        message::recv(self.fd.as_fd(), buf, self.max, Wait::Block, true, "recv")
    }

    /// Receives the next message if one is queued.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`Seqpacket::recv`].
    pub fn try_recv(&self, buf: &mut [u8]) -> Result<usize> {
        message::recv(self.fd.as_fd(), buf, self.max, Wait::Try, true, "recv")
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`Seqpacket::recv`].
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        message::recv(
            self.fd.as_fd(),
            buf,
            self.max,
            Wait::Until(Deadline::after(timeout)),
            true,
            "recv",
        )
    }

    /// Sends `msgs` in order, each as one message, in one system call (`sendmmsg`) when
    /// the socket has room for them all, waiting for room as needed; returns how many were
    /// sent: all, unless an error came after some were (the next send reports it).
    ///
    /// # Errors
    ///
    /// As [`Seqpacket::send`]; a message too large or empty fails the call before anything
    /// is sent.
    pub fn send_batch(&self, msgs: &[&[u8]]) -> Result<usize> {
        message::send_batch(
            self.fd.as_fd(),
            msgs,
            self.max,
            Wait::Block,
            true,
            "sendmmsg",
        )
    }

    /// Sends as many of `msgs`, in order, as the socket has room for now, in one system
    /// call; returns how many (at least one).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if there is no room for the first; otherwise as
    /// [`Seqpacket::send_batch`].
    pub fn try_send_batch(&self, msgs: &[&[u8]]) -> Result<usize> {
        message::send_batch(self.fd.as_fd(), msgs, self.max, Wait::Try, true, "sendmmsg")
    }

    /// Sends `msgs` as [`Seqpacket::send_batch`] does, waiting at most `timeout` for room;
    /// returns how many were sent (fewer than all if the time ran out after some).
    ///
    /// # Errors
    ///
    /// `TimedOut` if none was sent; otherwise as [`Seqpacket::send_batch`].
    pub fn send_batch_timeout(&self, msgs: &[&[u8]], timeout: Duration) -> Result<usize> {
        let wait = Wait::Until(Deadline::after(timeout));
        message::send_batch(self.fd.as_fd(), msgs, self.max, wait, true, "sendmmsg")
    }

    /// Receives into `batch` the next message, waiting for one, and every further one
    /// queued by then, up to the batch's capacity, in one system call (`recvmmsg`);
    /// returns how many.
    ///
    /// # Errors
    ///
    /// As [`Seqpacket::recv`], for a batch's slot size; a message lost with others
    /// received is reported by the next call ([`RecvBatch`](crate::RecvBatch)).
    pub fn recv_batch(&self, batch: &mut crate::RecvBatch) -> Result<usize> {
        message::recv_batch(
            self.fd.as_fd(),
            batch,
            self.max,
            Wait::Block,
            true,
            "recvmmsg",
        )
    }

    /// Receives into `batch` the messages queued now, up to its capacity; returns how many
    /// (at least one).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; otherwise as [`Seqpacket::recv_batch`].
    pub fn try_recv_batch(&self, batch: &mut crate::RecvBatch) -> Result<usize> {
        message::recv_batch(
            self.fd.as_fd(),
            batch,
            self.max,
            Wait::Try,
            true,
            "recvmmsg",
        )
    }

    /// As [`Seqpacket::recv_batch`], waiting at most `timeout` for the first message.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`Seqpacket::recv_batch`].
    pub fn recv_batch_timeout(
        &self,
        batch: &mut crate::RecvBatch,
        timeout: Duration,
    ) -> Result<usize> {
        let wait = Wait::Until(Deadline::after(timeout));
        message::recv_batch(self.fd.as_fd(), batch, self.max, wait, true, "recvmmsg")
    }

    /// Shuts down reading, writing or both (`shutdown(2)`), waking a thread blocked in
    /// `recv` on this socket.
    ///
    /// # Errors
    ///
    /// `ENOTCONN` on an unconnected socket.
    pub fn shutdown(&self, how: std::net::Shutdown) -> Result<()> {
        let how = match how {
            std::net::Shutdown::Read => nix::sys::socket::Shutdown::Read,
            std::net::Shutdown::Write => nix::sys::socket::Shutdown::Write,
            std::net::Shutdown::Both => nix::sys::socket::Shutdown::Both,
        };
        nix::sys::socket::shutdown(self.fd.as_raw_fd(), how)
            .map_err(|e| Error::from_errno("shutdown", e))
    }

    /// A second handle to the same socket (close-on-exec).
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    pub fn try_clone(&self) -> Result<Seqpacket> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::from(e).with_op("fcntl(F_DUPFD_CLOEXEC)"))?;
        Ok(Seqpacket { fd, max: self.max })
    }
}

impl MessageSender for Seqpacket {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Seqpacket::send(self, msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        Seqpacket::try_send(self, msg)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        Seqpacket::send_timeout(self, msg, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl MessageReceiver for Seqpacket {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Seqpacket::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Seqpacket::try_recv(self, buf)
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        Seqpacket::recv_timeout(self, buf, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl UnixSocketExt for Seqpacket {}

impl AsFd for Seqpacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Seqpacket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<Seqpacket> for OwnedFd {
    fn from(socket: Seqpacket) -> Self {
        socket.fd
    }
}

impl From<OwnedFd> for Seqpacket {
    /// Wraps a descriptor that must be a connected seqpacket socket.
    fn from(fd: OwnedFd) -> Self {
        Seqpacket::from_fd(fd)
    }
}

/// The listening end of seqpacket connections, with the same safety as
/// [`StreamListener`](crate::StreamListener): exact permissions, stale-file recovery,
/// removal on drop, allowed users, credentials at accept, deadlines.
#[derive(Debug)]
pub struct SeqpacketListener {
    fd: OwnedFd,
    addr: UnixAddr,
    bound: Option<BoundPath>,
    allowed_uids: Option<Vec<u32>>,
    _reserve: crate::reserve::Hold,
}

impl SeqpacketListener {
    /// Binds with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind_stream`], which fails the same ways.
    pub fn bind(addr: &UnixAddr) -> Result<Self> {
        ListenerOptions::new().bind_seqpacket(addr)
    }

    /// Waits for a connection from an allowed peer.
    ///
    /// # Errors
    ///
    /// Out of descriptors (`EMFILE`, `ENFILE`): a limit error, after one waiting client was
    /// turned away (see the crate's docs); accept again to go on. Other `accept4` errors.
    pub fn accept(&self) -> Result<(Seqpacket, PeerCredentials)> {
        self.accept_with(Some(Deadline::NEVER))
    }

    /// Accepts a connection if one is waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is.
    pub fn try_accept(&self) -> Result<(Seqpacket, PeerCredentials)> {
        self.accept_with(None)
    }

    /// Waits at most `timeout` for a connection.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none comes.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(Seqpacket, PeerCredentials)> {
        self.accept_with(Some(Deadline::after(timeout)))
    }

    fn accept_with(&self, deadline: Option<Deadline>) -> Result<(Seqpacket, PeerCredentials)> {
        let (fd, credentials) = accept_allowed(&self.fd, &self.allowed_uids, deadline)?;
        Ok((Seqpacket::from_fd(fd), credentials))
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> &UnixAddr {
        &self.addr
    }

    /// Keeps the socket file after the listener is dropped.
    pub fn persist(&mut self) {
        if let Some(bound) = &mut self.bound {
            bound.persist();
        }
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl ListenerOptions {
    /// Binds a seqpacket listener to `addr`.
    ///
    /// # Errors
    ///
    /// As [`ListenerOptions::bind_stream`].
    pub fn bind_seqpacket(&self, addr: &UnixAddr) -> Result<SeqpacketListener> {
        let (fd, bound) = bind::bind(SockType::SeqPacket, addr, self, true)?;
        Ok(SeqpacketListener {
            fd,
            addr: addr.clone(),
            bound,
            allowed_uids: self.allowed_uids.clone(),
            _reserve: crate::reserve::hold(),
        })
    }
}

impl ipc_core::Source for Seqpacket {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::Readiness::of_fd(std::os::fd::AsFd::as_fd(self), interest)
    }
}

impl ipc_core::Source for SeqpacketListener {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a listener")
    }
}
