//! The segment header: magic, layout version, size and initialisation state.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::Backoff;
use ipc_core::{Deadline, Error, Result};
use memmap2::MmapRaw;

use crate::sys;

/// Bytes the header takes at the start of a segment (one cache line); the application's
/// data starts at this offset.
pub const HEADER_LEN: usize = 64;

/// The header layout, for peers written in other languages. All fields little-endian, at
/// these byte offsets: `magic: u64` at 0, `version: u32` at 8, `state: u32` at 12 (0 empty,
/// 1 initialising, 2 ready; written last, with release ordering), `size: u64` at 16 (the
/// whole segment), `format: u32` at 24 (this header format, 1); the rest up to 64 is zero.
pub const HEADER_FORMAT: u32 = 1;

const MAGIC: usize = 0;
const VERSION: usize = 8;
const STATE: usize = 12;
const SIZE: usize = 16;
const FORMAT: usize = 24;

const EMPTY: u32 = 0;
const INITIALISING: u32 = 1;
const READY: u32 = 2;

/// What an application's segments look like: a magic number that says "this is ours" and a
/// layout version that changes whenever the data layout does.
///
/// A segment created with a layout carries it in its [header](HEADER_FORMAT); opening with a
/// layout waits until the creator has finished initialising the segment, then checks magic,
/// version and size, so a mismatch is an error at open instead of misread data later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Identifies the application (any constant, such as eight ASCII bytes).
    pub magic: u64,
    /// The version of the data layout after the header.
    pub version: u32,
}

impl Layout {
    /// A layout with `magic` and `version`.
    pub const fn new(magic: u64, version: u32) -> Self {
        Layout { magic, version }
    }
}

/// Writes the header of a new segment in the initialising state.
pub(crate) fn begin(map: &MmapRaw, layout: Layout) -> Result<()> {
    sys::write_value(map, MAGIC, &layout.magic.to_le())?;
    sys::write_value(map, VERSION, &layout.version.to_le())?;
    sys::write_value(map, SIZE, &(map.len() as u64).to_le())?;
    sys::write_value(map, FORMAT, &HEADER_FORMAT.to_le())?;
    sys::atomic_u32(map, STATE)?.store(INITIALISING, Ordering::Release);
    Ok(())
}

/// Marks the segment initialised: everything written before becomes visible to openers.
pub(crate) fn finish(map: &MmapRaw) -> Result<()> {
    sys::atomic_u32(map, STATE)?.store(READY, Ordering::Release);
    Ok(())
}

/// Waits until the segment is initialised, then checks it against `layout`.
pub(crate) fn wait_ready(
    map: &MmapRaw,
    layout: Layout,
    deadline: Deadline,
    subject: &str,
) -> Result<()> {
    const OP: &str = "open";
    let state = sys::atomic_u32(map, STATE)?;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    loop {
        match u32::from_le(state.load(Ordering::Acquire)) {
            READY => break,
            EMPTY | INITIALISING => {
                if !backoff
                    .pause(deadline, OP)
                    .map_err(|e| e.with_subject(subject))?
                {
                    return Err(Error::new(
                        OP,
                        std::io::ErrorKind::TimedOut,
                        "the segment's creator did not finish initialising it in time (it may have died)",
                    )
                    .with_subject(subject));
                }
            }
            other => {
                return Err(Error::corrupted(
                    OP,
                    format!("the header's state is {other}, not a valid state"),
                )
                .with_subject(subject));
            }
        }
    }
    let format = u32::from_le(sys::read_value::<u32>(map, FORMAT)?);
    if format != HEADER_FORMAT {
        return Err(Error::corrupted(
            OP,
            format!("unknown header format {format} (expected {HEADER_FORMAT})"),
        )
        .with_subject(subject));
    }
    let magic = u64::from_le(sys::read_value::<u64>(map, MAGIC)?);
    if magic != layout.magic {
        return Err(Error::corrupted(
            OP,
            format!(
                "magic {magic:#x} is not {:#x}: not a segment of this application",
                layout.magic
            ),
        )
        .with_subject(subject));
    }
    let version = u32::from_le(sys::read_value::<u32>(map, VERSION)?);
    if version != layout.version {
        return Err(Error::corrupted(
            OP,
            format!(
                "layout version {version}, but this program reads version {}",
                layout.version
            ),
        )
        .with_subject(subject));
    }
    let size = u64::from_le(sys::read_value::<u64>(map, SIZE)?);
    if size != map.len() as u64 {
        return Err(Error::corrupted(
            OP,
            format!(
                "the header says {size} bytes, the segment has {}",
                map.len()
            ),
        )
        .with_subject(subject));
    }
    Ok(())
}
