//! Sending and receiving whole messages on datagram and seqpacket sockets.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use ipc_core::internal::poll_fd;
use ipc_core::{Error, Limit, Result};
use nix::poll::PollFlags;
use nix::sys::socket::{MsgFlags, SockaddrLike};

/// The default largest message of a [`Seqpacket`](crate::Seqpacket) or
/// [`Datagram`](crate::Datagram): 64 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

pub(crate) use ipc_core::internal::Wait;

/// What a message socket call needs to know of how it may wait.
pub(crate) trait SocketWait {
    /// The flags that make the call itself wait or not.
    fn flags(self) -> MsgFlags;

    /// After `EAGAIN`: fail with `WouldBlock` or wait for `events`.
    fn wait(self, fd: BorrowedFd<'_>, events: PollFlags, op: &'static str) -> Result<()>;
}

impl SocketWait for Wait {
    fn flags(self) -> MsgFlags {
        match self {
            Wait::Block => MsgFlags::empty(),
            Wait::Try | Wait::Until(_) => MsgFlags::MSG_DONTWAIT,
        }
    }

    fn wait(self, fd: BorrowedFd<'_>, events: PollFlags, op: &'static str) -> Result<()> {
        match self {
            // A blocking call meets EAGAIN only if the socket was put in non-blocking mode.
            Wait::Block | Wait::Try => Err(Error::would_block(op)),
            Wait::Until(deadline) => poll_fd(fd, events, deadline, op).map(drop),
        }
    }
}

/// Sends `msg` as one message (to `to`, or to the connected peer), never raising `SIGPIPE`.
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    msg: &[u8],
    to: Option<&dyn SockaddrLike>,
    max: usize,
    wait: Wait,
    op: &'static str,
) -> Result<()> {
    if msg.len() > max {
        let limit = Limit::new("max_message_size", max as u64);
        return Err(Error::limit_exceeded(
            op,
            "message size",
            msg.len() as u64,
            limit,
        ));
    }
    let flags = wait.flags() | MsgFlags::MSG_NOSIGNAL;
    loop {
        let sent = match to {
            Some(addr) => nix::sys::socket::sendto(fd.as_raw_fd(), msg, addr, flags),
            None => nix::sys::socket::send(fd.as_raw_fd(), msg, flags),
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait.wait(fd, PollFlags::POLLOUT, op)?,
            Err(nix::errno::Errno::EMSGSIZE) => {
                return Err(Error::new(
                    op,
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a message of {} bytes is larger than the socket's send buffer (raise it with UnixSocketExt::set_send_buffer_size, up to net.core.wmem_max)",
                        msg.len()
                    ),
                ));
            }
            Err(errno) => return Err(Error::from_errno(op, errno)),
        }
    }
}

/// Receives one message into `buf` and returns its length.
///
/// One `recv` call with `MSG_TRUNC` takes the message whole and says its real length, so
/// threads or processes that share the socket never take half of each other's messages: a
/// message longer than `buf` is reported with the size it needed (and is gone), one above
/// `max` (a peer ignoring the limit) is a corrupted error. A buffer of `max` bytes never
/// loses a message within the limit. A zero-length read is end of stream (peer gone):
/// seqpacket sockets cannot tell it from an empty message, so the senders of this crate
/// refuse empty messages there.
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    max: usize,
    wait: Wait,
    stream_end: bool,
    op: &'static str,
) -> Result<usize> {
    loop {
        match nix::sys::socket::recv(fd.as_raw_fd(), buf, wait.flags() | MsgFlags::MSG_TRUNC) {
            Ok(0) if stream_end && !buf.is_empty() => {
                return Err(Error::peer_gone(op, "the peer closed the connection"));
            }
            Ok(n) if n > buf.len() => return Err(cut(op, n, buf.len(), max)),
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait.wait(fd, PollFlags::POLLIN, op)?,
            Err(nix::errno::Errno::ECONNRESET) => {
                return Err(Error::peer_gone(op, "the peer reset the connection"));
            }
            Err(errno) => return Err(Error::from_errno(op, errno)),
        }
    }
}

/// The error for a message of `len` bytes that a receive into `available` bytes cut (and
/// the kernel dropped): corrupted above the maximum `max`, buffer-too-small below it.
pub(crate) fn cut(op: &'static str, len: usize, available: usize, max: usize) -> Error {
    if len > max {
        Error::corrupted(
            op,
            format!(
                "the peer sent a message of {len} bytes, above the maximum of {max}; it was dropped"
            ),
        )
    } else {
        Error::buffer_too_small(op, len, available)
    }
}
