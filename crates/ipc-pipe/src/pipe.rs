//! Anonymous pipes: `pipe()`, [`PipeReader`] and [`PipeWriter`].

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use ipc_core::{Deadline, Error, ReadReady, Result, WriteReady};
use nix::fcntl::OFlag;
use nix::poll::PollFlags;

use crate::end::{Mode, Wait, pipe_end, subject, wait_for};
use crate::sys;

/// Creates a pipe (`pipe2` with `O_CLOEXEC`): bytes written to the [`PipeWriter`] come out
/// of the [`PipeReader`], in order.
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut reader, mut writer) = ipc_pipe::pipe()?;
/// writer.write_all(b"hello")?;
/// drop(writer); // the reader sees end of file once every writer is gone
/// let mut text = String::new();
/// reader.read_to_string(&mut text)?;
/// assert_eq!(text, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// The `pipe2` error, such as `EMFILE` (too many open descriptors).
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(PipeReader, PipeWriter)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::from_errno("pipe2", e))?;
    Ok((PipeReader::from(r), PipeWriter::from(w)))
}

/// The reading end of a pipe or FIFO.
///
/// `Read` waits for data (unless [non-blocking](PipeReader::set_nonblocking)) and returns
/// `Ok(0)` once every writer is gone and the pipe is empty. [`try_read`](PipeReader::try_read)
/// never waits and [`read_timeout`](PipeReader::read_timeout) waits at most a given time,
/// in either mode. Signals never fail a read: `EINTR` is retried.
///
/// A FIFO reader opened before any writer does not see end of file until a writer has come
/// and gone: reads wait for the first writer.
#[derive(Debug)]
pub struct PipeReader {
    fd: OwnedFd,
    mode: Mode,
}

pipe_end!(PipeReader, O_RDONLY);

impl PipeReader {
    /// A FIFO's reading end whose descriptor is `O_NONBLOCK` (see [`Mode`]).
    pub(crate) fn from_fifo(fd: OwnedFd) -> Self {
        PipeReader {
            fd,
            mode: Mode::emulated(),
        }
    }

    /// Reads what is there now without waiting, whatever the blocking mode (`preadv2` with
    /// `RWF_NOWAIT`, or `read` on an end with a non-blocking description of its own, see
    /// [`set_nonblocking`](Self::set_nonblocking)).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the pipe is empty and a writer is left (or a FIFO has had no writer
    /// yet); the read error otherwise.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize> {
        self.read_with(&mut [IoSliceMut::new(buf)], Wait::Try, "read")
    }

    /// Reads, waiting at most `timeout` for data.
    ///
    /// # Errors
    ///
    /// `TimedOut` if nothing arrives in time; the read error otherwise.
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.read_with(
            &mut [IoSliceMut::new(buf)],
            Wait::Until(Deadline::after(timeout)),
            "read",
        )
    }

    /// Reads, waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if nothing arrives in time; the read error otherwise.
    pub fn read_deadline(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        self.read_with(&mut [IoSliceMut::new(buf)], Wait::Until(deadline), "read")
    }

    pub(crate) fn read_with(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        wait: Wait,
        op: &'static str,
    ) -> Result<usize> {
        let fd = self.fd.as_fd();
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        loop {
            let nowait = self.mode.nowait(wait);
            match sys::readv(fd, bufs, nowait) {
                Ok(0) if want > 0 => match self.after_empty_read(wait, op)? {
                    Some(n) => return Ok(n),
                    None => continue,
                },
                Ok(n) => return Ok(n),
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => match self.mode.on_would_block(wait, fd)? {
                        None => return Err(Error::would_block(op)),
                        Some(deadline) => {
                            wait_for(fd, PollFlags::POLLIN, deadline, op)
                                .map_err(|e| with_subject(e, fd))?;
                        }
                    },
                    Some(libc::EOPNOTSUPP) if nowait => self.mode.emulate(fd)?,
                    _ => return Err(Error::from(err).with_op(op).with_subject(subject(fd))),
                },
            }
        }
    }

    /// A read returned 0: end of file if the last writer has left (`POLLHUP`). A FIFO that
    /// has had no writer yet also reads 0 but reports no hang-up; then wait for a writer as
    /// `wait` allows. `Some(0)` is end of file, `None` means read again.
    fn after_empty_read(&self, wait: Wait, op: &'static str) -> Result<Option<usize>> {
        let fd = self.fd.as_fd();
        let now = wait_for(fd, PollFlags::POLLIN, Deadline::after(Duration::ZERO), op);
        match now {
            Ok(events) if events.contains(PollFlags::POLLIN) => return Ok(None),
            Ok(events) if events.contains(PollFlags::POLLHUP) => return Ok(Some(0)),
            Ok(_) => {}
            Err(err) if err.is_timeout() => {}
            Err(err) => return Err(with_subject(err, fd)),
        }
        let deadline = match wait {
            Wait::Try => return Err(Error::would_block(op)),
            Wait::Block if self.mode.is_nonblocking(fd)? => return Err(Error::would_block(op)),
            Wait::Block => Deadline::NEVER,
            Wait::Until(deadline) => deadline,
        };
        wait_for(fd, PollFlags::POLLIN, deadline, op).map_err(|e| with_subject(e, fd))?;
        Ok(None)
    }
}

fn with_subject(err: Error, fd: BorrowedFd<'_>) -> Error {
    if err.subject().is_some() {
        err
    } else {
        err.with_subject(subject(fd))
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Read for &PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_with(&mut [IoSliceMut::new(buf)], Wait::Block, "read")?)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        Ok(self.read_with(bufs, Wait::Block, "readv")?)
    }
}

