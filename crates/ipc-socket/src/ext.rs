//! What Unix sockets can do beyond bytes: pass descriptors and tell who the peer is.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};

use ipc_core::{Error, Limit, Result};
use nix::sys::socket::{ControlMessage, MsgFlags, sockopt};
use socket2::SockRef;

use crate::sys;

/// The most descriptors one message can carry on Linux (`SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Who is at the other end of a Unix socket, as the kernel recorded it when the
/// connection was made (`SO_PEERCRED`) or the datagram was sent (`SCM_CREDENTIALS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id. It can be reused once the peer exits; use
    /// [`UnixSocketExt::peer_pidfd`] to refer to the process itself.
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl PeerCredentials {
    /// The credentials nix read (`SO_PEERCRED`); kept out of the public API, so that a nix
    /// upgrade never changes it.
    pub(crate) fn from_nix(c: nix::sys::socket::UnixCredentials) -> Self {
        PeerCredentials {
            pid: u32::try_from(c.pid()).unwrap_or(0),
            uid: c.uid(),
            gid: c.gid(),
        }
    }
}

/// The bytes of control-message space for `payload` bytes of data (`CMSG_SPACE`).
pub(crate) fn cmsg_space(payload: usize) -> usize {
    let align = std::mem::size_of::<usize>();
    let round = |n: usize| n.div_ceil(align) * align;
    round(std::mem::size_of::<libc::cmsghdr>()) + round(payload)
}

/// Sends `data` with `fds` attached (`sendmsg` with `SCM_RIGHTS` and `MSG_NOSIGNAL`).
pub(crate) fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: MsgFlags,
) -> Result<usize> {
    const OP: &str = "sendmsg";
    if fds.len() > MAX_FDS_PER_MESSAGE {
        let limit = Limit::new("SCM_MAX_FD", MAX_FDS_PER_MESSAGE as u64);
        return Err(Error::limit_exceeded(
            OP,
            "descriptors per message",
            fds.len() as u64,
            limit,
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    let iov = [IoSlice::new(data)];
    loop {
        match nix::sys::socket::sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            cmsgs,
            flags | MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Err(Error::would_block(OP)),
            other => return other.map_err(|e| Error::from_errno(OP, e)),
        }
    }
}

/// What one `recvmsg` delivered.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) credentials: Option<PeerCredentials>,
    pub(crate) truncated: bool,
}

/// `recvmsg` with room for `max_fds` descriptors (and credentials), received close-on-exec.
/// More descriptors than that is an error, and every one that arrived is closed, however the
/// kernel truncated the control messages.
pub(crate) fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    flags: MsgFlags,
) -> Result<Received> {
    const OP: &str = "recvmsg";
    let max_fds = max_fds.min(MAX_FDS_PER_MESSAGE);
    let space = cmsg_space(max_fds * std::mem::size_of::<RawFd>())
        + cmsg_space(std::mem::size_of::<libc::ucred>());
    let received = loop {
        match sys::recvmsg(socket, buf, space, flags.bits()) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::would_block(OP));
            }
            other => break other.map_err(|e| Error::from(e).with_op(OP))?,
        }
    };
    // The control buffer has room for credentials too, which a few more descriptors could
    // use instead: count them as well as asking the kernel.
    if received.flags & libc::MSG_CTRUNC != 0 || received.fds.len() > max_fds {
        let arrived = received.fds.len();
        drop(received.fds);
        let limit = Limit::new("max_fds of this receive", max_fds as u64);
        return Err(Error::limit_exceeded(
            OP,
            "descriptors in the message (the kernel dropped those beyond the limit; the \
             ones that arrived were closed)",
            (arrived.max(max_fds) + 1) as u64,
            limit,
        ));
    }
    Ok(Received {
        len: received.bytes,
        fds: received.fds,
        credentials: received.credentials.map(|c| PeerCredentials {
            pid: u32::try_from(c.pid).unwrap_or(0),
            uid: c.uid,
            gid: c.gid,
        }),
        truncated: received.flags & libc::MSG_TRUNC != 0,
    })
}

