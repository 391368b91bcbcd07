//! Single-producer single-consumer channels on a shared-memory segment.
//!
//! # Layout
//!
//! After the segment header ([`HEADER_LEN`](crate::HEADER_LEN) bytes) come the channel's
//! configuration, each side's position on cache lines of its own (written on every
//! message), each side's identity, and each side's wait words (written only when it
//! parks, so that checking them costs no cache miss while traffic flows); from byte 4096
//! the ring of `capacity` bytes (a power of two).
//!
//! ```text
//!   64  capacity u64, max_message u64              (written once by the creator)
//!  128  head u64                                   (the producer's position)
//!  256  tail u64                                   (the consumer's position)
//!  384  producer state u64, start time u64, parks u32
//!  448  consumer state u64, start time u64, parks u32
//!  512  producer futex u32, sleeping u32          (written only when it parks)
//!  640  consumer futex u32, sleeping u32
//! 4096  ring: records of [len u32, kind u32, payload rounded up to 8 bytes]
//! ```
//!
//! The ring holds variable-length records; a record never wraps: when one does not fit
//! before the end of the ring, a padding record fills the rest and the message starts at
//! the beginning. Messages are therefore contiguous, which is what lets the zero-copy API
//! hand out one region. Positions (`head`, `tail`) are 64-bit byte counters that never wrap
//! in practice and are compared with wrapping arithmetic, so even a wrap is handled.
//!
//! # Waking
//!
//! Each side has a futex word and a "sleeping" flag. A waiter reads the futex word, sets
//! its flag, re-checks the ring (sequentially consistent fences on both sides make sure
//! that either the waiter sees the new data or the other side sees the flag), and sleeps on
//! the futex. The other side bumps the futex word and calls `FUTEX_WAKE` only when the
//! flag is set, so while both sides are busy no system call is made. An endpoint that busy
//! polls never parks and says so ("parks" is 0): its peer then skips the fence and the
//! check altogether.
//!
//! # Sides and liveness
//!
//! A side's state word says whether it is detached, being claimed, attached or closed, by
//! which process (its pid and the low 24 bits of its start time), and carries a generation
//! that every change increments. Each change is a compare-exchange from the exact word
//! seen, so of several processes that race to take over a dead endpoint exactly one wins,
//! and a claim that was taken over can never complete (no ABA). Attaching is a claim
//! (record the identity and the wait strategy) and then the switch to attached.
//!
//! The other side watches the process named in the word, whether it is claiming or
//! attached: it opens a pidfd for that pid, after checking the start time (so a reused pid
//! is never taken for the peer), and the pidfd becomes readable when the peer dies,
//! whatever the way. Waits check it at least every 20 ms, so a dead peer (or a claimant
//! that died half-way through attaching) is reported within that bound, and a clean close
//! is seen at once (a state word plus a wake-up).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use ipc_core::internal::Wait;
use ipc_core::{
    Deadline, Error, IpcName, Limit, MessageReceiver, MessageSender, Permissions, Result,
};
use nix::poll::PollFlags;

use crate::sys::Control;
use crate::{Layout, MemfdOptions, ReceiveOptions, SharedMemory, ShmOptions};

/// The header layout of channel segments.
pub const CHANNEL_LAYOUT: Layout = Layout::new(u64::from_le_bytes(*b"IPCRSCHN"), 4);

const CAPACITY: usize = 64;
const MAX_MESSAGE: usize = 72;
const HEAD: usize = 128;
const TAIL: usize = 256;
/// Offsets within a side's identity line.
const STATE: usize = 0;
const START: usize = 8;
const PARKS: usize = 16;
/// Offsets within a side's wait line.
const FUTEX: usize = 0;
const SLEEPING: usize = 4;

/// A side's identity line (pid, state, start time): written when attaching and closing.
fn identity(side: usize) -> usize {
    if side == HEAD { 384 } else { 448 }
}

