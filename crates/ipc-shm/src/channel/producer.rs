//! The producing end: copies and loans into the ring.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::Wait;
use ipc_core::{Deadline, Error, Limit, MessageSender, Result};

use crate::SharedMemory;

use super::ChannelOptions;
use super::layout::*;
use super::ring::{HEAD_POS, Ring, TAIL_POS};

/// The producing end of a channel.
///
/// Sends copy a message into the ring ([`send`](Producer::send)) or write it in place
/// ([`loan`](Producer::loan)); both publish it whole, so the consumer never sees part of
/// one, even if this process dies in the middle.
#[derive(Debug)]
pub struct Producer {
    pub(super) ring: Ring,
    pub(super) head: u64,
    pub(super) cached_tail: u64,
}

impl Producer {
    pub(super) fn attach(segment: SharedMemory, options: &ChannelOptions) -> Result<Producer> {
        let ring = Ring::open(segment, options, HEAD, TAIL)?;
        let subject = Arc::clone(&ring.subject);
        Self::from_ring(ring).map_err(|e| e.with_subject(subject))
    }

    fn from_ring(mut ring: Ring) -> Result<Producer> {
        ring.claim("producer")?;
        let head = ring.control.position(HEAD_POS).load(Ordering::Acquire);
        let tail = ring.control.position(TAIL_POS).load(Ordering::Acquire);
        check_own_position(head, "producer")?;
        let mut producer = Producer {
            ring,
            head,
            cached_tail: tail,
        };
        producer.validate_tail(tail)?;
        Ok(producer)
    }

    /// The channel's segment, for passing its descriptor to another process.
    pub fn segment(&self) -> &SharedMemory {
        self.ring.segment()
    }

    /// Hands this end to another process: returns the channel's descriptor, for that
    /// process to attach with [`ChannelOptions::producer_from_fd`] (passed over a Unix socket,
    /// or as a child's standard input), and leaves the side without closing it. The
    /// consumer meanwhile works as if this end were still attached: receives take what is in the ring and then wait for more.
    ///
    /// The receiver must attach within this end's [`timeout`](ChannelOptions::timeout)
    /// (5 s by default); after that, the consumer's waits fail with peer-gone, as they do
    /// when the process holding an end dies. The descriptor is close-on-exec.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another process has taken this side over (one that took this process
    /// for dead); the `dup` error.
    pub fn hand_off(mut self) -> Result<std::os::fd::OwnedFd> {
        self.ring.hand_off("producer")
    }

    /// The largest message this channel carries.
    pub fn max_message_size(&self) -> usize {
        self.ring.max
    }

    /// Checks a consumer position read from shared memory before it enters any arithmetic.
    pub(super) fn validate_tail(&mut self, tail: u64) -> Result<()> {
        let used = self.head.wrapping_sub(tail);
        if used > self.ring.capacity || tail % RECORD_ALIGN != 0 {
            return Err(Error::corrupted(
                "send",
                format!(
                    "the consumer's position {tail} is impossible: {used} bytes behind the \
                     producer's {} in a ring of {} (positions are multiples of {RECORD_ALIGN})",
                    self.head, self.ring.capacity
                ),
            ));
        }
        self.cached_tail = tail;
        Ok(())
    }

    pub(super) fn free(&self) -> u64 {
        self.ring.capacity - self.head.wrapping_sub(self.cached_tail)
    }

    /// Finds room for a record of `len` bytes, writing a padding record first if it must
    /// start at the beginning of the ring; returns the record's position.
    ///
    /// Inlined, with waiting and every error out of line, as is the rest of a message's
    /// path (`commit`, `Consumer::next`): each call that is not inlined returns its
    /// `Result` through memory and saves registers on the stack, and those stores queue
    /// behind the store to a line the other side holds, so the side stalls on its own
    /// stack (`perf annotate`: most of the producer's samples on a `push` or a store of a
    /// `Result`). With this and `sys::check` inlined, base and new binaries alternated
    /// three times (`--only shm:busy`): zero-copy 0.41–0.45x the raw ring at 4 KiB and
    /// 0.63–0.68x at 64 KiB before, 0.78–0.95x and 0.88–1.01x after; 64 B one-way latency
    /// 0.84–0.88x before, 0.92–0.96x after. Inlining the consumer's `next` the same way
    /// was tried and dropped: its latency rose to 1.20–1.37x for no clear zero-copy gain.
    #[inline]
    pub(super) fn reserve(&mut self, len: usize, wait: Wait, op: &'static str) -> Result<u64> {
        if len > self.ring.max {
            return Err(self.too_large(len, op));
        }
        // A consumer that closed will never read: report it rather than fill the ring.
        if self.ring.peer_closed() {
            return Err(consumer_closed(op));
        }
        let size = (RECORD_HEADER + round8(len)) as u64;
        let index = self.head & (self.ring.capacity - 1);
        let contiguous = self.ring.capacity - index;
        let needed = if size > contiguous {
            contiguous + size
        } else {
            size
        };
        if self.free() < needed {
            self.wait_for_room(needed, wait, op)?;
        }
        if size > contiguous {
            return self.pad(index, contiguous);
        }
        Ok(self.head)
    }