/// [`UnixSocketExt::recv_with_fds`], waiting or not as `wait` (empty or `MSG_DONTWAIT`)
/// says.
/// The credentials of the peer of the connected Unix socket `socket` (`SO_PEERCRED`).
pub(crate) fn peer_credentials_of(socket: BorrowedFd<'_>) -> Result<PeerCredentials> {
    nix::sys::socket::getsockopt(&socket, sockopt::PeerCredentials)
        .map(PeerCredentials::from_nix)
        .map_err(|e| Error::from_errno("getsockopt(SO_PEERCRED)", e))
}

fn recv_message_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    wait: MsgFlags,
) -> Result<(usize, Vec<OwnedFd>)> {
    // On message sockets MSG_TRUNC makes the kernel report a cut message's real size;
    // on stream sockets it would discard data instead, so ask which this is.
    let kind = nix::sys::socket::getsockopt(&socket, sockopt::SockType)
        .map_err(|e| Error::from_errno("getsockopt(SO_TYPE)", e))?;
    let flags = if kind == nix::sys::socket::SockType::Stream {
        MsgFlags::empty()
    } else {
        MsgFlags::MSG_TRUNC
    };
    let received = recv_with_fds(socket, buf, max_fds, flags | wait)?;
    if received.truncated {
        return Err(Error::buffer_too_small("recvmsg", received.len, buf.len()));
    }
    // A seqpacket message is never empty (`Seqpacket::send` refuses one), so nothing is
    // the end of the connection, as `Seqpacket::recv` reports it.
    if received.len == 0 && kind == nix::sys::socket::SockType::SeqPacket {
        return Err(Error::peer_gone(
            "recvmsg",
            "the peer closed the connection",
        ));
    }
    Ok((received.len, received.fds))
}

