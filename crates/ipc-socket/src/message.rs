//! Sending and receiving whole messages on datagram and seqpacket sockets.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use ipc_core::internal::poll_fd;
use ipc_core::{Error, Limit, Result};
use nix::poll::PollFlags;
use nix::sys::socket::{MsgFlags, SockaddrLike};

use crate::sys;

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
    check_size(msg, max, op)?;
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
            Err(errno) => return Err(send_error(op, errno, msg.len())),
        }
    }
}

/// A limit error for a message above `max` bytes.
fn check_size(msg: &[u8], max: usize, op: &'static str) -> Result<()> {
    if msg.len() > max {
        let limit = Limit::new("max_message_size", max as u64);
        return Err(Error::limit_exceeded(
            op,
            "message size",
            msg.len() as u64,
            limit,
        ));
    }
    Ok(())
}

/// The error of a send of a `len`-byte message that failed with `errno`.
fn send_error(op: &'static str, errno: nix::errno::Errno, len: usize) -> Error {
    if errno == nix::errno::Errno::EMSGSIZE {
        return Error::new(
            op,
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {len} bytes is larger than the socket's send buffer (raise it with UnixSocketExt::set_send_buffer_size, up to net.core.wmem_max)"
            ),
        );
    }
    Error::from_errno(op, errno)
}

/// Sends `msgs` in order, each as one message, to the connected peer, in as few
/// `sendmmsg` calls as the socket's room allows: how many were sent. Fewer than all only
/// when the wait ended (no room for a `try_`, a deadline) or an error came after some were
/// sent (the next send reports it). Sizes are checked first: one too large (or empty,
/// with `refuse_empty`) fails the call and sends nothing.
pub(crate) fn send_batch(
    fd: BorrowedFd<'_>,
    msgs: &[&[u8]],
    max: usize,
    wait: Wait,
    refuse_empty: bool,
    op: &'static str,
) -> Result<usize> {
    for msg in msgs {
        check_size(msg, max, op)?;
        if refuse_empty && msg.is_empty() {
            return Err(empty_refused(op));
        }
    }
    let flags = (wait.flags() | MsgFlags::MSG_NOSIGNAL).bits();
    let mut sent = 0;
    while sent < msgs.len() {
        match sys::sendmmsg(fd, &msgs[sent..], flags) {
            Ok(n) => {
                sent += n;
                if matches!(wait, Wait::Try) {
                    break;
                }
            }
            Err(err) => {
                let errno = nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(0));
                match errno {
                    nix::errno::Errno::EINTR => {}
                    nix::errno::Errno::EAGAIN => match wait.wait(fd, PollFlags::POLLOUT, op) {
                        Ok(()) => {}
                        Err(_) if sent > 0 => break,
                        Err(err) => return Err(err),
                    },
                    _ if sent > 0 => break,
                    _ => return Err(send_error(op, errno, msgs[sent].len())),
                }
            }
        }
    }
    Ok(sent)
}

