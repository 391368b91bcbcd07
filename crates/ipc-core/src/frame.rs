//! Length-prefixed messages over any byte stream.

use std::io::{self, IoSlice, Read, Write};
use std::time::Duration;

use crate::{
    Deadline, Error, Interest, Limit, MessageReceiver, MessageSender, ReadReady, Readiness, Result,
    Source, WriteReady,
};

/// The bytes of the header in front of every frame: the payload length, a little-endian
/// `u32`.
pub const FRAME_HEADER_LEN: usize = 4;

/// The default largest message, 1 MiB. A length above the maximum is rejected before any
/// memory is set aside for it.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// `PIPE_BUF` on Linux: the largest write to a pipe that the kernel never interleaves with
/// another writer's.
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// The largest frame a reader buffers internally in one read; larger payloads are read
/// straight into the caller's buffer.
const READ_CHUNK: usize = 64 * 1024;

use crate::internal::Wait;

/// Sends length-prefixed messages over a byte stream.
///
/// Each message goes out as a 4-byte little-endian length and the payload, in one vectored
/// write where the stream takes it. `SIGPIPE` is blocked on the writing thread first (see
/// [`block_sigpipe`](crate::block_sigpipe)), so a closed peer is an error, never a death. Messages larger than
/// [`max_message_size`](FramedWriter::max_message_size) are refused before anything is
/// written.
///
/// With several writers on one pipe or FIFO, use [`FramedWriter::atomic`]: it refuses
/// frames larger than [`PIPE_BUF`], and the kernel then never interleaves two writers'
/// frames.
///
/// ```
/// use ipc_core::{FramedReader, FramedWriter};
///
/// let mut wire = Vec::new();
/// FramedWriter::new(&mut wire).send(b"hello")?;
/// let mut reader = FramedReader::new(&wire[..]);
/// let mut buf = [0u8; 16];
/// let n = reader.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), ipc_core::Error>(())
/// ```
///
/// # A send that does not wait (or not for long)
///
/// `try_send` and `send_timeout` fail with nothing sent when the stream has no room (before
/// the deadline). A frame too large to go out in one write may be cut after its first
/// bytes: the message is then *accepted* (the call returns `Ok`), its rest is kept in the
/// writer ([`has_pending`](FramedWriter::has_pending)) and goes out before the next
/// message, or with [`try_flush`](FramedWriter::try_flush) or
/// [`flush`](FramedWriter::flush). So a `try_send` never waits, which is what an async task
/// needs (`Async<FramedWriter<_>>` is a message sender). Flush before dropping the writer:
/// a reader that sees the stream end inside a frame reports the cut, never a partial
/// message. A write error in the middle of a frame *breaks* the writer: every later send
/// fails.
#[derive(Debug)]
pub struct FramedWriter<W> {
    inner: W,
    max: usize,
    atomic: bool,
    broken: bool,
    scratch: Vec<u8>,
    /// The rest of an accepted frame that the stream had no room for, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
}

