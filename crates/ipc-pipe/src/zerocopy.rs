//! Moving data without copying it through user space: `splice`, `tee` and `vmsplice`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};

use std::time::Duration;

use ipc_core::{Deadline, Error, Result};
use nix::fcntl::SpliceFFlags;
use nix::poll::PollFlags;

use crate::end::{Wait, subject, wait_for};
use crate::{PipeReader, PipeWriter, sys};

/// Waits until a splice from `from` to `to` can make progress, or the deadline passes:
/// first for room in `to`, then for data in `from`.
fn wait_splice(
    from: Option<BorrowedFd<'_>>,
    to: BorrowedFd<'_>,
    deadline: Deadline,
    op: &'static str,
) -> Result<()> {
    let room = wait_for(to, PollFlags::POLLOUT, Deadline::after(Duration::ZERO), op);
    match (room, from) {
        (Ok(_), Some(from)) => wait_for(from, PollFlags::POLLIN, deadline, op).map(drop),
        (Ok(_), None) => Ok(()),
        (Err(err), _) if err.is_timeout() => {
            wait_for(to, PollFlags::POLLOUT, deadline, op).map(drop)
        }
        (Err(err), _) => Err(err),
    }
}

/// The flags for a call with `wait`: non-blocking pipe operations unless it may block.
fn flags(wait: Wait, base: SpliceFFlags) -> SpliceFFlags {
    match wait {
        Wait::Block => base,
        Wait::Try | Wait::Until(_) => base | SpliceFFlags::SPLICE_F_NONBLOCK,
    }
}

/// What to do after `EAGAIN`: fail with `WouldBlock`, or wait (as long as `wait` allows).
fn after_eagain(
    from: Option<BorrowedFd<'_>>,
    to: BorrowedFd<'_>,
    wait: Wait,
    op: &'static str,
) -> Result<()> {
    match wait {
        Wait::Try => Err(Error::would_block(op)),
        // Blocking calls meet EAGAIN only on descriptors in non-blocking mode (FIFO ends).
        Wait::Block => wait_splice(from, to, Deadline::NEVER, op),
        Wait::Until(deadline) => wait_splice(from, to, deadline, op),
    }
}

fn splice_error(op: &'static str, errno: nix::errno::Errno, fd: BorrowedFd<'_>) -> Error {
    if errno == nix::errno::Errno::EPIPE {
        sys::consume_sigpipe();
    }
    Error::from_errno(op, errno).with_subject(subject(fd))
}

fn splice_with(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize, wait: Wait) -> Result<usize> {
    sys::block_sigpipe();
    let flags = flags(wait, SpliceFFlags::SPLICE_F_MOVE);
    loop {
        match nix::fcntl::splice(from, None, to, None, len, flags) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => after_eagain(Some(from), to, wait, "splice")?,
            Err(errno) => return Err(splice_error("splice", errno, to)),
        }
    }
}

/// Moves up to `len` bytes from `from` to `to` inside the kernel (`splice(2)`); one of the
/// two must be a pipe, the other may be a pipe, a file or a socket. Returns the bytes moved;
/// `Ok(0)` means `from` is at end of file.
///
/// Like every write of this crate, a splice into a pipe without readers fails with
/// `BrokenPipe` and never raises `SIGPIPE`.
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut r1, mut w1) = ipc_pipe::pipe()?;
/// let (mut r2, w2) = ipc_pipe::pipe()?;
/// w1.write_all(b"moved, not copied")?;
/// let n = ipc_pipe::splice(&r1, &w2, 1024)?;
/// assert_eq!(n, 17);
/// let mut buf = [0u8; 17];
/// r2.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"moved, not copied");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `InvalidInput` if neither side is a pipe or a side does not support splicing;
/// `BrokenPipe` if `to` is a pipe without readers; other `splice` errors.
pub fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> Result<usize> {
    splice_with(from.as_fd(), to.as_fd(), len, Wait::Block)
}

/// [`splice`] without waiting: the pipe side is used in non-blocking mode
/// (`SPLICE_F_NONBLOCK`). A socket or file on the other side waits unless it is itself in
/// non-blocking mode.
///
/// # Errors
///
/// `WouldBlock` if the pipe is empty (or full); otherwise as [`splice`].
pub fn try_splice(from: impl AsFd, to: impl AsFd, len: usize) -> Result<usize> {
    splice_with(from.as_fd(), to.as_fd(), len, Wait::Try)
}

