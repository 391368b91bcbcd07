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
            // While a cancellation token is watched, a blocking call is an attempt and a
            // `poll` (which watches the tokens too): a shutdown ends it, where a blocking
            // `recvmsg` would be restarted. Otherwise one blocking call, the cheapest wait.
            Wait::Block if !ipc_core::internal::cancellation_watched() => MsgFlags::empty(),
            Wait::Block | Wait::Try | Wait::Until(_) => MsgFlags::MSG_DONTWAIT,
        }
    }

    fn wait(self, fd: BorrowedFd<'_>, events: PollFlags, op: &'static str) -> Result<()> {
        match self {
            Wait::Try => Err(Error::would_block(op)),
            // A blocking call meets EAGAIN only if the socket was put in non-blocking mode,
            // or it was made with MSG_DONTWAIT to watch the cancellation tokens.
            Wait::Block if is_nonblocking(fd) => Err(Error::would_block(op)),
            // The socket's own timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`) bounds the wait, which
            // then ends as the kernel's would, with `EAGAIN`.
            Wait::Block => match poll_fd(fd, events, socket_timeout(fd, events), op) {
                Err(err) if err.is_timeout() => Err(Error::would_block(op)),
                other => other.map(drop),
            },
            Wait::Until(deadline) => poll_fd(fd, events, deadline, op).map(drop),
        }
    }
}

/// The deadline the socket's receive (for `POLLIN`) or send timeout sets from now, or none.
fn socket_timeout(fd: BorrowedFd<'_>, events: PollFlags) -> ipc_core::Deadline {
    use nix::sys::socket::{getsockopt, sockopt};
    let timeout = if events.contains(PollFlags::POLLIN) {
        getsockopt(&fd, sockopt::ReceiveTimeout)
    } else {
        getsockopt(&fd, sockopt::SendTimeout)
    };
    let timeout = timeout.map_or(std::time::Duration::ZERO, |tv| {
        let secs = u64::try_from(tv.tv_sec()).unwrap_or(0);
        let micros = u32::try_from(tv.tv_usec()).unwrap_or(0);
        std::time::Duration::from_secs(secs) + std::time::Duration::from_micros(u64::from(micros))
    });
    if timeout.is_zero() {
        ipc_core::Deadline::NEVER
    } else {
        ipc_core::Deadline::after(timeout)
    }
}

/// Whether the socket is in non-blocking mode (where a blocking call must not wait).
fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).is_ok_and(|flags| {
        nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK)
    })
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
