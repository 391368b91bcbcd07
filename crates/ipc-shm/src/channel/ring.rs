//! What both endpoints share: the validated geometry, claiming a side, how to wait, waking
//! and waiting.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use ipc_core::internal::Wait;
use ipc_core::{Deadline, Error, Result};

use crate::SharedMemory;
use crate::sys::Control;

use super::ChannelOptions;
use super::layout::*;
use super::side::{
    IDLE_LIVENESS_NS, LIVENESS_SLICE, PeerStatus, PeerWatch, Phase, SideState, coarse_monotonic_ns,
    monotonic_ns,
};
use super::wake::{ARMED, PARKED, PeerFifo, Role, Waiter};

/// Indices into an endpoint's [`Control`] words.
pub(super) const OWN_FUTEX: usize = 0;
pub(super) const OWN_SLEEPING: usize = 1;
pub(super) const PEER_FUTEX: usize = 2;
pub(super) const PEER_SLEEPING: usize = 3;
pub(super) const PEER_PARKS: usize = 4;
pub(super) const HEAD_POS: usize = 0;
pub(super) const TAIL_POS: usize = 1;
pub(super) const OWN_STATE: usize = 2;
pub(super) const PEER_STATE: usize = 3;

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

/// What both endpoints share: the segment, its validated geometry, and the liveness of the
/// other side.
#[derive(Debug)]
pub(super) struct Ring {
    pub(super) control: Control,
    pub(super) capacity: u64,
    pub(super) max: usize,
    pub(super) wait: WaitStrategy,
    /// How long a process that receives this end may take to attach (`hand_off`).
    pub(super) handoff_timeout: Duration,
    /// The offset of this side's control line, and of the peer's.
    pub(super) own: usize,
    pub(super) peer: usize,
    pub(super) peer_watch: PeerWatch,
    /// When (on the coarse clock) a call that did not wait last found the peer alive
    /// (see `IDLE_LIVENESS_NS`).
    idle_checked: Option<u64>,
    /// This side's state word once attached: closing changes exactly that word.
    pub(super) attached: Option<SideState>,
    /// What this end's errors name: the channel's name, or "anonymous channel".
    pub(super) subject: Arc<str>,
    /// The peer's wake FIFO, once it armed one.
    peer_fifo: PeerFifo,
    /// This side's readiness for pollers, made the first time it is asked for.
    waiter: std::sync::OnceLock<Arc<Waiter>>,
}

impl Ring {
    /// Maps the channel in `segment` for the side whose control line is at `own`; errors
    /// name the channel.
    pub(super) fn open(
        segment: SharedMemory,
        options: &ChannelOptions,
        own: usize,
        peer: usize,
    ) -> Result<Ring> {
        let subject: Arc<str> = match segment.name() {
            Some(name) => name.as_str().into(),
            None => "anonymous channel".into(),
        };
        Self::open_named(segment, options, own, peer, Arc::clone(&subject))
            .map_err(|e| e.with_subject(subject))
    }

    /// Names `err` after this channel.
    #[cold]
    #[inline(never)]
    pub(super) fn name_error(&self, err: Error) -> Error {
        err.with_subject(Arc::clone(&self.subject))
    }

