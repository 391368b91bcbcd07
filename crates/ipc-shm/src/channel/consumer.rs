//! The consuming end: copies and borrows out of the ring.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::Wait;
use ipc_core::{Deadline, Error, MessageReceiver, Result};

use crate::SharedMemory;

use super::ChannelOptions;
use super::layout::*;
use super::ring::{HEAD_POS, Ring, TAIL_POS};

/// The consuming end of a channel.
#[derive(Debug)]
pub struct Consumer {
    pub(super) ring: Ring,
    pub(super) tail: u64,
    pub(super) cached_head: u64,
}

/// A message found in the ring: where its payload is and how long it is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    pub(super) offset: usize,
    pub(super) len: usize,
    /// The position just past the record.
    pub(super) end: u64,
}

impl Consumer {
    pub(super) fn attach(segment: SharedMemory, options: &ChannelOptions) -> Result<Consumer> {
        let ring = Ring::open(segment, options, TAIL, HEAD)?;
        let subject = Arc::clone(&ring.subject);
        Self::from_ring(ring).map_err(|e| e.with_subject(subject))
    }

    fn from_ring(mut ring: Ring) -> Result<Consumer> {
        ring.claim("consumer")?;
        let tail = ring.control.position(TAIL_POS).load(Ordering::Acquire);
        let head = ring.control.position(HEAD_POS).load(Ordering::Acquire);
        check_own_position(tail, "consumer")?;
        let mut consumer = Consumer {
            ring,
            tail,
            cached_head: tail,
        };
        consumer.validate_head(head)?;
        Ok(consumer)
    }

    /// The channel's segment, for passing its descriptor to another process.
    pub fn segment(&self) -> &SharedMemory {
        self.ring.segment()
    }

    /// Hands this end to another process: returns the channel's descriptor, for that
    /// process to attach with [`ChannelOptions::consumer_from_fd`] (passed over a Unix socket,
    /// or as a child's standard input), and leaves the side without closing it. The
    /// producer meanwhile works as if this end were still attached: sends fill the ring and then wait for space.
    ///
    /// The receiver must attach within this end's [`timeout`](ChannelOptions::timeout)
    /// (5 s by default); after that, the producer's waits fail with peer-gone, as they do
    /// when the process holding an end dies. The descriptor is close-on-exec.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another process has taken this side over (one that took this process
    /// for dead); the `dup` error.
    pub fn hand_off(mut self) -> Result<std::os::fd::OwnedFd> {
        self.ring.hand_off("consumer")
    }

    /// The largest message this channel carries.
    pub fn max_message_size(&self) -> usize {
        self.ring.max
    }