    #[cold]
    #[inline(never)]
    fn too_large(&self, len: usize, op: &'static str) -> Error {
        let limit = Limit::new("ChannelOptions::max_message_size", self.ring.max as u64);
        Error::limit_exceeded(op, "message size", len as u64, limit)
    }

    /// Waits until `needed` bytes are free, as `wait` says.
    #[inline(never)]
    fn wait_for_room(&mut self, needed: u64, wait: Wait, op: &'static str) -> Result<()> {
        let head = self.head;
        let capacity = self.ring.capacity;
        let mut seen = self.cached_tail;
        let mut bad = None;
        self.ring.wait_for(wait, op, |ring| {
            let tail = ring.control.position(TAIL_POS).load(Ordering::Acquire);
            if head.wrapping_sub(tail) > capacity || tail % RECORD_ALIGN != 0 {
                bad = Some(tail);
                return Ok(true);
            }
            seen = tail;
            Ok(capacity - head.wrapping_sub(tail) >= needed)
        })?;
        if let Some(tail) = bad {
            self.validate_tail(tail)?;
        }
        self.cached_tail = seen;
        Ok(())
    }

    /// Fills the `contiguous` bytes from `index` to the ring's end with a padding record;
    /// returns the position after it, where the record goes.
    #[inline(never)]
    fn pad(&mut self, index: u64, contiguous: u64) -> Result<u64> {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let padding = u32::try_from(contiguous - RECORD_HEADER as u64).unwrap_or(u32::MAX);
        self.ring
            .segment()
            .write::<u64>(DATA + index, &record(padding, KIND_PADDING))?;
        Ok(self.head.wrapping_add(contiguous))
    }

    /// Writes the record header at `position` and publishes everything up to the record's
    /// end (padding included).
    #[inline]
    pub(super) fn commit(&mut self, position: u64, len: usize) -> Result<()> {
        self.write_header(position, len)?;
        self.publish()
    }

    /// Writes the record header at `position` and moves this side's head past the record,
    /// without publishing it: the consumer sees it at the next [`publish`](Self::publish).
    #[inline]
    fn write_header(&mut self, position: u64, len: usize) -> Result<()> {
        let index = usize::try_from(position & (self.ring.capacity - 1)).unwrap_or(usize::MAX);
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        self.ring
            .segment()
            .write::<u64>(DATA + index, &record(len32, KIND_MESSAGE))?;
        self.head = position.wrapping_add((RECORD_HEADER + round8(len)) as u64);
        Ok(())
    }

    /// Publishes every record written so far, and wakes the consumer if it sleeps.
    #[inline]
    fn publish(&mut self) -> Result<()> {
        self.ring
            .control
            .position(HEAD_POS)
            .store(self.head, Ordering::Release);
        self.ring.wake_peer()
    }

    /// Copies `msg` into the ring at `position`, as one record, unpublished.
    fn write_record(&mut self, position: u64, msg: &[u8]) -> Result<()> {
        let index = usize::try_from(position & (self.ring.capacity - 1)).unwrap_or(usize::MAX);
        self.ring
            .segment()
            .write_at(DATA + index + RECORD_HEADER, msg)?;
        self.write_header(position, msg.len())
    }

    pub(super) fn send_with(&mut self, msg: &[u8], wait: Wait, op: &'static str) -> Result<()> {
        self.send_unnamed(msg, wait, op)
            .map_err(|e| self.ring.name_error(e))
    }

    fn send_unnamed(&mut self, msg: &[u8], wait: Wait, op: &'static str) -> Result<()> {
        let position = self.reserve(msg.len(), wait, op)?;
        self.write_record(position, msg)?;
        self.publish()
    }

    fn send_batch_with(&mut self, msgs: &[&[u8]], wait: Wait, op: &'static str) -> Result<usize> {
        self.send_batch_unnamed(msgs, wait, op)
            .map_err(|e| self.ring.name_error(e))
    }