/// Descriptor passing and peer identity for connected Unix sockets: std's
/// [`UnixStream`] and [`UnixDatagram`], and this crate's [`Seqpacket`](crate::Seqpacket)
/// and [`Datagram`](crate::Datagram).
///
/// ```
/// use std::io::{Read, Seek, Write};
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use ipc_socket::UnixSocketExt;
///
/// let (a, b) = UnixStream::pair()?;
/// let mut file = std::fs::File::open("/proc/self/status")?;
/// a.send_with_fds(b"here", &[file.as_fd()])?;
///
/// let mut buf = [0u8; 4];
/// let (n, fds) = b.recv_with_fds(&mut buf, 4)?;
/// assert_eq!((&buf[..n], fds.len()), (&b"here"[..], 1));
/// // The received descriptor is a new handle to the same open file.
/// let mut text = String::new();
/// std::fs::File::from(fds.into_iter().next().unwrap()).read_to_string(&mut text)?;
/// assert!(text.starts_with("Name:"));
///
/// assert_eq!(a.peer_credentials()?.pid, std::process::id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait UnixSocketExt: AsFd {
    /// Sends `data` with the descriptors `fds` attached (`SCM_RIGHTS`), never raising
    /// `SIGPIPE`. On a stream socket the descriptors travel with the first byte, and a short
    /// send is possible: send the rest without descriptors.
    ///
    /// # Errors
    ///
    /// A limit error for more than [`MAX_FDS_PER_MESSAGE`] descriptors; `BrokenPipe` if the
    /// peer is gone; other `sendmsg` errors.
    #[doc(alias = "SCM_RIGHTS")]
    fn send_with_fds(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        send_with_fds(self.as_fd(), data, fds, MsgFlags::empty())
    }

    /// Sends `data` with `fds` attached if there is room now (`MSG_DONTWAIT`), whatever
    /// the socket's blocking mode: the call to run in `Async::write_with`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if there is no room (nothing was sent); otherwise as
    /// [`send_with_fds`](UnixSocketExt::send_with_fds).
    fn try_send_with_fds(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<usize> {
        send_with_fds(self.as_fd(), data, fds, MsgFlags::MSG_DONTWAIT)
    }

    /// Receives bytes into `buf` and up to `max_fds` descriptors (close-on-exec).
    ///
    /// # Errors
    ///
    /// A limit error if the message carried more than `max_fds` descriptors: the kernel
    /// dropped the surplus, and the ones that did arrive are closed, so nothing leaks. On a
    /// datagram or seqpacket socket, a message longer than `buf` is an error saying the
    /// size it needed; that message and its descriptors are gone. On a stream socket `Ok`
    /// with no bytes is the end of the stream; on a seqpacket socket the end is a peer-gone
    /// error, as [`Seqpacket::recv`](crate::Seqpacket::recv) says. Other `recvmsg` errors.
    fn recv_with_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        recv_message_with_fds(self.as_fd(), buf, max_fds, MsgFlags::empty())
    }

    /// Receives bytes and descriptors if some are there now (`MSG_DONTWAIT`), whatever the
    /// socket's blocking mode: the call to run in `Async::read_with`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if nothing is there; otherwise as
    /// [`recv_with_fds`](UnixSocketExt::recv_with_fds).
    fn try_recv_with_fds(&self, buf: &mut [u8], max_fds: usize) -> Result<(usize, Vec<OwnedFd>)> {
        recv_message_with_fds(self.as_fd(), buf, max_fds, MsgFlags::MSG_DONTWAIT)
    }

    /// The peer's pid, uid and gid when the connection was made (`SO_PEERCRED`).
    ///
    /// # Errors
    ///
    /// `ENOTCONN` on an unconnected socket.
    #[doc(alias = "SO_PEERCRED")]
    fn peer_credentials(&self) -> Result<PeerCredentials> {
        peer_credentials_of(self.as_fd())
    }

    /// A pidfd for the peer process (`SO_PEERPIDFD`, Linux 6.5): unlike the pid in
    /// [`peer_credentials`](UnixSocketExt::peer_credentials), it cannot come to mean
    /// another process after the peer exits, so signals sent through it never reach a
    /// stranger.
    ///
    /// # Errors
    ///
    /// `ENOPROTOOPT` on kernels before 6.5; `ENOTCONN` on an unconnected socket.
    #[doc(alias = "SO_PEERPIDFD")]
    fn peer_pidfd(&self) -> Result<OwnedFd> {
        sys::peer_pidfd(self.as_fd())
            .map_err(|e| Error::from(e).with_op("getsockopt(SO_PEERPIDFD)"))
    }

    /// Sets the send buffer (`SO_SNDBUF`) to `bytes`: on a seqpacket or datagram socket it
    /// bounds the largest message, on a stream how much is in flight. The kernel doubles
    /// the value for its bookkeeping and caps it at `net.core.wmem_max` (about 208 KiB by
    /// default; raise it with `sysctl`); [`send_buffer_size`](UnixSocketExt::send_buffer_size)
    /// says what was granted.
    ///
    /// # Errors
    ///
    /// The `setsockopt` error.
    #[doc(alias = "SO_SNDBUF")]
    fn set_send_buffer_size(&self, bytes: usize) -> Result<()> {
        SockRef::from(&self.as_fd())
            .set_send_buffer_size(bytes)
            .map_err(|e| Error::from(e).with_op("setsockopt(SO_SNDBUF)"))
    }

    /// The send buffer's size as the kernel reports it (twice what was asked, within the
    /// cap).
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    fn send_buffer_size(&self) -> Result<usize> {
        SockRef::from(&self.as_fd())
            .send_buffer_size()
            .map_err(|e| Error::from(e).with_op("getsockopt(SO_SNDBUF)"))
    }

    /// Sets the receive buffer (`SO_RCVBUF`) to `bytes`, doubled and capped at
    /// `net.core.rmem_max` as [`set_send_buffer_size`](UnixSocketExt::set_send_buffer_size)
    /// says.
    ///
    /// # Errors
    ///
    /// The `setsockopt` error.
    #[doc(alias = "SO_RCVBUF")]
    fn set_recv_buffer_size(&self, bytes: usize) -> Result<()> {
        SockRef::from(&self.as_fd())
            .set_recv_buffer_size(bytes)
            .map_err(|e| Error::from(e).with_op("setsockopt(SO_RCVBUF)"))
    }

    /// The receive buffer's size as the kernel reports it.
    ///
    /// # Errors
    ///
    /// The `getsockopt` error.
    fn recv_buffer_size(&self) -> Result<usize> {
        SockRef::from(&self.as_fd())
            .recv_buffer_size()
            .map_err(|e| Error::from(e).with_op("getsockopt(SO_RCVBUF)"))
    }
}

impl UnixSocketExt for UnixStream {}
impl UnixSocketExt for UnixDatagram {}