impl<W: Write> FramedWriter<W> {
    /// Frames messages onto `inner`, up to [`DEFAULT_MAX_MESSAGE_SIZE`] bytes each.
    pub fn new(inner: W) -> Self {
        FramedWriter {
            inner,
            max: DEFAULT_MAX_MESSAGE_SIZE,
            atomic: false,
            broken: false,
            scratch: Vec::new(),
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Sets the largest message, in bytes (at most `u32::MAX`).
    #[must_use]
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max = max.min(u32::MAX as usize);
        if self.atomic {
            self.max = self.max.min(PIPE_BUF - FRAME_HEADER_LEN);
        }
        self
    }

    /// Makes every frame a single write of at most [`PIPE_BUF`] bytes (so messages of at
    /// most `PIPE_BUF - 4` bytes), which the kernel never interleaves with other writers'
    /// writes to the same pipe.
    #[must_use]
    pub fn atomic(mut self) -> Self {
        self.atomic = true;
        self.max = self.max.min(PIPE_BUF - FRAME_HEADER_LEN);
        self
    }

    /// The largest message this writer sends.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream, mutably. Writing to it directly corrupts the framing.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Gives the stream back. Any [pending](FramedWriter::has_pending) rest of a frame is
    /// dropped: flush first.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Whether the rest of an accepted frame waits to go out (see the type's docs).
    pub fn has_pending(&self) -> bool {
        self.pending_at < self.pending.len()
    }

    /// Keeps what a cut write left of the frame `header` + `msg`, of which `written` bytes
    /// went out.
    fn keep_pending(&mut self, header: &[u8; FRAME_HEADER_LEN], msg: &[u8], written: usize) {
        self.pending.clear();
        self.pending_at = 0;
        if written < FRAME_HEADER_LEN {
            self.pending.extend_from_slice(&header[written..]);
            self.pending.extend_from_slice(msg);
        } else {
            self.pending
                .extend_from_slice(&msg[written - FRAME_HEADER_LEN..]);
        }
    }

    /// Records that `n` more pending bytes went out.
    fn advance_pending(&mut self, n: usize) {
        self.pending_at += n;
        if !self.has_pending() {
            self.pending.clear();
            self.pending_at = 0;
        }
    }

    /// A write error in the middle of a frame: the stream cannot carry another.
    fn break_on(&mut self, err: Error, op: &'static str) -> Error {
        self.broken = true;
        if err.op().is_empty() {
            err.with_op(op)
        } else {
            err
        }
    }

    fn check(&self, op: &'static str, msg: &[u8]) -> Result<[u8; FRAME_HEADER_LEN]> {
        if self.broken {
            return Err(Error::new(
                op,
                io::ErrorKind::BrokenPipe,
                "an earlier send was cut in the middle of a frame; the stream is unusable",
            ));
        }
        if msg.len() > self.max {
            let limit = if self.atomic {
                Limit::new(
                    "PIPE_BUF (atomic frames)",
                    (PIPE_BUF - FRAME_HEADER_LEN) as u64,
                )
            } else {
                Limit::new("FramedWriter::max_message_size", self.max as u64)
            };
            return Err(Error::limit_exceeded(
                op,
                "message size",
                msg.len() as u64,
                limit,
            ));
        }
        // `max` is at most `u32::MAX`, so the length fits.
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        Ok(len.to_le_bytes())
    }

    /// Sends `msg`, waiting as long as the stream needs.
    ///
    /// # Errors
    ///
    /// [`Error::is_limit_exceeded`] for an oversized message (nothing is written); the
    /// stream's write error otherwise (peer gone if the reader is gone).
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        let header = self.check("send", msg)?;
        // std's sockets send with MSG_NOSIGNAL in `write` but not in `write_vectored`
        // (`writev`), which would let a closed peer kill a program that has not ignored
        // SIGPIPE: block it on this thread first, as every write path of the toolkit does.
        crate::block_sigpipe();
        if self.has_pending() {
            let rest = std::mem::take(&mut self.pending);
            let result = write_all(
                &mut self.inner,
                &mut [IoSlice::new(&rest[self.pending_at..])],
            );
            self.pending = rest;
            match result {
                Ok(()) => self.advance_pending(self.pending.len() - self.pending_at),
                Err((_, err)) => return Err(self.break_on(err, "send")),
            }
        }
        let result = if self.atomic {
            // One contiguous write: vectored writes to a pipe are atomic too, but not
            // every stream promises that, and the frame is small.
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(&header);
            scratch.extend_from_slice(msg);
            let result = write_all(&mut self.inner, &mut [IoSlice::new(&scratch)]);
            self.scratch = scratch;
            result
        } else {
            write_all(
                &mut self.inner,
                &mut [IoSlice::new(&header), IoSlice::new(msg)],
            )
        };
        if let Err((_, err)) = &result {
            if err.raw_os_error() == Some(libc::EPIPE) {
                crate::consume_sigpipe();
            }
        }
        self.settle(result, "send")
    }

    /// Turns a write's outcome into the send's, marking the writer broken if the frame was
    /// cut after some of its bytes were written.
    fn settle(
        &mut self,
        result: std::result::Result<(), (usize, Error)>,
        op: &'static str,
    ) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err((written, err)) if written > 0 => Err(self.break_on(err, op)),
            Err((_, err)) => Err(if err.op().is_empty() {
                err.with_op(op)
            } else {
                err
            }),
        }
    }
}