/// [`splice`], waiting at most `timeout` for data in `from` and room in `to`.
///
/// # Errors
///
/// `TimedOut` if nothing could be moved in time; otherwise as [`splice`].
pub fn splice_timeout(
    from: impl AsFd,
    to: impl AsFd,
    len: usize,
    timeout: Duration,
) -> Result<usize> {
    splice_with(
        from.as_fd(),
        to.as_fd(),
        len,
        Wait::Until(Deadline::after(timeout)),
    )
}

fn tee_with(from: &PipeReader, to: &PipeWriter, len: usize, wait: Wait) -> Result<usize> {
    sys::block_sigpipe();
    let flags = flags(wait, SpliceFFlags::empty());
    loop {
        match nix::fcntl::tee(from, to, len, flags) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                after_eagain(Some(from.as_fd()), to.as_fd(), wait, "tee")?
            }
            Err(errno) => return Err(splice_error("tee", errno, to.as_fd())),
        }
    }
}

/// Copies up to `len` bytes from one pipe to another without consuming them (`tee(2)`):
/// the data stays readable from `from`. The kernel shares the pages; nothing is copied.
///
/// # Errors
///
/// `BrokenPipe` if `to` has no readers; other `tee` errors.
pub fn tee(from: &PipeReader, to: &PipeWriter, len: usize) -> Result<usize> {
    tee_with(from, to, len, Wait::Block)
}

/// [`tee`] without waiting.
///
/// # Errors
///
/// `WouldBlock` if `from` is empty or `to` is full; otherwise as [`tee`].
pub fn try_tee(from: &PipeReader, to: &PipeWriter, len: usize) -> Result<usize> {
    tee_with(from, to, len, Wait::Try)
}

/// [`tee`], waiting at most `timeout`.
///
/// # Errors
///
/// `TimedOut` if nothing could be copied in time; otherwise as [`tee`].
pub fn tee_timeout(
    from: &PipeReader,
    to: &PipeWriter,
    len: usize,
    timeout: Duration,
) -> Result<usize> {
    tee_with(from, to, len, Wait::Until(Deadline::after(timeout)))
}

/// Sends buffers through a pipe without copying them (`vmsplice(2)`): the pipe refers to
/// the buffer's pages, and the reader's `read` copies straight from them.
///
/// That is only correct while the pages stay unchanged until the reader has consumed them,
/// so the writer takes ownership of every buffer it sends and gives it back through
/// [`reclaim`](VmspliceWriter::reclaim) only once the bytes have left the pipe. A sender
/// that reuses reclaimed buffers allocates nothing in the steady state.
///
/// ```
/// use std::io::Read;
/// use ipc_pipe::VmspliceWriter;
///
/// let (mut reader, writer) = ipc_pipe::pipe()?;
/// let mut sender = VmspliceWriter::new(writer);
/// sender.send(b"zero copy".to_vec())?;
/// assert!(sender.reclaim()?.is_none(), "still in the pipe");
/// let mut buf = [0u8; 9];
/// reader.read_exact(&mut buf)?;
/// assert_eq!(sender.reclaim()?.as_deref(), Some(&b"zero copy"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What the reader must do
///
/// "Consumed" means the bytes have left this pipe. A reader that copies them out (`read`,
/// or `splice` into a file) is fine. A reader that moves the pages on without copying
/// (`splice` or `tee` into another pipe, or `splice` into a socket that sends pages
/// without copying) keeps referring to the buffer after it was reclaimed; do not reuse
/// reclaimed buffers with such a reader.
///
/// When the writer is dropped with buffers still in the pipe, those buffers are leaked on
/// purpose (at most the pipe's capacity), so that their memory can never be reused while
/// the reader may still read it.
#[derive(Debug)]
pub struct VmspliceWriter {
    writer: PipeWriter,
    /// Buffers given to the pipe, with the stream position just past each.
    in_flight: VecDeque<(u64, Vec<u8>)>,
    /// Bytes given to the pipe so far.
    sent: u64,
    /// Bytes known to have left the pipe, as of the last `FIONREAD`; it only grows.
    consumed: u64,
}

