//! The crate's only unsafe code: copies to and from the mapping, atomics and plain values at
//! checked offsets, the unsafe slice views and the channel's table of control words.
//!
//! Every function checks its offset and length against the mapping first, so the safe ones
//! are sound whatever the caller passes. No function creates a reference to plain bytes
//! of the mapping, because another process may write them at any time (ARCHITECTURE.md,
//! invariant 7).

use std::sync::atomic::{AtomicU32, AtomicU64};

use ipc_core::{Error, Result, SharedRegion, ShmSafe};

use crate::SharedMemory;
use memmap2::MmapRaw;

/// Checks that `len` bytes at `offset` lie inside `map`, and returns the end.
///
/// Inlined, with the error made out of line: on a channel's path this runs for every
/// message, and a call that builds an `Error` on its stack stores to it even when it
/// succeeds (see `Producer::reserve`).
#[inline]
pub(crate) fn check(map: &MmapRaw, offset: usize, len: usize, op: &'static str) -> Result<usize> {
    match offset.checked_add(len) {
        Some(end) if end <= map.len() => Ok(end),
        _ => Err(outside(op, offset, len, map.len())),
    }
}

#[cold]
#[inline(never)]
fn outside(op: &'static str, offset: usize, len: usize, size: usize) -> Error {
    Error::new(
        op,
        std::io::ErrorKind::InvalidInput,
        format!("{len} bytes at offset {offset} do not fit a segment of {size} bytes"),
    )
}

/// Copies `buf.len()` bytes from offset `offset` of the mapping.
#[inline]
pub(crate) fn copy_out(map: &MmapRaw, offset: usize, buf: &mut [u8]) -> Result<()> {
    check(map, offset, buf.len(), "read_at")?;
    // SAFETY: the source range lies inside the mapping (checked above), which stays mapped
    // while `map` is borrowed; `buf` is a distinct, valid destination of the same length.
    // The source is reached through a raw pointer only, so a concurrent write by another
    // process at worst makes the copied bytes a mix of old and new values.
    unsafe { std::ptr::copy_nonoverlapping(map.as_ptr().add(offset), buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

/// Copies `data` to offset `offset` of the mapping.
#[inline]
pub(crate) fn copy_in(map: &MmapRaw, offset: usize, data: &[u8]) -> Result<()> {
    check(map, offset, data.len(), "write_at")?;
    // SAFETY: the destination range lies inside the mapping (checked above), which is
    // writable (the caller checks) and stays mapped while `map` is borrowed; `data` is a
    // distinct, valid source of the same length.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), map.as_mut_ptr().add(offset), data.len())
    };
    Ok(())
}

/// Reads a `T` at `offset` (any alignment).
#[inline]
pub(crate) fn read_value<T: ShmSafe>(map: &MmapRaw, offset: usize) -> Result<T> {
    check(map, offset, std::mem::size_of::<T>(), "read")?;
    // SAFETY: the bytes lie inside the mapping (checked above); `read_unaligned` accepts any
    // alignment; `T: ShmSafe` guarantees that whatever bytes a peer wrote form a valid `T`.
    Ok(unsafe { std::ptr::read_unaligned(map.as_ptr().add(offset).cast::<T>()) })
}

/// Writes `value` at `offset` (any alignment).
#[inline]
pub(crate) fn write_value<T: ShmSafe>(map: &MmapRaw, offset: usize, value: &T) -> Result<()> {
    check(map, offset, std::mem::size_of::<T>(), "write")?;
    // SAFETY: the bytes lie inside the writable mapping (checked above, writability by the
    // caller); `write_unaligned` accepts any alignment.
    unsafe { std::ptr::write_unaligned(map.as_mut_ptr().add(offset).cast::<T>(), *value) };
    Ok(())
}

fn aligned(map: &MmapRaw, offset: usize, size: usize, op: &'static str) -> Result<*mut u8> {
    check(map, offset, size, op)?;
    // SAFETY: `offset` is inside the mapping (checked above), so the pointer stays in it.
    let ptr = unsafe { map.as_mut_ptr().add(offset) };
    if (ptr as usize) % size != 0 {
        return Err(Error::new(
            op,
            std::io::ErrorKind::InvalidInput,
            format!("offset {offset} is not aligned to {size} bytes"),
        ));
    }
    Ok(ptr)
}

/// The `AtomicU32` at `offset`, which must be aligned.
pub(crate) fn atomic_u32(map: &MmapRaw, offset: usize) -> Result<&AtomicU32> {
    let ptr = aligned(map, offset, 4, "atomic_u32")?;
    // SAFETY: the pointer is in bounds and 4-byte aligned (checked above); `AtomicU32` has
    // no invalid bit patterns and is only accessed atomically, so another process writing
    // the same word is not a data race; the reference borrows `map`, so it cannot outlive
    // the mapping.
    Ok(unsafe { &*ptr.cast::<AtomicU32>() })
}

/// The `AtomicU64` at `offset`, which must be aligned.
pub(crate) fn atomic_u64(map: &MmapRaw, offset: usize) -> Result<&AtomicU64> {
    let ptr = aligned(map, offset, 8, "atomic_u64")?;
    // SAFETY: as for `atomic_u32`, with 8-byte alignment.
    Ok(unsafe { &*ptr.cast::<AtomicU64>() })
}

/// `len` bytes at `ptr` as a slice.
///
/// # Safety
///
/// The bytes are inside a mapping that outlives `'a`, and nobody writes them while the slice
/// lives.
pub(crate) unsafe fn slice<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// `len` bytes at `ptr` as a mutable slice.
///
/// # Safety
///
/// The bytes are inside a writable mapping that outlives `'a`, and nobody else reads or
/// writes them while the slice lives.
pub(crate) unsafe fn slice_mut<'a>(ptr: *mut u8, len: usize) -> &'a mut [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// The whole mapping as a byte slice.
///
/// # Safety
///
/// See [`SharedMemory::as_slice`](crate::SharedMemory::as_slice).
pub(crate) unsafe fn as_slice(map: &MmapRaw) -> &[u8] {
    // SAFETY: the mapping is `map.len()` readable bytes that stay mapped while `map` is
    // borrowed; the caller guarantees that nobody writes them meanwhile.
    unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) }
}

/// The whole mapping as a mutable byte slice.
///
/// # Safety
///
/// See [`SharedMemory::as_mut_slice`](crate::SharedMemory::as_mut_slice).
pub(crate) unsafe fn as_mut_slice(map: &mut MmapRaw) -> &mut [u8] {
    // SAFETY: the mapping is `map.len()` writable bytes that stay mapped while `map` is
    // borrowed; the caller guarantees that nobody else reads or writes them meanwhile.
    unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr(), map.len()) }
}