impl ReadReady for PipeReader {
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        PipeReader::try_read(self, buf)
    }

    fn wait_readable(&self, deadline: Deadline) -> Result<()> {
        let fd = self.fd.as_fd();
        wait_for(fd, PollFlags::POLLIN, deadline, "poll")
            .map(drop)
            .map_err(|e| with_subject(e, fd))
    }
}

/// The writing end of a pipe or FIFO.
///
/// `Write` waits for room (unless [non-blocking](PipeWriter::set_nonblocking));
/// [`try_write`](PipeWriter::try_write) never waits and
/// [`write_timeout`](PipeWriter::write_timeout) waits at most a given time. A write of at
/// most [`PIPE_BUF`](ipc_core::PIPE_BUF) bytes is atomic: it is never interleaved with
/// other writers' data, and a non-blocking one is all or nothing.
///
/// Writing when every reader is gone fails with `BrokenPipe`
/// ([`Error::is_peer_gone`]) and never kills the process, whatever the `SIGPIPE`
/// disposition (see the crate documentation for how).
#[derive(Debug)]
pub struct PipeWriter {
    fd: OwnedFd,
    mode: Mode,
}

pipe_end!(PipeWriter, O_WRONLY);

impl PipeWriter {
    /// A FIFO's writing end whose descriptor is `O_NONBLOCK` (see [`Mode`]).
    pub(crate) fn from_fifo(fd: OwnedFd) -> Self {
        PipeWriter {
            fd,
            mode: Mode::emulated(),
        }
    }

    /// Writes what fits now without waiting, whatever the blocking mode (`pwritev2` with
    /// `RWF_NOWAIT`, or `write` on an end with a non-blocking description of its own, see
    /// [`set_nonblocking`](Self::set_nonblocking)).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if nothing fits (a write of at most `PIPE_BUF` bytes that does not fit
    /// whole writes nothing); `BrokenPipe` if no reader is left.
    pub fn try_write(&self, buf: &[u8]) -> Result<usize> {
        self.write_with(&[IoSlice::new(buf)], Wait::Try, "write")
    }

    /// Writes, waiting at most `timeout` for room; returns how much was written.
    ///
    /// # Errors
    ///
    /// `TimedOut` if nothing could be written in time; `BrokenPipe` if no reader is left.
    pub fn write_timeout(&self, buf: &[u8], timeout: Duration) -> Result<usize> {
        self.write_with(
            &[IoSlice::new(buf)],
            Wait::Until(Deadline::after(timeout)),
            "write",
        )
    }

    /// Writes, waiting at most until `deadline`; returns how much was written.
    ///
    /// # Errors
    ///
    /// `TimedOut` if nothing could be written in time; `BrokenPipe` if no reader is left.
    pub fn write_deadline(&self, buf: &[u8], deadline: Deadline) -> Result<usize> {
        self.write_with(&[IoSlice::new(buf)], Wait::Until(deadline), "write")
    }

    pub(crate) fn write_with(
        &self,
        bufs: &[IoSlice<'_>],
        wait: Wait,
        op: &'static str,
    ) -> Result<usize> {
        let fd = self.fd.as_fd();
        loop {
            let nowait = self.mode.nowait(wait);
            match sys::writev(fd, bufs, nowait) {
                Ok(n) => return Ok(n),
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) => match self.mode.on_would_block(wait, fd)? {
                        None => return Err(Error::would_block(op)),
                        Some(deadline) => {
                            wait_for(fd, PollFlags::POLLOUT, deadline, op)
                                .map_err(|e| with_subject(e, fd))?;
                        }
                    },
                    Some(libc::EOPNOTSUPP) if nowait => self.mode.emulate(fd)?,
                    _ => return Err(Error::from(err).with_op(op).with_subject(subject(fd))),
                },
            }
        }
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.write_with(&[IoSlice::new(buf)], Wait::Block, "write")?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.write_with(bufs, Wait::Block, "writev")?)
    }

    /// Pipes have no user-space buffer: a write is in the pipe when it returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteReady for PipeWriter {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.write_with(bufs, Wait::Try, "writev")
    }

    fn wait_writable(&self, deadline: Deadline) -> Result<()> {
        // `POLLERR` (no reader left) also ends the wait: the next write reports it.
        let fd = self.fd.as_fd();
        wait_for(fd, PollFlags::POLLOUT, deadline, "poll")
            .map(drop)
            .map_err(|e| with_subject(e, fd))
    }
}

impl ipc_core::Source for PipeReader {
    /// The end's descriptor, given an `O_NONBLOCK` description of its own the first time
    /// (see [`set_nonblocking`](PipeReader::set_nonblocking)).
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        let readiness = ipc_core::internal::readable_only(
            std::os::fd::AsFd::as_fd(self),
            interest,
            "a pipe's reading end",
        );
        if readiness.is_ok() {
            self.mode.detach(self.fd.as_fd(), OFlag::O_RDONLY);
        }
        readiness
    }
}

impl ipc_core::Source for PipeWriter {
    /// The end's descriptor, given an `O_NONBLOCK` description of its own the first time
    /// (see [`set_nonblocking`](PipeWriter::set_nonblocking)).
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        let readiness = ipc_core::internal::writable_only(
            std::os::fd::AsFd::as_fd(self),
            interest,
            "a pipe's writing end",
        );
        if readiness.is_ok() {
            self.mode.detach(self.fd.as_fd(), OFlag::O_WRONLY);
        }
        readiness
    }
}
