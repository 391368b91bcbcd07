//! Byte streams that can be used without blocking and waited on with a deadline.

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::poll::PollFlags;
use nix::sys::socket::MsgFlags;

use crate::internal::poll_fd;
use crate::{Deadline, Error, Result};

/// A byte stream that can also read without blocking and wait for input until a deadline:
/// a pipe, a FIFO, a stream socket. [`FramedReader`](crate::FramedReader) needs it for
/// `try_recv` and `recv_timeout`.
pub trait ReadReady: Read {
    /// Reads what is available now, without waiting; fails with
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) if nothing is. `Ok(0)` is end of
    /// file.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or the read error.
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Waits until a read would not block (data or end of file is there) or the deadline
    /// passes ([`TimedOut`](std::io::ErrorKind::TimedOut)).
    ///
    /// # Errors
    ///
    /// `TimedOut`, or the error of the wait.
    fn wait_readable(&self, deadline: Deadline) -> Result<()>;
}

/// A byte stream that can also write without blocking and wait for room until a deadline.
/// [`FramedWriter`](crate::FramedWriter) needs it for `try_send` and `send_timeout`.
pub trait WriteReady: Write {
    /// Writes what fits now, without waiting; fails with
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock) if nothing does. On a pipe, a write
    /// of at most `PIPE_BUF` bytes is all or nothing.
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or the write error (peer gone if no reader is left).
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize>;

    /// Waits until a write would not block or the deadline passes
    /// ([`TimedOut`](std::io::ErrorKind::TimedOut)).
    ///
    /// # Errors
    ///
    /// `TimedOut`, or the error of the wait (peer gone if no reader is left).
    fn wait_writable(&self, deadline: Deadline) -> Result<()>;

    /// Ends the writing direction, so that the reader sees the end of the stream while
    /// this end stays open (`shutdown(SHUT_WR)` on a socket). Streams that cannot do that
    /// (a pipe, whose write end closes when dropped) do nothing.
    ///
    /// # Errors
    ///
    /// The `shutdown` error.
    fn shutdown_write(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<T: ReadReady + ?Sized> ReadReady for &mut T {
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        (**self).try_read(buf)
    }

    fn wait_readable(&self, deadline: Deadline) -> Result<()> {
        (**self).wait_readable(deadline)
    }
}

impl<T: WriteReady + ?Sized> WriteReady for &mut T {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        (**self).try_write_vectored(bufs)
    }

    fn wait_writable(&self, deadline: Deadline) -> Result<()> {
        (**self).wait_writable(deadline)
    }

    fn shutdown_write(&mut self) -> Result<()> {
        (**self).shutdown_write()
    }
}

/// `recv(MSG_DONTWAIT)` on a stream socket: a read that never waits, whatever the socket's
/// blocking mode.
fn socket_try_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    loop {
        match nix::sys::socket::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Err(Error::would_block("recv")),
            other => return other.map_err(|e| Error::from_errno("recv", e)),
        }
    }
}

/// `sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` on a stream socket (`send` for one buffer, which
/// spares the kernel the message header and vector): a write that never waits and never
/// raises `SIGPIPE`.
fn socket_try_write(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> Result<usize> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    loop {
        let sent = match bufs {
            [one] => nix::sys::socket::send(fd.as_raw_fd(), one, flags),
            _ => nix::sys::socket::sendmsg::<()>(fd.as_raw_fd(), bufs, &[], flags, None),
        };
        match sent {
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Err(Error::would_block("sendmsg")),
            other => return other.map_err(|e| Error::from_errno("sendmsg", e)),
        }
    }
}

/// Stream sockets are byte streams with non-blocking reads and writes available per call.
macro_rules! socket_ready {
    ($ty:ty) => {
        impl ReadReady for $ty {
            fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
                socket_try_read(self.as_fd(), buf)
            }

            fn wait_readable(&self, deadline: Deadline) -> Result<()> {
                poll_fd(self, PollFlags::POLLIN, deadline, "poll").map(drop)
            }
        }

        impl WriteReady for $ty {
            fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
                socket_try_write(self.as_fd(), bufs)
            }

            fn wait_writable(&self, deadline: Deadline) -> Result<()> {
                poll_fd(self, PollFlags::POLLOUT, deadline, "poll").map(drop)
            }

            fn shutdown_write(&mut self) -> Result<()> {
                self.shutdown(std::net::Shutdown::Write)
                    .map_err(|e| Error::from(e).with_op("shutdown(SHUT_WR)"))
            }
        }
    };
}

socket_ready!(UnixStream);
socket_ready!(TcpStream);
// Shared references too, as std reads and writes through them: a reader and a writer on
// one stream without a second descriptor.
socket_ready!(&UnixStream);
socket_ready!(&TcpStream);