    /// Writes as many of `msgs` as there is room for and publishes them at once; when the
    /// ring is full, publishes what it wrote (so that the consumer can make room) and
    /// waits as `wait` says for the next one. An error after some were sent ends the batch
    /// (the next call reports it).
    fn send_batch_unnamed(
        &mut self,
        msgs: &[&[u8]],
        wait: Wait,
        op: &'static str,
    ) -> Result<usize> {
        if let Some(msg) = msgs.iter().find(|msg| msg.len() > self.ring.max) {
            let limit = Limit::new("ChannelOptions::max_message_size", self.ring.max as u64);
            return Err(Error::limit_exceeded(
                op,
                "message size",
                msg.len() as u64,
                limit,
            ));
        }
        let (mut sent, mut unpublished) = (0, false);
        for msg in msgs {
            let mut position = self.reserve(msg.len(), Wait::Try, op);
            if matches!(&position, Err(e) if e.is_would_block()) && wait != Wait::Try {
                if unpublished {
                    self.publish()?;
                    unpublished = false;
                }
                position = self.reserve(msg.len(), wait, op);
            }
            let position = match position {
                Ok(position) => position,
                Err(err) if sent == 0 => return Err(err),
                Err(_) => break,
            };
            self.write_record(position, msg)?;
            (sent, unpublished) = (sent + 1, true);
        }
        if unpublished {
            self.publish()?;
        }
        Ok(sent)
    }

    /// Sends `msg`, waiting for room as the wait strategy says.
    ///
    /// # Errors
    ///
    /// A limit error above the maximum size (nothing sent); peer-gone if the consumer
    /// closed its end or died while the ring was full; corrupted if the consumer's position
    /// is impossible.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Block, "send")
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`send`](Producer::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with(msg, Wait::Try, "try_send")
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`send`](Producer::send).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_with(msg, Wait::Until(Deadline::after(timeout)), "send_timeout")
    }

    /// Sends `msgs` in order, each as one message, publishing as many at once as the ring
    /// has room for (one store of the position and one look for a sleeping consumer per
    /// publication, where [`send`](Producer::send) makes one per message), waiting for room
    /// as the wait strategy says; returns how many were sent: all, unless an error came
    /// after some were (the next send reports it).
    ///
    /// ```
    /// use ipc_shm::ChannelOptions;
    ///
    /// let (mut producer, mut consumer) = ChannelOptions::new().channel()?;
    /// let sent = producer.send_batch(&[b"one", b"two", b"three"])?;
    /// assert_eq!(sent, 3);
    /// let mut buf = [0u8; 16];
    /// let n = consumer.recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"one");
    /// # Ok::<(), ipc_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send`](Producer::send); a message above the maximum size fails the call before
    /// anything is sent.
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        self.send_batch_with(msgs, Wait::Block, "send_batch")
    }

    /// Sends as many of `msgs`, in order, as the ring has room for now, in one
    /// publication; returns how many (at least one).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if there is no room for the first; otherwise as
    /// [`send_batch`](Producer::send_batch).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        self.send_batch_with(msgs, Wait::Try, "try_send_batch")
    }

    /// Sends `msgs` as [`send_batch`](Producer::send_batch) does, waiting at most `timeout`
    /// in all for room; returns how many were sent (fewer than all if the time ran out
    /// after some).
    ///
    /// # Errors
    ///
    /// `TimedOut` if none was sent; otherwise as [`send_batch`](Producer::send_batch).
    pub fn send_batch_timeout(&mut self, msgs: &[&[u8]], timeout: Duration) -> Result<usize> {
        self.send_batch_with(
            msgs,
            Wait::Until(Deadline::after(timeout)),
            "send_batch_timeout",
        )
    }

    // The zero-copy entry points are `#[inline]` so that the caller's crate keeps the loan
    // in registers. Returned through memory, each message cost the consumer a dozen more
    // stores, which queue behind its release of `tail` (a store that waits for the line
    // the producer is polling): 4 KiB zero-copy ran at 0.62x the raw ring instead of 0.97x.
    #[inline]
    pub(super) fn loan_with(
        &mut self,
        len: usize,
        wait: Wait,
        op: &'static str,
    ) -> Result<SendLoan<'_>> {
        let position = self
            .reserve(len, wait, op)
            .map_err(|e| self.ring.name_error(e))?;
        let index = usize::try_from(position & (self.ring.capacity - 1)).unwrap_or(usize::MAX);
        Ok(SendLoan {
            producer: self,
            position,
            offset: DATA + index + RECORD_HEADER,
            len,
        })
    }

    /// Reserves room for a message of `len` bytes in the ring, to be written in place and
    /// then [committed](SendLoan::commit): the zero-copy path. Until committed the consumer
    /// cannot see it; dropped uncommitted, it is never sent.
    ///
    /// # Errors
    ///
    /// As [`send`](Producer::send).
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<SendLoan<'_>> {
        self.loan_with(len, Wait::Block, "loan")
    }

    /// [`loan`](Producer::loan) without waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`send`](Producer::send).
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<SendLoan<'_>> {
        self.loan_with(len, Wait::Try, "try_loan")
    }

    /// [`loan`](Producer::loan), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`send`](Producer::send).
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendLoan<'_>> {
        self.loan_with(len, Wait::Until(Deadline::after(timeout)), "loan_timeout")
    }
}