    fn open_named(
        segment: SharedMemory,
        options: &ChannelOptions,
        own: usize,
        peer: usize,
        subject: Arc<str>,
    ) -> Result<Ring> {
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
        if !geometry_is_valid(capacity, max, segment.len()) {
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
            wait: options.wait,
            handoff_timeout: options.timeout,
            own,
            peer,
            peer_watch: PeerWatch::default(),
            idle_checked: None,
            attached: None,
            subject,
            peer_fifo: PeerFifo::default(),
            waiter: std::sync::OnceLock::new(),
        })
    }

    pub(super) fn segment(&self) -> &SharedMemory {
        self.control.segment()
    }

    pub(super) fn word(&self, offset: usize) -> Result<&AtomicU32> {
        self.segment().atomic_u32(offset)
    }

    pub(super) fn position(&self, offset: usize) -> Result<&AtomicU64> {
        self.segment().atomic_u64(offset)
    }

    /// Claims this side's role: only one live endpoint per side. A side whose endpoint
    /// closed, or whose process (attached or half-way through attaching) died, is taken
    /// over.
    pub(super) fn claim(&mut self, role: &'static str) -> Result<()> {
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
        let (pid, start) = ipc_core::internal::this_process();
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

    /// Leaves this side, without closing it, to a process that will attach with the
    /// segment's descriptor: the word names this process in the detached phase, after the
    /// deadline by which the receiver must attach, which the peer then watches. Returns the
    /// segment's descriptor to hand over.
    pub(super) fn hand_off(&mut self, role: &str) -> Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        let fd = self
            .segment()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| self.name_error(Error::from(e).with_op("dup")))?;
        let Some(attached) = self.attached else {
            return Err(self.name_error(Error::new(
                "channel hand-off",
                io::ErrorKind::InvalidInput,
                format!("this {role} is not attached"),
            )));
        };
        let timeout = u64::try_from(self.handoff_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.position(identity(self.own) + HANDOFF)?
            .store(monotonic_ns().saturating_add(timeout), Ordering::Relaxed);
        let handed = attached.next(Phase::Detached, attached.pid(), attached.start24());
        // Release: the deadline is written before the word that points at it.
        if self
            .control
            .position(OWN_STATE)
            .compare_exchange(attached.0, handed.0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(self.name_error(Error::new(
                "channel hand-off",
                io::ErrorKind::AddrInUse,
                format!("the {role} side was taken over by another process"),
            )));
        }
        self.attached = None;
        if let Some(waiter) = self.waiter.get() {
            waiter.detach();
        }
        Ok(fd)
    }

    /// Marks this side closed and wakes the peer, so that it sees it at once. A side taken
    /// over since (which only a peer that took this process for dead does) is left alone.
    /// A peer found dead has its wake FIFO removed: it could not remove it itself.
    pub(super) fn close(&mut self) {
        if let Some(waiter) = self.waiter.get() {
            waiter.detach();
        }
        if let Ok(PeerStatus::Dead(pid)) = self.peer_watch.status(self.control.segment(), self.peer)
        {
            self.remove_dead_peer_fifo(pid);
        }
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
        if self.control.word(PEER_SLEEPING).load(Ordering::Relaxed) & ARMED != 0 {
            self.wake_fifo();
        }
    }

    /// Whether the peer closed its end. An acquire read (a plain load on x86, so the fast
    /// paths pay nothing for it): the positions the peer published before it closed are
    /// visible once its close is.
    #[inline]
    pub(super) fn peer_closed(&self) -> bool {
        SideState(self.control.position(PEER_STATE).load(Ordering::Acquire)).phase()
            == Phase::Closed
    }

    /// Wakes the peer if it sleeps (after publishing a position with release ordering).
    #[inline]
    pub(super) fn wake_peer(&mut self) -> Result<()> {
        // A busy-polling peer never parks, so the fence (an `mfence` on x86, a good part of
        // a zero-copy message's cost) and the check are skipped. A successor that attaches
        // with another strategy sets the flag before it attaches; should this side still
        // read the old value, the successor's first park lasts one liveness slice (20 ms)
        // at most, as it re-checks the ring after every slice.
        if self.control.word(PEER_PARKS).load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        fence(Ordering::SeqCst);
        let sleeping = self.control.word(PEER_SLEEPING).load(Ordering::Relaxed);
        if sleeping != 0 {
            self.wake_sleeping(sleeping);
        }
        Ok(())
    }

    /// Wakes a peer parked on its futex (any bit but "armed": a value a peer wrote is
    /// taken for a sleeper) and one armed for a poller.
    #[cold]
    fn wake_sleeping(&mut self, sleeping: u32) {
        if sleeping & !ARMED != 0 {
            let futex = self.control.word(PEER_FUTEX);
            futex.fetch_add(1, Ordering::Release);
            ipc_core::internal::futex_wake(futex, 1);
        }
        if sleeping & ARMED != 0 {
            self.wake_fifo();
        }
    }

    /// Writes the peer's wake FIFO, named by the pid in its state word and the id in its
    /// wait line.
    #[cold]
    fn wake_fifo(&mut self) {
        let pid = SideState(self.control.position(PEER_STATE).load(Ordering::Acquire)).pid();
        let id = self
            .segment()
            .atomic_u64(wait_line(self.peer) + WAKE)
            .map_or(0, |id| id.load(Ordering::Relaxed));
        self.peer_fifo.wake(pid, id);
    }

    /// Removes the wake FIFO the dead peer `pid` left, if it made one.
    #[cold]
    fn remove_dead_peer_fifo(&self, pid: u32) {
        let id = self
            .segment()
            .atomic_u64(wait_line(self.peer) + WAKE)
            .map_or(0, |id| id.load(Ordering::Relaxed));
        super::wake::remove_fifo_of_dead(pid, id);
    }

    /// This side's readiness for a poller waiting as `interest` says, which must be the
    /// one of `role`.
    pub(super) fn readiness(
        &self,
        role: Role,
        interest: ipc_core::Interest,
    ) -> Result<ipc_core::Readiness> {
        let (expected, what) = match role {
            Role::Consumer => (
                ipc_core::Interest::Readable,
                "a consumer waits for messages",
            ),
            Role::Producer => (ipc_core::Interest::Writable, "a producer waits for room"),
        };
        if interest != expected {
            return Err(self.name_error(Error::new(
                "Selector::add",
                io::ErrorKind::InvalidInput,
                format!("{what}: wait on it as Interest::{expected:?}"),
            )));
        }
        let waiter = self.waiter(role)?;
        let fd = waiter.descriptor()?;
        Ok(ipc_core::Readiness::hooked(fd, waiter))
    }

    /// This side's readiness for pollers (made once), as `role`.
    fn waiter(&self, role: Role) -> Result<Arc<Waiter>> {
        if let Some(waiter) = self.waiter.get() {
            return Ok(Arc::clone(waiter));
        }
        let waiter = Waiter::new(
            self.control.share_segment(),
            role,
            (self.own, self.peer),
            self.capacity,
            self.max,
        )
        .map_err(|e| self.name_error(e))?;
        // Two threads that race here make two; the loser's is dropped (and its FIFO
        // removed) unused.
        Ok(Arc::clone(self.waiter.get_or_init(|| Arc::new(waiter))))
    }

    /// Waits until `ready()` holds, as the wait strategy and `wait` say. `ready` reads the
    /// peer's position.
    pub(super) fn wait_for(
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
                if let Err(err) = self.ensure_peer_lately(op) {
                    return self.gone_unless_ready(err, &mut ready);
                }
                return Err(Error::would_block(op));
            }
            Wait::Block => Deadline::NEVER,
            Wait::Until(deadline) => deadline,
        };
        let spin = match self.wait {
            WaitStrategy::BusyPoll => None,
            WaitStrategy::SpinThenPark { spin } => Some(spin),
            WaitStrategy::Blocking => Some(Duration::ZERO),
        };
        // Spin, checking the clock, the deadline and the peer every 256 spins. The clock
        // is first read there, not on the way in: a side that finds the ring full or empty
        // for a moment on every message (a producer just ahead of its consumer) would pay
        // a clock read per message, a cost of the order of a whole zero-copy message, and
        // a wait that ends within 256 spins needs no clock at all. The spin thus lasts up
        // to 256 spins longer than asked.
        if spin != Some(Duration::ZERO) {
            let mut spins = 0u32;
            let mut started = None;
            let mut next_check = None;
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
                    let started = *started.get_or_insert(now);
                    let check = *next_check.get_or_insert(now + LIVENESS_SLICE);
                    if now >= check {
                        if let Err(err) = self.ensure_peer(op) {
                            return self.gone_unless_ready(err, &mut ready);
                        }
                        ipc_core::internal::check_cancelled(op)?;
                        next_check = Some(now + LIVENESS_SLICE);
                    }
                    if spin.is_some_and(|spin| now >= started + spin) {
                        break;
                    }
                }
            }
        }
        // Park on the futex, a slice at a time.
        loop {
            // Bits, not stores: a poller on another thread may have armed this side.
            let seq = self.control.word(OWN_FUTEX).load(Ordering::Acquire);
            let sleeping = self.control.word(OWN_SLEEPING);
            sleeping.fetch_or(PARKED, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready(self)? {
                sleeping.fetch_and(!PARKED, Ordering::Relaxed);
                return Ok(());
            }
            let checked = match self.ensure_peer(op) {
                Err(err) => self.gone_unless_ready(err, &mut ready).map(|()| true),
                Ok(()) => ipc_core::internal::check_cancelled(op).map(|()| false),
            };
            if !matches!(checked, Ok(false)) {
                self.control
                    .word(OWN_SLEEPING)
                    .fetch_and(!PARKED, Ordering::Relaxed);
                return checked.map(|_| ());
            }
            let slice = deadline
                .remaining()
                .map_or(LIVENESS_SLICE, |left| left.min(LIVENESS_SLICE));
            let sleeping = self.control.word(OWN_SLEEPING);
            if slice.is_zero() {
                sleeping.fetch_and(!PARKED, Ordering::Relaxed);
                return Err(Error::timed_out(op));
            }
            ipc_core::internal::futex_wait(self.control.word(OWN_FUTEX), seq, Some(slice));
            sleeping.fetch_and(!PARKED, Ordering::Relaxed);
        }
    }

    /// What a wait that found its peer gone (`err`) returns: nothing, if the peer made this
    /// side ready before it went (published its last messages, freed space) after `ready`
    /// last looked; `err` otherwise. The peer's close is read with acquire ordering, and a
    /// death is seen through the kernel, so what the peer wrote before is visible now.
    fn gone_unless_ready(
        &mut self,
        err: Error,
        ready: &mut impl FnMut(&Ring) -> Result<bool>,
    ) -> Result<()> {
        if ready(self)? { Ok(()) } else { Err(err) }
    }

    /// [`ensure_peer`](Self::ensure_peer) for a call that does not wait: at most once per
    /// `IDLE_LIVENESS_NS`, unless a poller watches this side: it calls after a wake-up
    /// (which may be the peer's death), not in a loop.
    fn ensure_peer_lately(&mut self, op: &'static str) -> Result<()> {
        let now = coarse_monotonic_ns();
        // 0: the clock could not be read; then look every time.
        if now != 0
            && self.waiter.get().is_none()
            && self
                .idle_checked
                .is_some_and(|checked| now.saturating_sub(checked) < IDLE_LIVENESS_NS)
        {
            return Ok(());
        }
        self.ensure_peer(op)?;
        self.idle_checked = Some(now);
        Ok(())
    }

    /// Fails with peer-gone if the peer closed its end or died.
    pub(super) fn ensure_peer(&mut self, op: &'static str) -> Result<()> {
        match self.peer_watch.status(self.control.segment(), self.peer)? {
            PeerStatus::Alive | PeerStatus::NotYet => Ok(()),
            PeerStatus::Closed => Err(Error::peer_gone(op, "the other end closed the channel")),
            PeerStatus::Dead(pid) => {
                self.remove_dead_peer_fifo(pid);
                Err(Error::peer_gone(
                    op,
                    format!("the other end (pid {pid}) died"),
                ))
            }
            PeerStatus::NeverAttached(pid) => Err(Error::peer_gone(
                op,
                format!(
                    "the other end, handed off by pid {pid}, was not attached within the \
                     hand-off timeout (ChannelOptions::timeout)"
                ),
            )),
        }
    }
}