// SAFETY: the mapping stays at the same address with `len()` bytes for the value's life
// (it is unmapped on drop only), readable, and writable when `is_writable()` says so.
unsafe impl SharedRegion for SharedMemory {
    fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_writable(&self) -> bool {
        self.writable
    }
}

/// A channel segment and the addresses of its control words, looked up and checked once,
/// then used on every operation without further checks. Owning (a share of) the segment is
/// what keeps the addresses valid; the share is lent to the side's poller waiter, so that
/// a polled side holds one mapping and one descriptor of it, not two.
#[derive(Debug)]
pub(crate) struct Control {
    segment: std::sync::Arc<SharedMemory>,
    words32: [std::ptr::NonNull<AtomicU32>; 5],
    words64: [std::ptr::NonNull<AtomicU64>; 4],
}

// SAFETY: the pointers refer to atomics inside the segment this struct owns; atomics may be
// used from any thread.
unsafe impl Send for Control {}
// SAFETY: as above; all access is through `&AtomicU32`/`&AtomicU64`.
unsafe impl Sync for Control {}

impl Control {
    /// Takes `segment` and looks up the 32-bit words at `offsets32` and the 64-bit words at
    /// `offsets64`, checking bounds, alignment and writability.
    pub(crate) fn new(
        segment: SharedMemory,
        offsets32: [usize; 5],
        offsets64: [usize; 4],
    ) -> Result<Control> {
        let mut words32 = [std::ptr::NonNull::dangling(); 5];
        for (slot, offset) in words32.iter_mut().zip(offsets32) {
            *slot = std::ptr::NonNull::from(segment.atomic_u32(offset)?);
        }
        let mut words64 = [std::ptr::NonNull::dangling(); 4];
        for (slot, offset) in words64.iter_mut().zip(offsets64) {
            *slot = std::ptr::NonNull::from(segment.atomic_u64(offset)?);
        }
        Ok(Control {
            segment: std::sync::Arc::new(segment),
            words32,
            words64,
        })
    }

    /// The segment.
    #[inline]
    pub(crate) fn segment(&self) -> &SharedMemory {
        &self.segment
    }

    /// A share of the segment, which keeps it mapped as long as it lives.
    pub(crate) fn share_segment(&self) -> std::sync::Arc<SharedMemory> {
        std::sync::Arc::clone(&self.segment)
    }

    /// 32-bit word `i` (of the `offsets32` given at construction).
    #[inline]
    pub(crate) fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the pointer came from a checked `atomic_u32` of `self.segment`, which is
        // mapped (at a fixed address) for as long as `self` lives.
        unsafe { self.words32[i].as_ref() }
    }

    /// 64-bit word `i`.
    #[inline]
    pub(crate) fn position(&self, i: usize) -> &AtomicU64 {
        // SAFETY: as for `word`.
        unsafe { self.words64[i].as_ref() }
    }
}