/// A side's wait line (futex word, sleeping flag): written only when the side parks, so
/// that checking whether the peer sleeps costs no cache miss while traffic flows.
fn wait_line(side: usize) -> usize {
    if side == HEAD { 512 } else { 640 }
}
/// Where the ring starts.
const DATA: usize = 4096;
const RECORD_HEADER: usize = 8;
/// Records start at multiples of this: every position is one.
const RECORD_ALIGN: u64 = 8;
const KIND_MESSAGE: u32 = 1;
const KIND_PADDING: u32 = 2;

/// What a side's state word says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No endpoint has attached yet (the word of a new channel is 0).
    Detached,
    /// A process is attaching: it owns the side and is writing its identity.
    Claiming,
    /// An endpoint is attached.
    Attached,
    /// The endpoint closed its end.
    Closed,
}

/// A side's state word: `pid` (bits 0..22; Linux pids are below 2^22), the phase (bits
/// 22..24), a generation (bits 24..40) that every change increments, and the low 24 bits of
/// the process's start time (bits 40..64), which tell a live claimant from a later process
/// that reused a dead claimant's pid. Every value is meaningful, so a peer cannot write an
/// invalid one, only a wrong one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SideState(u64);

impl SideState {
    const PID_BITS: u32 = 22;

    fn pid(self) -> u32 {
        (self.0 & ((1 << Self::PID_BITS) - 1)) as u32
    }

    fn phase(self) -> Phase {
        match (self.0 >> Self::PID_BITS) & 3 {
            0 => Phase::Detached,
            1 => Phase::Claiming,
            2 => Phase::Attached,
            _ => Phase::Closed,
        }
    }

    fn start24(self) -> u64 {
        self.0 >> 40
    }

    /// The next state of the side, by process `pid` that started at `start`.
    fn next(self, phase: Phase, pid: u32, start: u64) -> SideState {
        let phase = match phase {
            Phase::Detached => 0,
            Phase::Claiming => 1,
            Phase::Attached => 2,
            Phase::Closed => 3,
        };
        let generation = ((self.0 >> 24) + 1) & 0xffff;
        SideState(
            (start & 0xff_ffff) << 40
                | generation << 24
                | phase << Self::PID_BITS
                | u64::from(pid) & ((1 << Self::PID_BITS) - 1),
        )
    }
}

/// How often a waiting endpoint checks that its peer is alive.
const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// Indices into an endpoint's [`Control`] words.
const OWN_FUTEX: usize = 0;
const OWN_SLEEPING: usize = 1;
const PEER_FUTEX: usize = 2;
const PEER_SLEEPING: usize = 3;
const PEER_PARKS: usize = 4;
const HEAD_POS: usize = 0;
const TAIL_POS: usize = 1;
const OWN_STATE: usize = 2;
const PEER_STATE: usize = 3;

/// How an endpoint waits for data or space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin until the condition holds: the lowest latency, one busy CPU per waiter. Never
    /// presented as a blocking figure.
    BusyPoll,
    /// Spin for `spin` (checking the ring), then sleep on the futex. While traffic flows it
    /// is as fast as busy polling; an idle waiter costs nothing.
    SpinThenPark {
        /// How long to spin before sleeping.
        spin: Duration,
    },
    /// Sleep on the futex at once.
    Blocking,
}

impl Default for WaitStrategy {
    /// Spin for 50 µs, about twice the cost of a kernel wake-up on a virtual machine, then
    /// park.
    fn default() -> Self {
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(50),
        }
    }
}

/// Options for a channel: ring capacity, largest message, wait strategy, permissions of a
/// named segment, and how long opening waits for the creator.
///
/// ```
/// use ipc_core::IpcName;
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
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    capacity: usize,
    /// `None`: the default, which depends on the capacity.
    max_message: Option<usize>,
    wait: WaitStrategy,
    permissions: Permissions,
    timeout: Duration,
    start: u64,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            capacity: 1 << 20,
            max_message: None,
            wait: WaitStrategy::default(),
            permissions: Permissions::owner_only(),
            timeout: Duration::from_secs(5),
            start: 0,
        }
    }
}

/// `n` rounded up to a multiple of 8, saturating (a size beyond every limit stays beyond).
fn round8(n: usize) -> usize {
    n.div_ceil(8).saturating_mul(8)
}