/// Writes all of `bufs`; on failure returns how many bytes had been written.
fn write_all<W: Write>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> std::result::Result<(), (usize, Error)> {
    let mut written = 0;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => {
                return Err((
                    written,
                    Error::new(
                        "write",
                        io::ErrorKind::WriteZero,
                        "the stream accepted no bytes",
                    ),
                ));
            }
            Ok(n) => {
                written += n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err((written, Error::from(err))),
        }
    }
    Ok(())
}

impl<W: WriteReady> FramedWriter<W> {
    /// Sends the [pending](FramedWriter::has_pending) rest of a frame if the stream has
    /// room for all of it now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if some of it is still pending; a write error (which breaks the
    /// writer).
    pub fn try_flush(&mut self) -> Result<()> {
        self.flush_with(Wait::Try, "try_flush")
    }

    /// Sends the pending rest of a frame, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// A write error (which breaks the writer): peer gone if the reader is gone.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_with(Wait::Block, "flush")
    }

    fn flush_with(&mut self, wait: Wait, op: &'static str) -> Result<()> {
        while self.has_pending() {
            match self
                .inner
                .try_write_vectored(&[IoSlice::new(&self.pending[self.pending_at..])])
            {
                Ok(n) => self.advance_pending(n),
                Err(err) if err.is_interrupted() => {}
                Err(err) if err.is_would_block() => match wait {
                    Wait::Try => return Err(Error::would_block(op)),
                    Wait::Block => self.inner.wait_writable(Deadline::NEVER)?,
                    Wait::Until(deadline) => self.inner.wait_writable(deadline)?,
                },
                Err(err) => return Err(self.break_on(err, op)),
            }
        }
        Ok(())
    }

    fn send_with(&mut self, msg: &[u8], wait: Wait, op: &'static str) -> Result<()> {
        let header = self.check(op, msg)?;
        // The rest of an accepted frame goes first; until it has, nothing new is taken.
        self.flush_with(wait, op)?;
        let result = if self.atomic || msg.len() + FRAME_HEADER_LEN <= PIPE_BUF {
            // Small frames go out in one contiguous write, which a pipe takes whole or not
            // at all: a non-blocking send then never cuts a frame.
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            scratch.extend_from_slice(&header);
            scratch.extend_from_slice(msg);
            let result = self.write_ready(&mut [IoSlice::new(&scratch)], wait, op);
            self.scratch = scratch;
            result
        } else {
            self.write_ready(&mut [IoSlice::new(&header), IoSlice::new(msg)], wait, op)
        };
        match result {
            // Cut by a full stream or the deadline after it started: the message is
            // accepted and its rest goes out first next time.
            Err((written, err)) if written > 0 && (err.is_would_block() || err.is_timeout()) => {
                self.keep_pending(&header, msg, written);
                Ok(())
            }
            other => self.settle(other, op),
        }
    }

    /// Writes all of `bufs` without blocking, waiting for room as `wait` allows; on failure
    /// returns how many bytes had been written.
    fn write_ready(
        &mut self,
        mut bufs: &mut [IoSlice<'_>],
        wait: Wait,
        op: &'static str,
    ) -> std::result::Result<(), (usize, Error)> {
        let mut written = 0;
        while !bufs.is_empty() {
            match self.inner.try_write_vectored(bufs) {
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut bufs, n);
                }
                Err(err) if err.is_interrupted() => {}
                Err(err) if err.is_would_block() => {
                    let waited = match wait {
                        Wait::Try => Err(Error::would_block(op)),
                        Wait::Block => self.inner.wait_writable(Deadline::NEVER),
                        Wait::Until(deadline) => self.inner.wait_writable(deadline),
                    };
                    waited.map_err(|err| (written, err))?;
                }
                Err(err) => return Err((written, err)),
            }
        }
        Ok(())
    }
}

impl<W: WriteReady> MessageSender for FramedWriter<W> {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        FramedWriter::send(self, msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Try, "try_send")
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Wait::Until(Deadline::after(timeout)), "send_timeout")
    }

    fn max_message_size(&self) -> usize {
        self.max
    }

    fn try_flush(&mut self) -> Result<()> {
        FramedWriter::try_flush(self)
    }
}

