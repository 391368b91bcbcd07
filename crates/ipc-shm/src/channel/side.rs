//! Who owns each side of a channel: the state word, and watching the process it names.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::Result;
use ipc_core::internal::PeerProcess;

use crate::SharedMemory;

use super::layout::*;

/// What a side's state word says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// No endpoint is attached: none ever was (the word of a new channel is 0, pid 0), or
    /// the process named in the word handed the end to another process, which has until
    /// the side's hand-off deadline to attach.
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
pub(super) struct SideState(pub(super) u64);

impl SideState {
    const PID_BITS: u32 = 22;

    pub(super) fn pid(self) -> u32 {
        (self.0 & ((1 << Self::PID_BITS) - 1)) as u32
    }

    pub(super) fn phase(self) -> Phase {
        match (self.0 >> Self::PID_BITS) & 3 {
            0 => Phase::Detached,
            1 => Phase::Claiming,
            2 => Phase::Attached,
            _ => Phase::Closed,
        }
    }

    pub(super) fn start24(self) -> u64 {
        self.0 >> 40
    }

    /// The next state of the side, by process `pid` that started at `start`.
    pub(super) fn next(self, phase: Phase, pid: u32, start: u64) -> SideState {
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
pub(super) const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// How often, in nanoseconds of the coarse clock, a call that finds nothing to do and
/// does not wait (an empty `try_recv`, a full `try_loan`) checks that its peer is alive:
/// the check is a `poll` of the peer's pidfd, five times the cost of the call without it,
/// which a program polling many channels would otherwise pay on every call. A clean close
/// is seen at once, through the peer's state word; a death is seen up to this late, plus a
/// tick of the coarse clock (4 ms at most).
pub(super) const IDLE_LIVENESS_NS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PeerStatus {
    NotYet,
    Alive,
    Closed,
    Dead(u32),
    /// Handed to another process (by the pid given), which did not attach in time.
    NeverAttached(u32),
}

/// Watches the process named in a side's state word, through the pidfd this process
/// shares among all its watchers of that process.
#[derive(Debug, Default)]
pub(super) struct PeerWatch {
    pub(super) process: Option<(SideState, Arc<PeerProcess>)>,
}

impl PeerWatch {
    pub(super) fn status(&mut self, segment: &SharedMemory, line: usize) -> Result<PeerStatus> {
        let state = SideState(
            segment
                .atomic_u64(identity(line) + STATE)?
                .load(Ordering::Acquire),
        );
        let pid = state.pid();
        match state.phase() {
            Phase::Detached if pid == 0 => Ok(PeerStatus::NotYet),
            Phase::Detached => {
                let deadline = segment
                    .atomic_u64(identity(line) + HANDOFF)?
                    .load(Ordering::Relaxed);
                Ok(if monotonic_ns() < deadline {
                    PeerStatus::NotYet
                } else {
                    PeerStatus::NeverAttached(pid)
                })
            }
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
                if !matches!(&self.process, Some((seen, _)) if *seen == state) {
                    self.process = None;
                    let start = segment
                        .atomic_u64(identity(line) + START)?
                        .load(Ordering::Relaxed);
                    // `None`: gone, or the pid now names a process that started at
                    // another time. An error (out of descriptors) is not a death.
                    let Some(process) = PeerProcess::get(pid, start)? else {
                        return Ok(PeerStatus::Dead(pid));
                    };
                    self.process = Some((state, process));
                }
                let Some((_, process)) = &self.process else {
                    return Ok(PeerStatus::Dead(pid));
                };
                Ok(if process.exited()? {
                    PeerStatus::Dead(pid)
                } else {
                    PeerStatus::Alive
                })
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the machine.
pub(super) fn monotonic_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_MONOTONIC)
}

/// The monotonic clock as of the last tick (1–4 ms old): a few nanoseconds to read, where
/// the precise clock took a quarter of an empty `try_recv`.
pub(super) fn coarse_monotonic_ns() -> u64 {
    clock_ns(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
}

fn clock_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock).map_or(0, |now| {
        u64::try_from(now.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(now.tv_nsec()).unwrap_or(0))
    })
}