/// Whether a largest message of `max` bytes suits a ring of `capacity` bytes: its record
/// (header and payload rounded up to 8) must take at most half the ring, so that it fits
/// before the ring's end or at its start wherever the previous record ended. `max` may
/// come from shared memory: nothing here overflows.
fn record_fits(max: u64, capacity: u64) -> bool {
    max.div_ceil(8)
        .checked_mul(8)
        .and_then(|rounded| rounded.checked_add(RECORD_HEADER as u64))
        .is_some_and(|size| size <= capacity / 2)
}

impl ChannelOptions {
    /// A 1 MiB ring, messages up to 64 KiB, spin-then-park, owner-only, opening waits up
    /// to 5 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ring's capacity in bytes: rounded up to a power of two, at least 4 KiB. (A size
    /// beyond the largest power of two becomes that power, which creation then refuses.)
    #[must_use]
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(1 << (usize::BITS - 1));
        self
    }

    /// The largest message: at most half the ring less the 8-byte record header, and by
    /// default the smaller of that and 64 KiB.
    ///
    /// Messages never wrap around the ring's end (that is what lets a loan be one region),
    /// so a message that does not fit before the end waits for the space at the start; the
    /// limit of half the ring is what guarantees that every message up to the maximum fits
    /// once the ring has drained, wherever the last one ended. Creation refuses a larger
    /// maximum: raise the capacity instead.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// The largest message these options allow: as set, or the default for the capacity.
    fn max_message(&self) -> usize {
        self.max_message
            .unwrap_or_else(|| (64 * 1024).min(self.capacity / 2 - RECORD_HEADER))
    }

    /// How endpoints opened with these options wait.
    #[must_use]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.wait = wait;
        self
    }

    /// The permissions of a named channel's segment.
    #[must_use]
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// How long opening a named channel waits for its creator.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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

    fn check(&self) -> Result<()> {
        let max_message = self.max_message();
        if max_message == 0 || !record_fits(max_message as u64, self.capacity as u64) {
            let limit = Limit::new(
                "ChannelOptions::capacity / 2 - 8",
                (self.capacity / 2 - RECORD_HEADER) as u64,
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

    fn init(&self, segment: &SharedMemory) -> Result<()> {
        segment.write::<u64>(CAPACITY, &(self.capacity as u64))?;
        segment.write::<u64>(MAX_MESSAGE, &(self.max_message() as u64))?;
        segment
            .atomic_u64(HEAD)?
            .store(self.start, Ordering::Relaxed);
        segment
            .atomic_u64(TAIL)?
            .store(self.start, Ordering::Relaxed);
        Ok(())
    }

    fn segment_options(&self) -> ShmOptions {
        ShmOptions::new()
            .size(DATA + self.capacity)
            .layout(CHANNEL_LAYOUT)
            .permissions(self.permissions)
            .timeout(self.timeout)
    }

    fn create_named(&self, name: &IpcName) -> Result<SharedMemory> {
        self.check()?;
        self.segment_options()
            .create_with(name, |segment| self.init(segment))
    }

    fn open_named(&self, name: &IpcName) -> Result<SharedMemory> {
        ShmOptions::new()
            .layout(CHANNEL_LAYOUT)
            .timeout(self.timeout)
            .open(name)
    }

    /// Creates a named channel and attaches as its producer. The producer owns the name
    /// and removes it on drop.
    ///
    /// # Errors
    ///
    /// A limit error if the ring cannot hold a maximal message; the errors of
    /// [`ShmOptions::create_with`].
    pub fn create_producer(&self, name: &IpcName) -> Result<Producer> {
        Producer::attach(self.create_named(name)?, self.wait)
    }

    /// Creates a named channel and attaches as its consumer, who owns the name.
    ///
    /// # Errors
    ///
    /// As [`create_producer`](ChannelOptions::create_producer).
    pub fn create_consumer(&self, name: &IpcName) -> Result<Consumer> {
        Consumer::attach(self.create_named(name)?, self.wait)
    }

    /// Opens a named channel and attaches as its producer.
    ///
    /// # Errors
    ///
    /// The errors of [`ShmOptions::open`]; corrupted for a malformed control block;
    /// `AddrInUse` if a live producer is attached.
    pub fn open_producer(&self, name: &IpcName) -> Result<Producer> {
        Producer::attach(self.open_named(name)?, self.wait)
    }

    /// Opens a named channel and attaches as its consumer.
    ///
    /// # Errors
    ///
    /// As [`open_producer`](ChannelOptions::open_producer), for a live consumer.
    pub fn open_consumer(&self, name: &IpcName) -> Result<Consumer> {
        Consumer::attach(self.open_named(name)?, self.wait)
    }

    /// An anonymous channel on a sealed memfd, with both ends in this process: pass one end's
    /// [`segment`](Producer::segment) descriptor to another process (over a Unix socket, or
    /// as a child's stdin) and attach there with
    /// [`consumer_from_fd`](ChannelOptions::consumer_from_fd) or
    /// [`producer_from_fd`](ChannelOptions::producer_from_fd), or use both ends in threads.
    ///
    /// # Errors
    ///
    /// A limit error for a ring that cannot hold a maximal message; the memfd errors.
    pub fn channel(&self) -> Result<(Producer, Consumer)> {
        self.check()?;
        let segment = MemfdOptions::new(DATA + self.capacity)
            .layout(CHANNEL_LAYOUT)
            .debug_name("ipc-shm-channel")
            .create_with(|segment| self.init(segment))?;
        use std::os::fd::AsFd;
        let fd = segment
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))?;
        let consumer = self.consumer_from_fd(fd)?;
        Ok((Producer::attach(segment, self.wait)?, consumer))
    }

    /// Attaches as the consumer of a channel whose segment descriptor was received from
    /// another process; the segment must be a sealed memfd (see [`ReceiveOptions`]).
    ///
    /// # Errors
    ///
    /// The errors of [`ReceiveOptions::map`]; corrupted for a malformed control block;
    /// `AddrInUse` if a live consumer is attached.
    pub fn consumer_from_fd(&self, fd: std::os::fd::OwnedFd) -> Result<Consumer> {
        Consumer::attach(
            ReceiveOptions::new().layout(CHANNEL_LAYOUT).map(fd)?,
            self.wait,
        )
    }

    /// Attaches as the producer of a channel whose segment descriptor was received.
    ///
    /// # Errors
    ///
    /// As [`consumer_from_fd`](ChannelOptions::consumer_from_fd).
    pub fn producer_from_fd(&self, fd: std::os::fd::OwnedFd) -> Result<Producer> {
        Producer::attach(
            ReceiveOptions::new().layout(CHANNEL_LAYOUT).map(fd)?,
            self.wait,
        )
    }
}