/// One read of at least one byte into `buf`, or `Ok(0)` at end of stream.
type ReadFn<'a, R> = &'a mut dyn FnMut(&mut R, &mut [u8]) -> Result<usize>;

/// Receives length-prefixed messages from a byte stream, as written by [`FramedWriter`].
///
/// Frames may arrive split at any byte and are reassembled; small frames are read many at a
/// time through an internal buffer, large ones straight into the caller's buffer. A length
/// above [`max_message_size`](FramedReader::max_message_size) is rejected before any memory
/// is set aside, and the reader then refuses to go on (the stream cannot be resynchronised).
///
/// When the next message does not fit the caller's buffer, the error says how large a
/// buffer it needs ([`Error::needed_len`]) and the message stays to be received. A receive
/// that times out keeps what it has read of a frame for the next call. A stream that ends
/// inside a frame gives a peer-gone error, never a partial message; a stream that ends
/// between frames gives a peer-gone error too.
#[derive(Debug)]
pub struct FramedReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    poisoned: Option<Error>,
    /// The last message was large: read headers alone and payloads straight into the
    /// caller's buffer, rather than reading ahead.
    direct: bool,
}

impl<R: Read> FramedReader<R> {
    /// Reads frames from `inner`, up to [`DEFAULT_MAX_MESSAGE_SIZE`] bytes each.
    pub fn new(inner: R) -> Self {
        FramedReader {
            inner,
            max: DEFAULT_MAX_MESSAGE_SIZE,
            buf: Vec::new(),
            start: 0,
            end: 0,
            poisoned: None,
            direct: false,
        }
    }