/// The error for an empty seqpacket message.
pub(crate) fn empty_refused(op: &'static str) -> Error {
    Error::new(
        op,
        io::ErrorKind::InvalidInput,
        "a seqpacket message cannot be empty: the peer would read it as end of stream",
    )
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

/// Room for many messages, filled by one receive call (`recvmmsg`): the batch receive of
/// [`Seqpacket`](crate::Seqpacket) and [`Datagram`](crate::Datagram). A slot holds one
/// message of up to [`message_size`](RecvBatch::message_size) bytes.
///
/// ```
/// use ipc_socket::{RecvBatch, Seqpacket};
///
/// let (a, b) = Seqpacket::pair()?;
/// assert_eq!(a.send_batch(&[b"one", b"two", b"three"])?, 3); // one system call
/// let mut batch = RecvBatch::new(32, 64);
/// b.recv_batch(&mut batch)?; // one system call, all three
/// let got: Vec<&[u8]> = batch.iter().collect();
/// assert_eq!(got, [&b"one"[..], b"two", b"three"]);
/// # Ok::<(), ipc_socket::Error>(())
/// ```
///
/// A message longer than a slot is lost, as with a single receive into a buffer that
/// small, and reported in its place: the receive that met it returns the messages before
/// it, the next one fails with the buffer-too-small (or, above the socket's maximum,
/// corrupted) error, and the one after that returns the messages that came after it,
/// without a system call. Slots of the socket's maximum message size never lose one.
#[derive(Debug)]
pub struct RecvBatch {
    data: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    /// The slots holding the messages of the last receive, in order.
    received: Vec<usize>,
    /// Slots received after a lost message, delivered by the receive after the error.
    left: std::ops::Range<usize>,
    /// What the lost message gave: reported by the next receive.
    pending: Option<Error>,
}

/// The most messages one call takes (the kernel's `UIO_MAXIOV`).
const MAX_BATCH: usize = 1024;

impl RecvBatch {
    /// Room for `messages` messages (1 to 1 024) of up to `message_size` bytes each (at
    /// least 1): `messages × message_size` bytes, allocated now.
    pub fn new(messages: usize, message_size: usize) -> RecvBatch {
        let messages = messages.clamp(1, MAX_BATCH);
        let slot = message_size.max(1);
        RecvBatch {
            data: vec![0; messages * slot],
            slot,
            lens: vec![0; messages],
            received: Vec::with_capacity(messages),
            left: 0..0,
            pending: None,
        }
    }

    /// How many messages the last receive got.
    pub fn len(&self) -> usize {
        self.received.len()
    }

    /// Whether the last receive got none (or there was none yet).
    pub fn is_empty(&self) -> bool {
        self.received.is_empty()
    }

    /// The `index`th message of the last receive.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let slot = *self.received.get(index)?;
        let start = slot * self.slot;
        Some(&self.data[start..start + self.lens[slot]])
    }

    /// The messages of the last receive, in the order they were sent.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.received.iter().map(|&slot| {
            let start = slot * self.slot;
            &self.data[start..start + self.lens[slot]]
        })
    }

    /// How many messages one receive can take.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The largest message a slot holds.
    pub fn message_size(&self) -> usize {
        self.slot
    }
}

/// Receives into `batch` at least one message, waiting as `wait` says for the first, and
/// every further one queued then, in one `recvmmsg`: how many.
pub(crate) fn recv_batch(
    fd: BorrowedFd<'_>,
    batch: &mut RecvBatch,
    max: usize,
    wait: Wait,
    stream_end: bool,
    op: &'static str,
) -> Result<usize> {
    batch.received.clear();
    if let Some(err) = batch.pending.take() {
        return Err(err);
    }
    if !batch.left.is_empty() {
        return batch.deliver(max, stream_end, op);
    }
    let call = wait.flags();
    // A blocking call waits for the first message only.
    let waits = if call.contains(MsgFlags::MSG_DONTWAIT) {
        0
    } else {
        libc::MSG_WAITFORONE
    };
    let flags = (call | MsgFlags::MSG_TRUNC).bits() | waits;
    loop {
        let got = match sys::recvmmsg(fd, &mut batch.data, batch.slot, &mut batch.lens, flags) {
            Ok(got) => got,
            Err(err) => {
                match nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(0)) {
                    nix::errno::Errno::EINTR => {}
                    nix::errno::Errno::EAGAIN => wait.wait(fd, PollFlags::POLLIN, op)?,
                    nix::errno::Errno::ECONNRESET => {
                        return Err(Error::peer_gone(op, "the peer reset the connection"));
                    }
                    errno => return Err(Error::from_errno(op, errno)),
                }
                continue;
            }
        };
        batch.left = 0..got;
        return batch.deliver(max, stream_end, op);
    }
}

impl RecvBatch {
    /// Takes the received slots in order up to the first lost message, whose error waits
    /// for the next receive if messages came before it: how many were taken.
    fn deliver(&mut self, max: usize, stream_end: bool, op: &'static str) -> Result<usize> {
        while let Some(slot) = self.left.next() {
            let len = self.lens[slot];
            if stream_end && len == 0 {
                // End of stream: nothing follows it, and every later receive sees it.
                self.left = 0..0;
                if self.received.is_empty() {
                    return Err(Error::peer_gone(op, "the peer closed the connection"));
                }
                break;
            }
            if len > self.slot {
                let err = cut(op, len, self.slot, max);
                if self.received.is_empty() {
                    return Err(err);
                }
                self.pending = Some(err);
                break;
            }
            self.received.push(slot);
        }
        Ok(self.received.len())
    }
}
