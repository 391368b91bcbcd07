//! Options for a channel, and creating or attaching to one.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::check_creation_option;
use ipc_core::{CreationMode, Error, IpcName, Limit, OpenIntent, Permissions, Result, Unlink};

use crate::segment::SegmentName;
use crate::{MemfdOptions, ReceiveOptions, SharedMemory, ShmOptions};

use super::consumer::Consumer;
use super::layout::*;
use super::producer::Producer;
use super::ring::WaitStrategy;

/// Options for a channel: ring capacity, largest message, wait strategy, permissions of a
/// named segment, and how long opening waits for the creator.
///
/// ```
/// use ipc_shm::IpcName;
/// use ipc_shm::ChannelOptions;
///
/// let name = IpcName::unique("doc-channel")?;
/// let options = ChannelOptions::new().capacity(64 * 1024).max_message_size(4096);
/// let mut producer = options.create_producer(&name)?;
/// let mut consumer = options.open_consumer(&name)?; // in another process, normally
/// producer.send(b"tick")?;
/// let mut buf = [0u8; 4096];
/// let n = consumer.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"tick");
/// # Ok::<(), ipc_shm::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// `None`: the default, 1 MiB.
    pub(super) capacity: Option<usize>,
    /// `None`: the default, which depends on the capacity.
    pub(super) max_message: Option<usize>,
    pub(super) wait: WaitStrategy,
    pub(super) permissions: Permissions,
    pub(super) mode: CreationMode,
    pub(super) accept_other_owner: bool,
    pub(super) timeout: Duration,
    pub(super) start: u64,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            capacity: None,
            max_message: None,
            wait: WaitStrategy::default(),
            permissions: Permissions::owner_only(),
            mode: CreationMode::CreateExclusive,
            accept_other_owner: false,
            timeout: ipc_core::internal::OPEN_TIMEOUT,
            start: 0,
        }
    }
}

impl ChannelOptions {
    ipc_core::named_object_setters!("channel");

