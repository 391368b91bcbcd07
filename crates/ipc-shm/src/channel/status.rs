//! Reading a channel's state without attaching to it, for tools (`ipc inspect`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use ipc_core::internal::PeerProcess;
use ipc_core::{Error, IpcName, Result};

use super::layout::*;
use super::side::{Phase, SideState, monotonic_ns};
use super::wake::{ARMED, PARKED};
use crate::segment::SHM_DIR;

/// What the endpoint of one side of a channel is doing, as the segment says and `/proc`
/// confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointState {
    /// No endpoint ever attached.
    Never,
    /// A process is attaching.
    Attaching,
    /// An endpoint is attached, and its process lives.
    Attached,
    /// The endpoint was handed to another process, which may still attach.
    HandedOff,
    /// The endpoint closed its end.
    Closed,
    /// The process that held (or was attaching, or was handed) the end is gone.
    Dead,
}

/// One side of a channel (the producer or the consumer), as its segment describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideStatus {
    pid: u32,
    state: EndpointState,
    parks: u32,
    parked: bool,
    polled: bool,
}

impl SideStatus {
    /// The pid the side names (of its endpoint, or of the process that handed it off), or
    /// `None` if no endpoint ever attached.
    pub fn pid(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.pid)
    }

    /// What its endpoint is doing.
    pub fn state(&self) -> EndpointState {
        self.state
    }

    /// Whether its endpoint may sleep when it waits (a blocking or spin-then-park
    /// strategy, or a poller watching it), so that the other side wakes it: `false` for a
    /// busy-polling endpoint.
    pub fn may_sleep(&self) -> bool {
        self.parks != 0
    }

    /// Whether the endpoint is asleep on its futex now.
    pub fn parked(&self) -> bool {
        self.parked
    }

    /// Whether the endpoint is watched by a poller (a `Selector` or `Async`), through a
    /// wake FIFO.
    pub fn polled(&self) -> bool {
        self.polled
    }
}

/// A channel's geometry, positions and sides, read from its segment without attaching, so
/// that neither end is disturbed.
///
/// The segment is read with `pread`, never mapped: a peer that shrinks the file cannot make
/// the reader fault, and whatever the segment holds is only reported, never followed
/// (positions that cannot be right make [`queued`](Self::queued) `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelStatus {
    capacity: u64,
    max_message: u64,
    written: u64,
    read: u64,
    producer: SideStatus,
    consumer: SideStatus,
}

impl ChannelStatus {
    /// Reads the channel in the named segment.
    ///
    /// # Errors
    ///
    /// The errors of `open` and `pread` on `/dev/shm/NAME`; `InvalidData` if the segment
    /// is not a channel of this version (its header) or its geometry is impossible.
    pub fn read(name: &IpcName) -> Result<ChannelStatus> {
        let path = format!("{SHM_DIR}{}", name.as_str());
        let fail = |e: io::Error, op: &'static str| Error::from(e).with_op(op).with_subject(name);
        let file = File::open(&path).map_err(|e| fail(e, "open"))?;
        let len = file.metadata().map_err(|e| fail(e, "fstat"))?.len();
        let mut head = [0u8; DATA];
        let got = file.read_at(&mut head, 0).map_err(|e| fail(e, "pread"))?;
        let not_a_channel =
            |why: String| Error::corrupted("channel status", why).with_subject(name);
        if got < DATA {
            return Err(not_a_channel(format!(
                "{got} bytes: too short for a channel"
            )));
        }
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&head[at..at + 8]);
            u64::from_ne_bytes(bytes)
        };
        let u32_at = |at: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&head[at..at + 4]);
            u32::from_ne_bytes(bytes)
        };
        // The header is little-endian (header.rs): magic at 0, version at 8.
        let magic = u64::from_le(u64_at(0));
        let version = u32::from_le(u32_at(8));
        if magic != CHANNEL_LAYOUT.magic || version != CHANNEL_LAYOUT.version {
            return Err(not_a_channel(format!(
                "magic {magic:#x} version {version}: not a channel of layout version {}",
                CHANNEL_LAYOUT.version
            )));
        }
        let capacity = u64_at(CAPACITY);
        let max_message = u64_at(MAX_MESSAGE);
        let segment_len = usize::try_from(len).unwrap_or(usize::MAX);
        if !geometry_is_valid(capacity, max_message, segment_len) {
            return Err(not_a_channel(format!(
                "impossible geometry: capacity {capacity}, max message {max_message}, \
                 segment {len} bytes"
            )));
        }
        let side = |line: usize| {
            let state = SideState(u64_at(identity(line) + STATE));
            let start = u64_at(identity(line) + START);
            let handoff = u64_at(identity(line) + HANDOFF);
            let sleeping = u32_at(wait_line(line) + SLEEPING);
            SideStatus {
                pid: state.pid(),
                state: endpoint_state(state, start, handoff),
                parks: u32_at(identity(line) + PARKS),
                parked: sleeping & PARKED != 0,
                polled: sleeping & ARMED != 0 || u64_at(wait_line(line) + WAKE) != 0,
            }
        };
        Ok(ChannelStatus {
            capacity,
            max_message,
            written: u64_at(HEAD),
            read: u64_at(TAIL),
            producer: side(HEAD),
            consumer: side(TAIL),
        })
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest message the channel takes, in bytes.
    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// The producer's position: bytes of records published since the channel was made.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The consumer's position: bytes of records released since the channel was made.
    pub fn read_position(&self) -> u64 {
        self.read
    }

    /// Bytes of records waiting for the consumer (headers and padding included), or `None`
    /// if the positions cannot be right (the consumer ahead of the producer, or more than
    /// a ring apart).
    pub fn queued(&self) -> Option<u64> {
        self.written
            .checked_sub(self.read)
            .filter(|&queued| queued <= self.capacity)
    }

    /// The producer's side.
    pub fn producer(&self) -> SideStatus {
        self.producer
    }

    /// The consumer's side.
    pub fn consumer(&self) -> SideStatus {
        self.consumer
    }
}

/// The endpoint state a side's words describe, with the process it names checked.
fn endpoint_state(state: SideState, start: u64, handoff: u64) -> EndpointState {
    let pid = state.pid();
    // A claimant's word holds the low bits of its start time (side.rs).
    let claimant_lives = || {
        ipc_core::internal::process_start_time(pid)
            .is_some_and(|actual| actual & 0xff_ffff == state.start24())
    };
    match state.phase() {
        Phase::Detached if pid == 0 => EndpointState::Never,
        Phase::Detached if monotonic_ns() < handoff => EndpointState::HandedOff,
        Phase::Detached => EndpointState::Dead,
        Phase::Closed => EndpointState::Closed,
        Phase::Claiming if claimant_lives() => EndpointState::Attaching,
        // `get` checks the start time, so a reused pid is not taken for the endpoint.
        Phase::Attached
            if PeerProcess::get(pid, start)
                .ok()
                .flatten()
                .is_some_and(|process| !process.exited().unwrap_or(true)) =>
        {
            EndpointState::Attached
        }
        Phase::Claiming | Phase::Attached => EndpointState::Dead,
    }
}