#[cold]
#[inline(never)]
fn consumer_closed(op: &'static str) -> Error {
    Error::peer_gone(op, "the consumer closed the channel")
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.ring.close();
    }
}

impl MessageSender for Producer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        Producer::send(self, msg)
    }

    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        Producer::try_send(self, msg)
    }

    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        Producer::send_timeout(self, msg, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.ring.max
    }
}

/// Room for one message in the ring, written in place and then committed.
///
/// The region is not yet visible to the consumer, and the consumer never writes the ring,
/// so this process is its only writer; it is still written through copies and raw pointers
/// rather than a `&mut [u8]`, because a hostile consumer could write it anyway.
/// [`as_mut_slice`](SendLoan::as_mut_slice) gives the reference for consumers you trust.
#[derive(Debug)]
pub struct SendLoan<'a> {
    pub(super) producer: &'a mut Producer,
    pub(super) position: u64,
    pub(super) offset: usize,
    pub(super) len: usize,
}

impl SendLoan<'_> {
    /// The message's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` into the message at `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it does not fit within the message.
    #[inline]
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        check_within(offset, data.len(), self.len, "SendLoan::write_at")?;
        self.producer
            .ring
            .segment()
            .write_at(self.offset + offset, data)
    }

    /// Writes a value of a [`ShmSafe`](ipc_core::ShmSafe) type at `offset` (any alignment).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it does not fit within the message.
    #[inline]
    pub fn write<T: ipc_core::ShmSafe>(&mut self, offset: usize, value: &T) -> Result<()> {
        check_within(
            offset,
            std::mem::size_of::<T>(),
            self.len,
            "SendLoan::write",
        )?;
        self.producer
            .ring
            .segment()
            .write(self.offset + offset, value)
    }

    /// The first byte of the message, for writing in place (within [`len`](SendLoan::len)
    /// bytes, before [`commit`](SendLoan::commit)).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.producer
            .ring
            .segment()
            .as_ptr()
            .wrapping_add(self.offset)
    }

    /// Publishes the message.
    ///
    /// # Errors
    ///
    /// Only if the control block cannot be reached, which does not happen for a validated
    /// segment.
    #[inline]
    pub fn commit(self) -> Result<()> {
        self.producer
            .commit(self.position, self.len)
            .map_err(|e| self.producer.ring.name_error(e))
    }
}

// The unsafe view stands beside its type; the raw work is in `sys`.
#[allow(unsafe_code)]
impl SendLoan<'_> {
    /// The message as a mutable byte slice, to be filled in place (a serializer writing
    /// into it, say) before [`commit`](SendLoan::commit).
    ///
    /// # Safety
    ///
    /// The consumer process must follow the channel protocol (every consumer of this crate
    /// does): it never writes the ring. A hostile consumer could, and the slice would then
    /// change under Rust's feet. Nor may this process write the same bytes through another
    /// mapping of the segment while the slice lives.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self.as_mut_ptr();
        // SAFETY: `offset..offset + len` lies inside the mapped segment (the reservation
        // checked it against the validated capacity), nobody else writes it by the caller's
        // promise, and the consumer does not read it before the commit; the slice borrows
        // the loan, which borrows the producer and so the mapping.
        unsafe { crate::sys::slice_mut(ptr, self.len) }
    }
}

impl ipc_core::Source for Producer {
    /// Readiness through this side's wake FIFO (made the first time it is asked for):
    /// room for a largest message, or the other side closed or died.
    fn readiness(&self, interest: ipc_core::Interest) -> Result<ipc_core::Readiness> {
        self.ring.readiness(super::wake::Role::Producer, interest)
    }
}