    /// A 1 MiB ring, messages up to 64 KiB, spin-then-park, owner-only, opening waits up
    /// to 5 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ring's capacity in bytes: rounded up to a power of two, at least 4 KiB. (A size
    /// beyond the largest power of two becomes that power, which creation then refuses.)
    /// Opening an existing channel with it set checks that the channel has that capacity.
    #[must_use]
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = Some(
            bytes
                .max(4096)
                .checked_next_power_of_two()
                .unwrap_or(1 << (usize::BITS - 1)),
        );
        self
    }

    /// The capacity of a channel created with these options.
    fn ring_capacity(&self) -> usize {
        self.capacity.unwrap_or(1 << 20)
    }

    /// The largest message: at most half the ring less the 8-byte record header, and by
    /// default the smaller of that and 64 KiB.
    ///
    /// Messages never wrap around the ring's end (that is what lets a loan be one region),
    /// so a message that does not fit before the end waits for the space at the start; the
    /// limit of half the ring is what guarantees that every message up to the maximum fits
    /// once the ring has drained, wherever the last one ended. Creation refuses a larger
    /// maximum: raise the capacity instead. Opening an existing channel with it set checks
    /// that the channel has that maximum.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// The largest message these options allow: as set, or the default for the capacity.
    pub(super) fn max_message(&self) -> usize {
        self.max_message
            .unwrap_or_else(|| (64 * 1024).min(self.ring_capacity() / 2 - RECORD_HEADER))
    }

    /// How endpoints opened with these options wait.
    #[must_use]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// Starts the positions at `position` instead of 0: for tests of counters near their
    /// wrap-around.
    #[doc(hidden)]
    #[must_use]
    pub fn start_position(mut self, position: u64) -> Self {
        self.start = position;
        self
    }

    pub(super) fn check(&self) -> Result<()> {
        let max_message = self.max_message();
        let capacity = self.ring_capacity();
        if max_message == 0 || !record_fits(max_message as u64, capacity as u64) {
            let limit = Limit::new(
                "ChannelOptions::capacity / 2 - 8",
                (capacity / 2 - RECORD_HEADER) as u64,
            );
            return Err(Error::limit_exceeded(
                "ChannelOptions",
                "max_message_size",
                max_message as u64,
                limit,
            ));
        }
        if self.start % RECORD_ALIGN != 0 {
            return Err(Error::new(
                "ChannelOptions",
                io::ErrorKind::InvalidInput,
                format!(
                    "a start position must be a multiple of {RECORD_ALIGN}, not {}",
                    self.start
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn init(&self, segment: &SharedMemory) -> Result<()> {
        segment.write::<u64>(CAPACITY, &(self.ring_capacity() as u64))?;
        segment.write::<u64>(MAX_MESSAGE, &(self.max_message() as u64))?;
        segment
            .atomic_u64(HEAD)?
            .store(self.start, Ordering::Relaxed);
        segment
            .atomic_u64(TAIL)?
            .store(self.start, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn create_named(&self, name: &IpcName) -> Result<SharedMemory> {
        self.check()?;
        let create = ShmOptions::new()
            .size(DATA + self.ring_capacity())
            .layout(CHANNEL_LAYOUT)
            .permissions(self.permissions);
        let opened = self.mode.open_with(
            |intent| match intent {
                OpenIntent::Create => create.create_with(name, |segment| self.init(segment)),
                OpenIntent::OpenExisting => self.open_named(name),
            },
            || SegmentName(name.clone(), None).unlink(),
        )?;
        Ok(opened.object)
    }

    pub(super) fn open_named(&self, name: &IpcName) -> Result<SharedMemory> {
        let mut options = ShmOptions::new()
            .layout(CHANNEL_LAYOUT)
            .accept_other_owner(self.accept_other_owner)
            .timeout(self.timeout);
        options.owner_hint = "ChannelOptions";
        let segment = options.open(name)?;
        let (capacity, max) = (
            segment.read::<u64>(CAPACITY)?,
            segment.read::<u64>(MAX_MESSAGE)?,
        );
        // An invalid geometry is reported as corrupted when the ring attaches.
        if geometry_is_valid(capacity, max, segment.len()) {
            let as_size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
            for (option, requested, actual) in [
                ("ChannelOptions::capacity", self.capacity, capacity),
                ("ChannelOptions::max_message_size", self.max_message, max),
            ] {
                check_creation_option(
                    "shm_open",
                    name.as_str(),
                    option,
                    requested,
                    as_size(actual),
                )?;
            }
        }
        Ok(segment)
    }

    /// Creates a named channel and attaches as its producer. The producer owns the name
    /// and removes it on drop.
    ///
    /// # Errors
    ///
    /// A limit error if the ring cannot hold a maximal message; the errors of
    /// [`ShmOptions::create_with`].
    pub fn create_producer(&self, name: &IpcName) -> Result<Producer> {
        Producer::attach(self.create_named(name)?, self)
    }

    /// Creates a named channel and attaches as its consumer, who owns the name.
    ///
    /// # Errors
    ///
    /// As [`create_producer`](ChannelOptions::create_producer).
    pub fn create_consumer(&self, name: &IpcName) -> Result<Consumer> {
        Consumer::attach(self.create_named(name)?, self)
    }

    /// Opens a named channel and attaches as its producer.
    ///
    /// # Errors
    ///
    /// The errors of [`ShmOptions::open`]; corrupted for a malformed control block;
    /// `AddrInUse` if a live producer is attached.
    pub fn open_producer(&self, name: &IpcName) -> Result<Producer> {
        Producer::attach(self.open_named(name)?, self)
    }

    /// Opens a named channel and attaches as its consumer.
    ///
    /// # Errors
    ///
    /// As [`open_producer`](ChannelOptions::open_producer), for a live consumer.
    pub fn open_consumer(&self, name: &IpcName) -> Result<Consumer> {
        Consumer::attach(self.open_named(name)?, self)
    }

    /// An anonymous channel on a sealed memfd, with both ends in this process. To give one
    /// end to another process, [`hand_off`](Consumer::hand_off) it: that returns the
    /// descriptor to pass (over a Unix socket, or as a child's stdin), and the other
    /// process attaches with [`consumer_from_fd`](ChannelOptions::consumer_from_fd) or
    /// [`producer_from_fd`](ChannelOptions::producer_from_fd), within the
    /// [`timeout`](ChannelOptions::timeout). The end kept here works meanwhile. Or use both
    /// ends in threads.
    ///
    /// ```
    /// use ipc_shm::ChannelOptions;
    ///
    /// let options = ChannelOptions::new().capacity(64 * 1024);
    /// let (mut producer, consumer) = options.channel()?;
    /// let fd = consumer.hand_off()?; // to pass to a child process
    /// producer.send(b"sent before the child attached")?;
    /// // In the child:
    /// let mut consumer = options.consumer_from_fd(fd)?;
    /// let mut buf = [0u8; 64];
    /// let n = consumer.recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"sent before the child attached");
    /// # Ok::<(), ipc_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A limit error for a ring that cannot hold a maximal message; the memfd errors.
    pub fn channel(&self) -> Result<(Producer, Consumer)> {
        self.check()?;
        let segment = MemfdOptions::new(DATA + self.ring_capacity())
            .layout(CHANNEL_LAYOUT)
            .debug_name("ipc-shm-channel")
            .create_with(|segment| self.init(segment))?;
        use std::os::fd::AsFd;
        let fd = segment
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))?;
        let consumer = self.consumer_from_fd(fd)?;
        Ok((Producer::attach(segment, self)?, consumer))
    }

    /// Attaches as the consumer of a channel whose segment descriptor was received from
    /// another process; the segment must be a sealed memfd (see [`ReceiveOptions`]).
    ///
    /// # Errors
    ///
    /// The errors of [`ReceiveOptions::map`]; corrupted for a malformed control block;
    /// `AddrInUse` if a live consumer is attached.
    pub fn consumer_from_fd(&self, fd: std::os::fd::OwnedFd) -> Result<Consumer> {
        Consumer::attach(ReceiveOptions::new().layout(CHANNEL_LAYOUT).map(fd)?, self)
    }

    /// Attaches as the producer of a channel whose segment descriptor was received.
    ///
    /// # Errors
    ///
    /// As [`consumer_from_fd`](ChannelOptions::consumer_from_fd).
    pub fn producer_from_fd(&self, fd: std::os::fd::OwnedFd) -> Result<Producer> {
        Producer::attach(ReceiveOptions::new().layout(CHANNEL_LAYOUT).map(fd)?, self)
    }
}