/// What both endpoints share: the segment, its validated geometry, and the liveness of the
/// other side.
#[derive(Debug)]
struct Ring {
    control: Control,
    capacity: u64,
    max: usize,
    wait: WaitStrategy,
    /// The offset of this side's control line, and of the peer's.
    own: usize,
    peer: usize,
    peer_watch: PeerWatch,
    /// This side's state word once attached: closing changes exactly that word.
    attached: Option<SideState>,
}

impl Ring {
    fn open(segment: SharedMemory, wait: WaitStrategy, own: usize, peer: usize) -> Result<Ring> {
        const OP: &str = "channel open";
        if !segment.is_writable() {
            return Err(Error::new(
                OP,
                io::ErrorKind::PermissionDenied,
                "a channel segment must be writable",
            ));
        }
        let capacity = segment.read::<u64>(CAPACITY)?;
        let max = segment.read::<u64>(MAX_MESSAGE)?;
        let valid = capacity.is_power_of_two()
            && capacity >= 4096
            && usize::try_from(capacity).is_ok_and(|c| DATA.checked_add(c) == Some(segment.len()))
            && max > 0
            && record_fits(max, capacity);
        if !valid {
            return Err(Error::corrupted(
                OP,
                format!(
                    "the channel's geometry (capacity {capacity}, max message {max}, segment {} bytes) is invalid",
                    segment.len()
                ),
            ));
        }
        let control = Control::new(
            segment,
            [
                wait_line(own) + FUTEX,
                wait_line(own) + SLEEPING,
                wait_line(peer) + FUTEX,
                wait_line(peer) + SLEEPING,
                identity(peer) + PARKS,
            ],
            [HEAD, TAIL, identity(own) + STATE, identity(peer) + STATE],
        )?;
        Ok(Ring {
            control,
            capacity,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            wait,
            own,
            peer,
            peer_watch: PeerWatch::default(),
            attached: None,
        })
    }

