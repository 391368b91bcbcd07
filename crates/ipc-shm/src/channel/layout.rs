//! Where everything is in a channel segment, and the arithmetic on records and positions.

use std::io;

use ipc_core::{Error, Result};

use crate::Layout;

/// The header layout of channel segments.
pub const CHANNEL_LAYOUT: Layout = Layout::new(u64::from_le_bytes(*b"IPCRSCHN"), 4);

pub(super) const CAPACITY: usize = 64;
pub(super) const MAX_MESSAGE: usize = 72;
pub(super) const HEAD: usize = 128;
pub(super) const TAIL: usize = 256;
/// Offsets within a side's identity line.
pub(super) const STATE: usize = 0;
pub(super) const START: usize = 8;
pub(super) const PARKS: usize = 16;
/// When a side was handed to another process, the deadline (`CLOCK_MONOTONIC`
/// nanoseconds) by which that process must attach.
pub(super) const HANDOFF: usize = 24;
/// Offsets within a side's wait line.
pub(super) const FUTEX: usize = 0;
pub(super) const SLEEPING: usize = 4;
/// The id of the side's wake FIFO (`wake.rs`), 0 if it has none.
pub(super) const WAKE: usize = 8;

/// A side's identity line (pid, state, start time): written when attaching and closing.
pub(super) fn identity(side: usize) -> usize {
    if side == HEAD { 384 } else { 448 }
}

/// A side's wait line (futex word, sleeping flag): written only when the side parks, so
/// that checking whether the peer sleeps costs no cache miss while traffic flows.
pub(super) fn wait_line(side: usize) -> usize {
    if side == HEAD { 512 } else { 640 }
}
/// Where the ring starts.
pub(super) const DATA: usize = 4096;
pub(super) const RECORD_HEADER: usize = 8;
/// Records start at multiples of this: every position is one.
pub(super) const RECORD_ALIGN: u64 = 8;
pub(super) const KIND_MESSAGE: u32 = 1;
pub(super) const KIND_PADDING: u32 = 2;

/// `n` rounded up to a multiple of 8, saturating (a size beyond every limit stays beyond).
pub(super) fn round8(n: usize) -> usize {
    n.div_ceil(8).saturating_mul(8)
}

/// Whether a largest message of `max` bytes suits a ring of `capacity` bytes: its record
/// (header and payload rounded up to 8) must take at most half the ring, so that it fits
/// before the ring's end or at its start wherever the previous record ended. `max` may
/// come from shared memory: nothing here overflows.
pub(super) fn record_fits(max: u64, capacity: u64) -> bool {
    max.div_ceil(8)
        .checked_mul(8)
        .and_then(|rounded| rounded.checked_add(RECORD_HEADER as u64))
        .is_some_and(|size| size <= capacity / 2)
}

/// Whether a ring of `capacity` bytes with messages up to `max` fills a segment of
/// `segment_len` bytes as the layout says. Both values come from shared memory.
pub(super) fn geometry_is_valid(capacity: u64, max: u64, segment_len: usize) -> bool {
    capacity.is_power_of_two()
        && capacity >= 4096
        && usize::try_from(capacity).is_ok_and(|c| DATA.checked_add(c) == Some(segment_len))
        && max > 0
        && record_fits(max, capacity)
}

/// Checks the position a previous endpoint of this side left, before attaching to it.
pub(super) fn check_own_position(position: u64, role: &str) -> Result<()> {
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

pub(super) fn record(len: u32, kind: u32) -> u64 {
    ((u64::from(kind) << 32) | u64::from(len)).to_le()
}

/// Checks that `len` bytes at `offset` lie within a loaned message of `limit` bytes
/// (inlined, the error out of line, as `sys::check`).
#[inline]
pub(super) fn check_within(
    offset: usize,
    len: usize,
    limit: usize,
    op: &'static str,
) -> Result<()> {
    if offset.checked_add(len).is_some_and(|end| end <= limit) {
        Ok(())
    } else {
        Err(outside_message(op, offset, len, limit))
    }
}

#[cold]
#[inline(never)]
fn outside_message(op: &'static str, offset: usize, len: usize, limit: usize) -> Error {
    Error::new(
        op,
        io::ErrorKind::InvalidInput,
        format!("{len} bytes at {offset} do not fit a message of {limit} bytes"),
    )
}
