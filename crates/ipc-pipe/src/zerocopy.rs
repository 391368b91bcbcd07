//! Moving data without copying it through user space: `splice`, `tee` and `vmsplice`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};

use ipc_core::{Deadline, Error, Result};
use nix::fcntl::SpliceFFlags;
use nix::poll::PollFlags;

use crate::end::{subject, wait_for};
use crate::{PipeReader, PipeWriter, sys};

/// Waits until a splice from `from` to `to` can make progress, for descriptors in
/// non-blocking mode (FIFO ends are): first for room in `to`, then for data in `from`.
fn wait_splice(from: Option<BorrowedFd<'_>>, to: BorrowedFd<'_>, op: &'static str) -> Result<()> {
    let room = wait_for(
        to,
        PollFlags::POLLOUT,
        Deadline::after(std::time::Duration::ZERO),
        op,
    );
    match (room, from) {
        (Ok(_), Some(from)) => wait_for(from, PollFlags::POLLIN, Deadline::NEVER, op).map(drop),
        (Ok(_), None) => Ok(()),
        (Err(err), _) if err.is_timeout() => {
            wait_for(to, PollFlags::POLLOUT, Deadline::NEVER, op).map(drop)
        }
        (Err(err), _) => Err(err),
    }
}

fn splice_error(op: &'static str, errno: nix::errno::Errno, fd: BorrowedFd<'_>) -> Error {
    if errno == nix::errno::Errno::EPIPE {
        sys::consume_sigpipe();
    }
    Error::from_errno(op, errno).with_subject(subject(fd))
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
    sys::block_sigpipe();
    let (from, to) = (from.as_fd(), to.as_fd());
    loop {
        match nix::fcntl::splice(from, None, to, None, len, SpliceFFlags::SPLICE_F_MOVE) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait_splice(Some(from), to, "splice")?,
            Err(errno) => return Err(splice_error("splice", errno, to)),
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
    sys::block_sigpipe();
    loop {
        match nix::fcntl::tee(from, to, len, SpliceFFlags::empty()) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => wait_splice(Some(from.as_fd()), to.as_fd(), "tee")?,
            Err(errno) => return Err(splice_error("tee", errno, to.as_fd())),
        }
    }
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
        sys::block_sigpipe();
        let mut done = 0;
        let result = loop {
            if done == buf.len() {
                break Ok(());
            }
            let iov = [IoSlice::new(&buf[done..])];
            match nix::fcntl::vmsplice(&self.writer, &iov, SpliceFFlags::empty()) {
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    if let Err(err) = wait_splice(None, self.writer.as_fd(), "vmsplice") {
                        break Err(err);
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

impl Drop for VmspliceWriter {
    fn drop(&mut self) {
        // See the type's documentation: memory the reader may still read through the pipe
        // must never be handed back to the allocator.
        for (_, buf) in self.in_flight.drain(..) {
            std::mem::forget(buf);
        }
    }
}