    fn segment(&self) -> &SharedMemory {
        self.control.segment()
    }

    fn word(&self, offset: usize) -> Result<&AtomicU32> {
        self.segment().atomic_u32(offset)
    }

    fn position(&self, offset: usize) -> Result<&AtomicU64> {
        self.segment().atomic_u64(offset)
    }

    /// Claims this side's role: only one live endpoint per side. A side whose endpoint
    /// closed, or whose process (attached or half-way through attaching) died, is taken
    /// over.
    fn claim(&mut self, role: &'static str) -> Result<()> {
        const OP: &str = "channel attach";
        let state = self.control.position(OWN_STATE);
        let observed = SideState(state.load(Ordering::Acquire));
        match observed.phase() {
            Phase::Detached | Phase::Closed => {}
            phase => {
                let mut watch = PeerWatch::default();
                let status = watch.status(self.segment(), self.own)?;
                if matches!(status, PeerStatus::Alive | PeerStatus::NotYet) {
                    let pid = observed.pid();
                    let doing = if phase == Phase::Claiming {
                        "is attaching"
                    } else {
                        "is attached"
                    };
                    return Err(Error::new(
                        OP,
                        io::ErrorKind::AddrInUse,
                        format!("a live {role} (pid {pid}) {doing}"),
                    ));
                }
            }
        }
        let (pid, start) = (std::process::id(), own_start_time());
        let claim = observed.next(Phase::Claiming, pid, start);
        // Only one claimant can move the word away from what it saw, and the generation
        // makes sure that what it saw cannot come back.
        if state
            .compare_exchange(observed.0, claim.0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::new(
                OP,
                io::ErrorKind::AddrInUse,
                format!("another process is attaching as the {role}"),
            ));
        }
        self.position(identity(self.own) + START)?
            .store(start, Ordering::Relaxed);
        self.word(wait_line(self.own) + SLEEPING)?
            .store(0, Ordering::Relaxed);
        let parks = !matches!(self.wait, WaitStrategy::BusyPoll);
        self.word(identity(self.own) + PARKS)?
            .store(u32::from(parks), Ordering::Relaxed);
        let attached = claim.next(Phase::Attached, pid, start);
        if state
            .compare_exchange(claim.0, attached.0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Only a process that took this one for dead (or a hostile one) changes a
            // claim: the side is not ours.
            return Err(Error::new(
                OP,
                io::ErrorKind::AddrInUse,
                format!("the {role} side was taken over while this process attached"),
            ));
        }
        self.attached = Some(attached);
        Ok(())
    }

    /// Marks this side closed and wakes the peer, so that it sees it at once. A side taken
    /// over since (which only a peer that took this process for dead does) is left alone.
    fn close(&self) {
        let Some(attached) = self.attached else {
            return;
        };
        let closed = attached.next(Phase::Closed, attached.pid(), 0);
        if self
            .control
            .position(OWN_STATE)
            .compare_exchange(attached.0, closed.0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let futex = self.control.word(PEER_FUTEX);
        futex.fetch_add(1, Ordering::Release);
        ipc_core::internal::futex_wake(futex, i32::MAX);
    }

    /// Whether the peer closed its end (a relaxed read: for the fast paths).
    fn peer_closed(&self) -> bool {
        SideState(self.control.position(PEER_STATE).load(Ordering::Relaxed)).phase()
            == Phase::Closed
    }

    /// Wakes the peer if it sleeps (after publishing a position with release ordering).
    fn wake_peer(&self) -> Result<()> {
        // A busy-polling peer never parks, so the fence (an `mfence` on x86, a good part of
        // a zero-copy message's cost) and the check are skipped. A successor that attaches
        // with another strategy sets the flag before it attaches; should this side still
        // read the old value, the successor's first park lasts one liveness slice (20 ms)
        // at most, as it re-checks the ring after every slice.
        if self.control.word(PEER_PARKS).load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        fence(Ordering::SeqCst);
        if self.control.word(PEER_SLEEPING).load(Ordering::Relaxed) != 0 {
            let futex = self.control.word(PEER_FUTEX);
            futex.fetch_add(1, Ordering::Release);
            ipc_core::internal::futex_wake(futex, 1);
        }
        Ok(())
    }

    /// Waits until `ready()` holds, as the wait strategy and `wait` say. `ready` reads the
    /// peer's position; `gone` says what to report if the peer is gone while not ready.
    fn wait_for(
        &mut self,
        wait: Wait,
        op: &'static str,
        mut ready: impl FnMut(&Ring) -> Result<bool>,
    ) -> Result<()> {
        if ready(self)? {
            return Ok(());
        }
        let deadline = match wait {
            Wait::Try => {
                self.ensure_peer(op)?;
                return Err(Error::would_block(op));
            }
            Wait::Block => Deadline::NEVER,
            Wait::Until(deadline) => deadline,
        };
        let spin_until = match self.wait {
            WaitStrategy::BusyPoll => None,
            WaitStrategy::SpinThenPark { spin } => Some(Instant::now() + spin),
            WaitStrategy::Blocking => Some(Instant::now()),
        };
        // Spin, checking the clock, the deadline and the peer every so often.
        let mut spins = 0u32;
        let mut next_check = Instant::now() + LIVENESS_SLICE;
        loop {
            if ready(self)? {
                return Ok(());
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 {
                let now = Instant::now();
                if deadline.instant().is_some_and(|at| now >= at) {
                    return Err(Error::timed_out(op));
                }
                if now >= next_check {
                    self.ensure_peer(op)?;
                    next_check = now + LIVENESS_SLICE;
                }
                if spin_until.is_some_and(|until| now >= until) {
                    break;
                }
            }
            if spin_until.is_some_and(|until| spins == 1 && Instant::now() >= until) {
                break;
            }
        }
        // Park on the futex, a slice at a time.
        loop {
            let seq = self.control.word(OWN_FUTEX).load(Ordering::Acquire);
            self.control.word(OWN_SLEEPING).store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready(self)? {
                self.control.word(OWN_SLEEPING).store(0, Ordering::Relaxed);
                return Ok(());
            }
            if let Err(err) = self.ensure_peer(op) {
                self.control.word(OWN_SLEEPING).store(0, Ordering::Relaxed);
                return Err(err);
            }
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_SLICE, |left| left.min(LIVENESS_SLICE));
            if slice.is_zero() {
                self.control.word(OWN_SLEEPING).store(0, Ordering::Relaxed);
                return Err(Error::timed_out(op));
            }
            ipc_core::internal::futex_wait(self.control.word(OWN_FUTEX), seq, Some(slice));
            self.control.word(OWN_SLEEPING).store(0, Ordering::Relaxed);
        }
    }

    /// Fails with peer-gone if the peer closed its end or died.
    fn ensure_peer(&mut self, op: &'static str) -> Result<()> {
        match self.peer_watch.status(self.control.segment(), self.peer)? {
            PeerStatus::Alive | PeerStatus::NotYet => Ok(()),
            PeerStatus::Closed => Err(Error::peer_gone(op, "the other end closed the channel")),
            PeerStatus::Dead(pid) => Err(Error::peer_gone(
                op,
                format!("the other end (pid {pid}) died"),
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerStatus {
    NotYet,
    Alive,
    Closed,
    Dead(u32),
}

/// Watches the process named in a side's state word, through a pidfd opened once per
/// attached process.
#[derive(Debug, Default)]
struct PeerWatch {
    pidfd: Option<(SideState, std::os::fd::OwnedFd)>,
}

impl PeerWatch {
    fn status(&mut self, segment: &SharedMemory, line: usize) -> Result<PeerStatus> {
        let state = SideState(
            segment
                .atomic_u64(identity(line) + STATE)?
                .load(Ordering::Acquire),
        );
        let pid = state.pid();
        match state.phase() {
            Phase::Detached => Ok(PeerStatus::NotYet),
            Phase::Closed => Ok(PeerStatus::Closed),
            // A claimant writes its identity after claiming: the word names it, the start
            // time's low bits tell it from a later process with the same pid.
            Phase::Claiming => {
                let alive = ipc_core::internal::process_is_alive(pid)
                    && ipc_core::internal::process_start_time(pid)
                        .is_some_and(|start| start & 0xff_ffff == state.start24());
                Ok(if alive {
                    PeerStatus::NotYet
                } else {
                    PeerStatus::Dead(pid)
                })
            }
            Phase::Attached => {
                if !matches!(&self.pidfd, Some((seen, _)) if *seen == state) {
                    self.pidfd = None;
                    let start = segment
                        .atomic_u64(identity(line) + START)?
                        .load(Ordering::Relaxed);
                    let Ok(pidfd) = ipc_core::internal::pidfd_open(pid) else {
                        return Ok(PeerStatus::Dead(pid));
                    };
                    // The pid may have been reused since it was recorded: only the same
                    // start time proves it is the same process.
                    if ipc_core::internal::process_start_time(pid) != Some(start) {
                        return Ok(PeerStatus::Dead(pid));
                    }
                    self.pidfd = Some((state, pidfd));
                }
                let Some((_, pidfd)) = &self.pidfd else {
                    return Ok(PeerStatus::Dead(pid));
                };
                let exited = ipc_core::internal::poll_now(pidfd, PollFlags::POLLIN, "poll")?;
                Ok(if exited.contains(PollFlags::POLLIN) {
                    PeerStatus::Dead(pid)
                } else {
                    PeerStatus::Alive
                })
            }
        }
    }
}

/// Checks the position a previous endpoint of this side left, before attaching to it.
fn check_own_position(position: u64, role: &str) -> Result<()> {
    if position % RECORD_ALIGN == 0 {
        return Ok(());
    }
    Err(Error::corrupted(
        "channel attach",
        format!(
            "the {role}'s position {position} is impossible (positions are multiples of \
             {RECORD_ALIGN})"
        ),
    ))
}

fn own_start_time() -> u64 {
    ipc_core::internal::process_start_time(std::process::id()).unwrap_or(0)
}

/// The producing end of a channel.
///
/// Sends copy a message into the ring ([`send`](Producer::send)) or write it in place
/// ([`loan`](Producer::loan)); both publish it whole, so the consumer never sees part of
/// one, even if this process dies in the middle.
#[derive(Debug)]
pub struct Producer {
    ring: Ring,
    head: u64,
    cached_tail: u64,
}

impl Producer {
    fn attach(segment: SharedMemory, wait: WaitStrategy) -> Result<Producer> {
        let mut ring = Ring::open(segment, wait, HEAD, TAIL)?;
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

    /// The largest message this channel carries.
    pub fn max_message_size(&self) -> usize {
        self.ring.max
    }

    /// Checks a consumer position read from shared memory before it enters any arithmetic.
    fn validate_tail(&mut self, tail: u64) -> Result<()> {
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

    fn free(&self) -> u64 {
        self.ring.capacity - self.head.wrapping_sub(self.cached_tail)
    }

    /// Finds room for a record of `len` bytes, writing a padding record first if it must
    /// start at the beginning of the ring; returns the record's position.
    fn reserve(&mut self, len: usize, wait: Wait, op: &'static str) -> Result<u64> {
        if len > self.ring.max {
            let limit = Limit::new("ChannelOptions::max_message_size", self.ring.max as u64);
            return Err(Error::limit_exceeded(op, "message size", len as u64, limit));
        }
        // A consumer that closed will never read: report it rather than fill the ring.
        if self.ring.peer_closed() {
            return Err(Error::peer_gone(op, "the consumer closed the channel"));
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
        }
        if size > contiguous {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            let padding = u32::try_from(contiguous - RECORD_HEADER as u64).unwrap_or(u32::MAX);
            self.ring
                .segment()
                .write::<u64>(DATA + index, &record(padding, KIND_PADDING))?;
            return Ok(self.head.wrapping_add(contiguous));
        }
        Ok(self.head)
    }

    /// Writes the record header at `position` and publishes everything up to the record's
    /// end (padding included).
    fn commit(&mut self, position: u64, len: usize) -> Result<()> {
        let index = usize::try_from(position & (self.ring.capacity - 1)).unwrap_or(usize::MAX);
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        self.ring
            .segment()
            .write::<u64>(DATA + index, &record(len32, KIND_MESSAGE))?;
        self.head = position.wrapping_add((RECORD_HEADER + round8(len)) as u64);
        self.ring
            .control
            .position(HEAD_POS)
            .store(self.head, Ordering::Release);
        self.ring.wake_peer()
    }

    fn send_with(&mut self, msg: &[u8], wait: Wait, op: &'static str) -> Result<()> {
        let position = self.reserve(msg.len(), wait, op)?;
        let index = usize::try_from(position & (self.ring.capacity - 1)).unwrap_or(usize::MAX);
        self.ring
            .segment()
            .write_at(DATA + index + RECORD_HEADER, msg)?;
        self.commit(position, msg.len())
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

    // The zero-copy entry points are `#[inline]` so that the caller's crate keeps the loan
    // in registers. Returned through memory, each message cost the consumer a dozen more
    // stores, which queue behind its release of `tail` (a store that waits for the line
    // the producer is polling): 4 KiB zero-copy ran at 0.62x the raw ring instead of 0.97x.
    #[inline]
    fn loan_with(&mut self, len: usize, wait: Wait, op: &'static str) -> Result<SendLoan<'_>> {
        let position = self.reserve(len, wait, op)?;
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

fn record(len: u32, kind: u32) -> u64 {
    ((u64::from(kind) << 32) | u64::from(len)).to_le()
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
#[derive(Debug)]
pub struct SendLoan<'a> {
    producer: &'a mut Producer,
    position: u64,
    offset: usize,
    len: usize,
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
        self.producer.commit(self.position, self.len)
    }
}

fn check_within(offset: usize, len: usize, limit: usize, op: &'static str) -> Result<()> {
    if offset.checked_add(len).is_some_and(|end| end <= limit) {
        Ok(())
    } else {
        Err(Error::new(
            op,
            io::ErrorKind::InvalidInput,
            format!("{len} bytes at {offset} do not fit a message of {limit} bytes"),
        ))
    }
}

/// The consuming end of a channel.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    tail: u64,
    cached_head: u64,
}

/// A message found in the ring: where its payload is and how long it is.
#[derive(Clone, Copy, Debug)]
struct Found {
    offset: usize,
    len: usize,
    /// The position just past the record.
    end: u64,
}

impl Consumer {
    fn attach(segment: SharedMemory, wait: WaitStrategy) -> Result<Consumer> {
        let mut ring = Ring::open(segment, wait, TAIL, HEAD)?;
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

    /// The largest message this channel carries.
    pub fn max_message_size(&self) -> usize {
        self.ring.max
    }

    /// Checks a producer position read from shared memory before it enters any arithmetic.
    fn validate_head(&mut self, head: u64) -> Result<()> {
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
    fn next(&mut self, wait: Wait, op: &'static str) -> Result<Found> {
        loop {
            if self.cached_head == self.tail {
                let head = self.ring.control.position(HEAD_POS).load(Ordering::Acquire);
                self.validate_head(head)?;
            }
            if self.cached_head == self.tail {
                // Empty: a producer that closed or died will send nothing more.
                if self.ring.peer_closed() {
                    return Err(Error::peer_gone(op, "the producer closed the channel"));
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
    fn release(&mut self, end: u64) -> Result<()> {
        self.tail = end;
        self.ring
            .control
            .position(TAIL_POS)
            .store(end, Ordering::Release);
        self.ring.wake_peer()
    }

    fn recv_with(&mut self, buf: &mut [u8], wait: Wait, op: &'static str) -> Result<usize> {
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
    fn borrow_with(&mut self, wait: Wait, op: &'static str) -> Result<RecvLoan<'_>> {
        let found = self.next(wait, op)?;
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
    consumer: &'a mut Consumer,
    found: Found,
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
