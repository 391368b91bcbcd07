//! The two traits every message-oriented endpoint implements.

use std::time::Duration;

use crate::Result;

/// The sending side of a message channel: a framed pipe or stream, a seqpacket or datagram
/// socket, a POSIX message queue, a shared-memory channel.
///
/// A message is a byte string delivered whole or not at all: a receiver never sees part of
/// one. The integration tests and the benchmark runner drive every mechanism through this
/// trait, so they are compared on identical work.
///
/// # Errors
///
/// Every method fails with [`Error::is_limit_exceeded`](crate::Error::is_limit_exceeded) if
/// the message is larger than [`max_message_size`](MessageSender::max_message_size) (nothing
/// is sent), with [`Error::is_peer_gone`](crate::Error::is_peer_gone) if no receiver is left,
/// and with the mechanism's own errors otherwise. A failed send sends nothing.
pub trait MessageSender {
    /// Sends `msg`, waiting as long as it takes for room.
    ///
    /// # Errors
    ///
    /// See the [trait documentation](MessageSender#errors).
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends `msg` if there is room now; otherwise fails with
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) and sends nothing.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or see the [trait documentation](MessageSender#errors).
    fn try_send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends `msg`, waiting at most `timeout` for room; fails with
    /// [`TimedOut`](std::io::ErrorKind::TimedOut) and sends nothing when it runs out.
    ///
    /// # Errors
    ///
    /// `TimedOut`, or see the [trait documentation](MessageSender#errors).
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()>;

    /// The largest message this sender accepts, in bytes.
    fn max_message_size(&self) -> usize;

    /// Sends what an earlier send accepted and kept without waiting (a framed writer keeps
    /// the rest of a frame a full stream cut); `Ok` once nothing is kept, at once for the
    /// senders that keep nothing.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if something is still kept, or see the
    /// [trait documentation](MessageSender#errors).
    fn try_flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The receiving side of a message channel; see [`MessageSender`].
///
/// Messages are received into the caller's buffer, so a receive loop allocates nothing.
///
/// # Errors
///
/// Every method fails with [`Error::is_buffer_too_small`](crate::Error::is_buffer_too_small)
/// when the next message does not fit `buf`; [`Error::needed_len`](crate::Error::needed_len)
/// then says how large a buffer it needs. Implementations keep that message queued, so that a
/// retry with a larger buffer receives it, wherever the operating system allows; an
/// implementation that cannot documents that the message is lost. A receiver whose senders
/// are all gone fails with [`Error::is_peer_gone`](crate::Error::is_peer_gone) once the
/// queued messages are drained; one that finds a malformed message fails with
/// [`Error::is_corrupted`](crate::Error::is_corrupted).
pub trait MessageReceiver {
    /// Receives the next message into `buf`, waiting as long as it takes, and returns its
    /// length.
    ///
    /// # Errors
    ///
    /// See the [trait documentation](MessageReceiver#errors).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Receives the next message if one is there now; otherwise fails with
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock).
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or see the [trait documentation](MessageReceiver#errors).
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Receives the next message, waiting at most `timeout`; fails with
    /// [`TimedOut`](std::io::ErrorKind::TimedOut) when it runs out.
    ///
    /// # Errors
    ///
    /// `TimedOut`, or see the [trait documentation](MessageReceiver#errors).
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize>;

    /// The largest message this receiver can deliver: a buffer of this size always suffices.
    fn max_message_size(&self) -> usize;

    /// Receives the next message into `buf`, which is resized to the message: it grows to
    /// [`max_message_size`](MessageReceiver::max_message_size) for the receive, or to the
    /// size a [buffer-too-small](crate::Error::is_buffer_too_small) error asks for, and is
    /// truncated to the message's length afterwards. Reusing one `Vec` across calls
    /// allocates only when a message is larger than any before.
    ///
    /// # Errors
    ///
    /// As [`recv`](MessageReceiver::recv); `buf` is left empty on error.
    fn recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        buf.resize(buf.capacity().max(self.max_message_size()), 0);
        let result = match self.recv(buf) {
            Err(err) => match err.needed_len() {
                Some(needed) if needed > buf.len() => {
                    buf.resize(needed, 0);
                    self.recv(buf)
                }
                _ => Err(err),
            },
            ok => ok,
        };
        buf.truncate(*result.as_ref().unwrap_or(&0));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::ErrorKind;

    use super::*;
    use crate::{Error, Limit};

    /// A queue that keeps a message that does not fit, as the trait asks, and under-reports
    /// its maximum to exercise the retry of `recv_vec`.
    struct Loopback {
        queue: VecDeque<Vec<u8>>,
        max: usize,
        claimed_max: usize,
    }

    impl MessageSender for Loopback {
        fn send(&mut self, msg: &[u8]) -> Result<()> {
            if msg.len() > self.max {
                let limit = Limit::new("Loopback::max", self.max as u64);
                return Err(Error::limit_exceeded(
                    "send",
                    "message size",
                    msg.len() as u64,
                    limit,
                ));
            }
            self.queue.push_back(msg.to_vec());
            Ok(())
        }
        fn try_send(&mut self, msg: &[u8]) -> Result<()> {
            self.send(msg)
        }
        fn send_timeout(&mut self, msg: &[u8], _: Duration) -> Result<()> {
            self.send(msg)
        }
        fn max_message_size(&self) -> usize {
            self.max
        }
    }

    impl MessageReceiver for Loopback {
        fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
            self.try_recv(buf)
        }
        fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
            let Some(front) = self.queue.front() else {
                return Err(Error::would_block("recv"));
            };
            if front.len() > buf.len() {
                return Err(Error::buffer_too_small("recv", front.len(), buf.len()));
            }
            let msg = self.queue.pop_front().unwrap_or_default();
            buf[..msg.len()].copy_from_slice(&msg);
            Ok(msg.len())
        }
        fn recv_timeout(&mut self, buf: &mut [u8], _: Duration) -> Result<usize> {
            self.try_recv(buf)
        }
        fn max_message_size(&self) -> usize {
            self.claimed_max
        }
    }

    #[test]
    fn too_small_buffer_keeps_the_message() {
        let mut q = Loopback {
            queue: VecDeque::new(),
            max: 100,
            claimed_max: 100,
        };
        q.send(b"hello world").unwrap();
        let mut small = [0u8; 4];
        let err = q.try_recv(&mut small).unwrap_err();
        assert!(err.is_buffer_too_small());
        assert_eq!(err.needed_len(), Some(11));
        let mut big = [0u8; 11];
        assert_eq!(q.try_recv(&mut big).unwrap(), 11);
        assert_eq!(&big, b"hello world");
    }

    #[test]
    fn recv_vec_grows_to_what_the_receiver_asks() {
        let mut q = Loopback {
            queue: VecDeque::new(),
            max: 1000,
            claimed_max: 8,
        };
        q.send(&[7u8; 500]).unwrap();
        q.send(b"ab").unwrap();
        let mut buf = Vec::new();
        assert_eq!(q.recv_vec(&mut buf).unwrap(), 500);
        assert_eq!(buf, vec![7u8; 500]);
        assert_eq!(q.recv_vec(&mut buf).unwrap(), 2);
        assert_eq!(buf, b"ab");
        let err = q.recv_vec(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_send_names_the_limit() {
        let mut q = Loopback {
            queue: VecDeque::new(),
            max: 4,
            claimed_max: 4,
        };
        let err = q.send(b"too long").unwrap_err();
        assert_eq!(err.limit().map(|l| l.value()), Some(4));
        assert!(q.queue.is_empty());
    }
}