impl VmspliceWriter {
    /// Sends through `writer`.
    pub fn new(writer: PipeWriter) -> Self {
        VmspliceWriter {
            writer,
            in_flight: VecDeque::new(),
            sent: 0,
            consumed: 0,
        }
    }

    /// Gives `buf` to the pipe, waiting for room as a blocking write does. Empty buffers
    /// are returned by the next `reclaim` at once.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` if no reader is left (the part of `buf` already in the pipe stays
    /// there; the buffer is kept until it is consumed); other `vmsplice` errors.
    #[doc(alias = "vmsplice")]
    pub fn send(&mut self, buf: Vec<u8>) -> Result<()> {
        self.send_with(buf, Wait::Block).map(drop)
    }

    /// Gives as much of `buf` to the pipe as fits now and returns how many bytes that was;
    /// the rest of `buf` is not sent. The buffer is kept until its sent part is consumed
    /// (at once, if nothing was sent), like every sent buffer.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if nothing fits; otherwise as [`send`](VmspliceWriter::send).
    pub fn try_send(&mut self, buf: Vec<u8>) -> Result<usize> {
        self.send_with(buf, Wait::Try)
    }

    /// Gives `buf` to the pipe, waiting at most `timeout` for room; returns how many bytes
    /// went in, fewer than `buf.len()` if the time ran out part-way (the rest is not sent).
    ///
    /// # Errors
    ///
    /// `TimedOut` if nothing went in; otherwise as [`send`](VmspliceWriter::send).
    pub fn send_timeout(&mut self, buf: Vec<u8>, timeout: Duration) -> Result<usize> {
        self.send_with(buf, Wait::Until(Deadline::after(timeout)))
    }

    fn send_with(&mut self, buf: Vec<u8>, wait: Wait) -> Result<usize> {
        sys::block_sigpipe();
        let flags = flags(wait, SpliceFFlags::empty());
        let mut done = 0;
        let result = loop {
            if done == buf.len() {
                break Ok(done);
            }
            let iov = [IoSlice::new(&buf[done..])];
            match nix::fcntl::vmsplice(&self.writer, &iov, flags) {
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    match after_eagain(None, self.writer.as_fd(), wait, "vmsplice") {
                        Ok(()) => {}
                        // Part of the buffer is in: report that, as a short write does.
                        Err(_) if done > 0 => break Ok(done),
                        Err(err) => break Err(err),
                    }
                }
                Err(errno) => break Err(splice_error("vmsplice", errno, self.writer.as_fd())),
            }
        };
        // Whatever part went in is referenced by the pipe until consumed.
        self.sent += done as u64;
        self.in_flight.push_back((self.sent, buf));
        result
    }

    /// A buffer whose bytes have all left the pipe, to reuse or drop; `None` if the oldest
    /// one is still (partly) in the pipe.
    ///
    /// # Errors
    ///
    /// The `FIONREAD` error.
    pub fn reclaim(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(&(end, _)) = self.in_flight.front() else {
            return Ok(None);
        };
        // Ask the kernel only when what is already known does not settle it, so that
        // draining several buffers costs one `FIONREAD`.
        if end > self.consumed {
            let unread = self.writer.unread_bytes()? as u64;
            self.consumed = self.sent.saturating_sub(unread);
        }
        if end <= self.consumed {
            return Ok(self.in_flight.pop_front().map(|(_, buf)| buf));
        }
        Ok(None)
    }

    /// How many buffers are still in the pipe.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The pipe's writing end, for capacity and waits.
    pub fn writer(&self) -> &PipeWriter {
        &self.writer
    }
}

/// The pipe's writing end: `Async<VmspliceWriter>` awaits room with `writable()`, then
/// [`try_send`](VmspliceWriter::try_send) gives what fits.
impl ipc_core::Source for VmspliceWriter {
    fn readiness(&self, interest: ipc_core::Interest) -> Result<ipc_core::Readiness> {
        self.writer.readiness(interest)
    }
}

impl Drop for VmspliceWriter {
    fn drop(&mut self) {
        // See the type's documentation: memory the reader may still read through the pipe
        // must never be handed back to the allocator.
        for (_, buf) in self.in_flight.drain(..) {
            std::mem::forget(buf);
        }
    }
}