    /// Sets the largest message accepted, in bytes (at most `u32::MAX`).
    #[must_use]
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max = max.min(u32::MAX as usize);
        self
    }

    /// The largest message this reader accepts.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives the stream back; bytes already read ahead from it are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// How many bytes were read ahead from the stream and not returned yet (the start of
    /// the next messages). A poller that reports the stream readable knows nothing of them:
    /// call [`try_recv`](MessageReceiver::try_recv) until it would block before waiting.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Receives the next message into `buf`, waiting as long as it takes, and returns its
    /// length.
    ///
    /// # Errors
    ///
    /// See [`MessageReceiver`]: buffer too small (message kept), peer gone (end of stream:
    /// between frames, or inside one, which [`Error::is_cut_short`] tells), corrupted (a
    /// length above the maximum), or the read error.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_with(buf, "recv", &mut |inner: &mut R, b: &mut [u8]| loop {
            match inner.read(b) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => return other.map_err(|e| Error::from(e).with_op("read")),
            }
        })
    }

    fn unread(&self) -> usize {
        self.end - self.start
    }

    /// Reads more into the internal buffer: at least one byte and room for at least `want`
    /// more. `Ok(false)` at end of stream.
    fn fill(&mut self, want: usize, read: ReadFn<'_, R>) -> Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        // Keep room for a good-sized read: a partial frame left near the end of the buffer
        // must not shrink the reads that follow to a few bytes each.
        if self.start > 0 && self.buf.len() - self.end < want.max(READ_CHUNK / 2) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end + want > self.buf.len() {
            let size = (self.end + want).max(READ_CHUNK.min(self.max + FRAME_HEADER_LEN));
            self.buf.resize(size, 0);
        }
        // With large messages, read only what is asked for, so that payloads go straight
        // into the caller's buffer instead of through this one.
        let end = self.end;
        let limit = if self.direct {
            end + want
        } else {
            self.buf.len()
        };
        let n = read(&mut self.inner, &mut self.buf[end..limit])?;
        self.end += n;
        Ok(n > 0)
    }

    fn recv_with(
        &mut self,
        out: &mut [u8],
        op: &'static str,
        read: ReadFn<'_, R>,
    ) -> Result<usize> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        while self.unread() < FRAME_HEADER_LEN {
            if !self.fill(FRAME_HEADER_LEN - self.unread(), read)? {
                return Err(self.ended(op));
            }
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(&self.buf[self.start..self.start + FRAME_HEADER_LEN]);
        let len = u32::from_le_bytes(header) as usize;
        if len > self.max {
            let err = Error::corrupted(
                op,
                format!(
                    "the peer sent a frame of {len} bytes, above the maximum of {} bytes; the stream cannot be read further",
                    self.max
                ),
            );
            self.poisoned = Some(err.clone());
            return Err(err);
        }
        if len > out.len() {
            return Err(Error::buffer_too_small(op, len, out.len()));
        }
        self.direct = len >= READ_CHUNK / 2;
        let have = (self.unread() - FRAME_HEADER_LEN).min(len);
        if len - have < READ_CHUNK / 2 {
            // The rest is small: read it (and whatever follows) into the internal buffer.
            while self.unread() - FRAME_HEADER_LEN < len {
                let missing = len - (self.unread() - FRAME_HEADER_LEN);
                if !self.fill(missing, read)? {
                    return Err(self.ended(op));
                }
            }
            let body = self.start + FRAME_HEADER_LEN;
            out[..len].copy_from_slice(&self.buf[body..body + len]);
            self.start = body + len;
            return Ok(len);
        }
        // The rest is large: read it straight into the caller's buffer, exactly up to the
        // frame's end. If that is cut short, keep what arrived for the next call.
        let body = self.start + FRAME_HEADER_LEN;
        out[..have].copy_from_slice(&self.buf[body..body + have]);
        let mut got = have;
        while got < len {
            match read(&mut self.inner, &mut out[got..len]) {
                Ok(0) => {
                    self.keep(&out[have..got]);
                    return Err(self.ended(op));
                }
                Ok(n) => got += n,
                Err(err) => {
                    self.keep(&out[have..got]);
                    return Err(err);
                }
            }
        }
        self.start = 0;
        self.end = 0;
        Ok(len)
    }

    /// Appends bytes of the current frame that were read into the caller's buffer to the
    /// internal buffer, behind the header and the part already there.
    fn keep(&mut self, part: &[u8]) {
        if self.end + part.len() > self.buf.len() {
            self.buf.resize(self.end + part.len(), 0);
        }
        self.buf[self.end..self.end + part.len()].copy_from_slice(part);
        self.end += part.len();
    }

    fn ended(&self, op: &'static str) -> Error {
        if self.unread() == 0 {
            Error::peer_gone(op, "the writer closed the stream")
        } else {
            Error::peer_gone_mid_message(
                op,
                format!(
                    "the stream ended inside a frame ({} bytes of it had arrived); the partial message is dropped",
                    self.unread()
                ),
            )
        }
    }
}

impl<R: ReadReady> FramedReader<R> {
    fn recv_ready(&mut self, out: &mut [u8], wait: Wait, op: &'static str) -> Result<usize> {
        self.recv_with(out, op, &mut |inner: &mut R, b: &mut [u8]| loop {
            match inner.try_read(b) {
                Err(err) if err.is_interrupted() => {}
                Err(err) if err.is_would_block() => match wait {
                    Wait::Try => return Err(Error::would_block(op)),
                    Wait::Block => inner.wait_readable(Deadline::NEVER)?,
                    Wait::Until(deadline) => inner.wait_readable(deadline)?,
                },
                other => return other,
            }
        })
    }
}

impl<R: ReadReady> MessageReceiver for FramedReader<R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        FramedReader::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_ready(buf, Wait::Try, "try_recv")
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_ready(buf, Wait::Until(Deadline::after(timeout)), "recv_timeout")
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

/// The stream's readiness, for a [`Selector`](crate::Selector) or `Async`. The reader reads
/// ahead, so frames can wait in its buffer while the stream has nothing more: after a
/// wake-up, receive until `WouldBlock` before waiting again (`Async::recv` does).
impl<R: Source> Source for FramedReader<R> {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        self.inner.readiness(interest)
    }
}

/// The stream's readiness: writable when the stream has room.
impl<W: Source> Source for FramedWriter<W> {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        self.inner.readiness(interest)
    }
}

#[cfg(test)]
mod tests;