    /// Checks a producer position read from shared memory before it enters any arithmetic.
    pub(super) fn validate_head(&mut self, head: u64) -> Result<()> {
        let available = head.wrapping_sub(self.tail);
        if available > self.ring.capacity || head % RECORD_ALIGN != 0 {
            return Err(Error::corrupted(
                "recv",
                format!(
                    "the producer's position {head} is impossible: {available} bytes ahead of \
                     the consumer's {} in a ring of {} (positions are multiples of {RECORD_ALIGN})",
                    self.tail, self.ring.capacity
                ),
            ));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Waits for the next message and validates it; skips padding.
    pub(super) fn next(&mut self, wait: Wait, op: &'static str) -> Result<Found> {
        loop {
            if self.cached_head == self.tail {
                let head = self.ring.control.position(HEAD_POS).load(Ordering::Acquire);
                self.validate_head(head)?;
            }
            if self.cached_head == self.tail {
                // Empty: a producer that closed will send nothing more. Its position is
                // read again after its close: a producer that published its last messages
                // and closed since the read above leaves them to be received first.
                if self.ring.peer_closed() {
                    let head = self.ring.control.position(HEAD_POS).load(Ordering::Acquire);
                    self.validate_head(head)?;
                    if self.cached_head == self.tail {
                        return Err(Error::peer_gone(op, "the producer closed the channel"));
                    }
                    continue;
                }
                let tail = self.tail;
                let mut seen = tail;
                self.ring.wait_for(wait, op, |ring| {
                    seen = ring.control.position(HEAD_POS).load(Ordering::Acquire);
                    Ok(seen != tail || ring.peer_closed())
                })?;
                self.validate_head(seen)?;
                continue;
            }
            let capacity = self.ring.capacity;
            let index = self.tail & (capacity - 1);
            let available = self.cached_head.wrapping_sub(self.tail);
            let offset = DATA + usize::try_from(index).unwrap_or(usize::MAX);
            let header = u64::from_le(self.ring.segment().read::<u64>(offset)?);
            let (len, kind) = (header & 0xffff_ffff, header >> 32);
            let contiguous = capacity - index;
            match u32::try_from(kind).unwrap_or(0) {
                KIND_PADDING
                    if len + RECORD_HEADER as u64 == contiguous && contiguous <= available =>
                {
                    self.tail = self.tail.wrapping_add(contiguous);
                }
                KIND_MESSAGE => {
                    let size = (RECORD_HEADER as u64).saturating_add(len.div_ceil(8) * 8);
                    if len > self.ring.max as u64 || size > contiguous || size > available {
                        return Err(Error::corrupted(
                            op,
                            format!(
                                "a record of {len} bytes at position {} does not fit the ring",
                                self.tail
                            ),
                        ));
                    }
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    return Ok(Found {
                        offset: offset + RECORD_HEADER,
                        len,
                        end: self.tail.wrapping_add(size),
                    });
                }
                _ => {
                    return Err(Error::corrupted(
                        op,
                        format!(
                            "a record header of {header:#018x} at position {} is invalid",
                            self.tail
                        ),
                    ));
                }
            }
        }
    }

    /// Frees everything up to `end` for the producer.
    pub(super) fn release(&mut self, end: u64) -> Result<()> {
        self.tail = end;
        self.ring
            .control
            .position(TAIL_POS)
            .store(end, Ordering::Release);
        self.ring.wake_peer()
    }

    pub(super) fn recv_with(
        &mut self,
        buf: &mut [u8],
        wait: Wait,
        op: &'static str,
    ) -> Result<usize> {
        self.recv_unnamed(buf, wait, op)
            .map_err(|e| self.ring.name_error(e))
    }

    fn recv_unnamed(&mut self, buf: &mut [u8], wait: Wait, op: &'static str) -> Result<usize> {
        let found = self.next(wait, op)?;
        if found.len > buf.len() {
            // Release any padding skipped, keep the message.
            let tail = self.tail;
            self.release(tail)?;
            return Err(Error::buffer_too_small(op, found.len, buf.len()));
        }
        self.ring
            .segment()
            .read_at(found.offset, &mut buf[..found.len])?;
        self.release(found.end)?;
        Ok(found.len)
    }

    /// Receives the next message into `buf`, waiting as the wait strategy says.
    ///
    /// # Errors
    ///
    /// Buffer too small (the message stays); peer-gone once the producer closed its end or
    /// died and the ring is empty; corrupted for an impossible position or record.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_with(buf, Wait::Block, "recv")
    }

    /// Receives the next message if one is there.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`recv`](Consumer::recv).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_with(buf, Wait::Try, "try_recv")
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`recv`](Consumer::recv).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_with(buf, Wait::Until(Deadline::after(timeout)), "recv_timeout")
    }

    // `#[inline]`, as `Producer::loan_with` says why.
    #[inline]
    pub(super) fn borrow_with(&mut self, wait: Wait, op: &'static str) -> Result<RecvLoan<'_>> {
        let found = self.next(wait, op).map_err(|e| self.ring.name_error(e))?;
        Ok(RecvLoan {
            consumer: self,
            found,
        })
    }

    /// Borrows the next message in place, without copying it: the zero-copy path. The
    /// producer cannot reuse its space until the loan is dropped.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv).
    #[inline]
    pub fn borrow(&mut self) -> Result<RecvLoan<'_>> {
        self.borrow_with(Wait::Block, "borrow")
    }

    /// [`borrow`](Consumer::borrow) without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`recv`](Consumer::recv).
    #[inline]
    pub fn try_borrow(&mut self) -> Result<RecvLoan<'_>> {
        self.borrow_with(Wait::Try, "try_borrow")
    }

    /// [`borrow`](Consumer::borrow), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`recv`](Consumer::recv).
    pub fn borrow_timeout(&mut self, timeout: Duration) -> Result<RecvLoan<'_>> {
        self.borrow_with(Wait::Until(Deadline::after(timeout)), "borrow_timeout")
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.ring.close();
    }
}

impl MessageReceiver for Consumer {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Consumer::recv(self, buf)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Consumer::try_recv(self, buf)
    }

    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        Consumer::recv_timeout(self, buf, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.ring.max
    }
}

/// A message borrowed in place; its space returns to the producer when the loan is
/// dropped.
///
/// The bytes are exposed through copies and values of [`ShmSafe`](ipc_core::ShmSafe)
/// types, not as a `&[u8]`: the protocol keeps a well-behaved producer away from the
/// message until it is released (the producer writes only between its head and the
/// consumer's tail), but a hostile producer could write it anyway, and a Rust reference
/// into memory that changes is undefined behaviour.
/// [`as_slice`](RecvLoan::as_slice) gives the reference for producers you trust.
#[derive(Debug)]
pub struct RecvLoan<'a> {
    pub(super) consumer: &'a mut Consumer,
    pub(super) found: Found,
}

impl RecvLoan<'_> {
    /// The message's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.found.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.found.len == 0
    }

    /// Copies `buf.len()` bytes of the message from `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range is not within the message.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        check_within(offset, buf.len(), self.found.len, "RecvLoan::read_at")?;
        self.consumer
            .ring
            .segment()
            .read_at(self.found.offset + offset, buf)
    }

    /// Reads a value of a [`ShmSafe`](ipc_core::ShmSafe) type at `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it does not fit within the message.
    #[inline]
    pub fn read<T: ipc_core::ShmSafe>(&self, offset: usize) -> Result<T> {
        check_within(
            offset,
            std::mem::size_of::<T>(),
            self.found.len,
            "RecvLoan::read",
        )?;
        self.consumer
            .ring
            .segment()
            .read(self.found.offset + offset)
    }

    /// Where the message is in this process: its first byte and length.
    pub(crate) fn region(&self) -> (*const u8, usize) {
        (
            self.consumer
                .ring
                .segment()
                .as_ptr()
                .wrapping_add(self.found.offset)
                .cast_const(),
            self.found.len,
        )
    }
}

impl Drop for RecvLoan<'_> {
    #[inline]
    fn drop(&mut self) {
        // A destructor cannot report failure; the control block was validated at open and
        // the release is two atomic operations.
        let _ = self.consumer.release(self.found.end);
    }
}

// The unsafe view stands beside its type; the raw work is in `sys`.
#[allow(unsafe_code)]
impl RecvLoan<'_> {
    /// The message as a byte slice, without copying.
    ///
    /// # Safety
    ///
    /// The producer process must follow the channel protocol (every producer of this crate
    /// does): it does not write a message after committing it. A hostile producer could, and
    /// the slice would then change under Rust's feet.
    pub unsafe fn as_slice(&self) -> &[u8] {
        let (ptr, len) = self.region();
        // SAFETY: the range lies inside the mapped segment (validated when the message was
        // found) and, by the caller's promise, nobody writes it while the loan lives; the
        // slice borrows the loan, which borrows the consumer and so the mapping.
        unsafe { crate::sys::slice(ptr, len) }
    }
}

impl ipc_core::Source for Consumer {
    /// Readiness through this side's wake FIFO (made the first time it is asked for):
    /// a message is there, or the other side closed or died.
    fn readiness(&self, interest: ipc_core::Interest) -> Result<ipc_core::Readiness> {
        self.ring.readiness(super::wake::Role::Consumer, interest)
    }
}
