//! The benchmark's unsafe code: atomics in a shared mapping, raw pipe I/O, and the
//! `memcpy` floors.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicU64;

use ipc_core::{Error, Result};
use memmap2::MmapMut;

/// Bytes between two words, so that each sits on a cache line (and prefetch pair) of its own.
pub(crate) const WORD_STRIDE: usize = 128;

/// Returns word `index` of a shared mapping as an atomic.
///
/// # Errors
///
/// `InvalidInput` if the word lies outside the mapping.
pub(crate) fn shared_word(map: &MmapMut, index: usize) -> Result<&AtomicU64> {
    let offset = index
        .checked_mul(WORD_STRIDE)
        .filter(|&o| o + std::mem::size_of::<AtomicU64>() <= map.len())
        .ok_or_else(|| {
            Error::new(
                "shared_word",
                std::io::ErrorKind::InvalidInput,
                "word outside the mapping",
            )
        })?;
    // SAFETY: the pointer is in bounds (checked above) and 8-byte aligned (the mapping is
    // page-aligned and the offset a multiple of 128). `AtomicU64` has no invalid bit
    // patterns and is only accessed atomically, so the other process writing the same
    // word concurrently is not a data race. The reference borrows `map`, so it cannot
    // outlive the mapping.
    Ok(unsafe { &*map.as_ptr().add(offset).cast::<AtomicU64>() })
}

/// `write(2)` of the whole buffer, as a C program would: the raw floor of pipe I/O.
///
/// # Errors
///
/// The `write` error, or `WriteZero` if the pipe accepts nothing.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes and `fd` is open for the
        // duration of the borrow.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => {
                return Err(Error::new(
                    "write",
                    std::io::ErrorKind::WriteZero,
                    "wrote nothing",
                ));
            }
            Ok(n) => buf = &buf[n..],
            Err(_) => {
                let err = Error::last_os_error("write");
                if !err.is_interrupted() {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// `read(2)` until the buffer is full. Returns `false` at end of file before any byte.
///
/// # Errors
///
/// The `read` error, or `UnexpectedEof` if the stream ends inside the buffer.
pub(crate) fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes and `fd` is open for the
        // duration of the borrow.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(Error::new(
                    "read",
                    std::io::ErrorKind::UnexpectedEof,
                    "stream ended",
                ));
            }
            Ok(n) => filled += n,
            Err(_) => {
                let err = Error::last_os_error("read");
                if !err.is_interrupted() {
                    return Err(err);
                }
            }
        }
    }
    Ok(true)
}

/// Maps `len` bytes of the shared-memory object `fd` read-write and shared.
///
/// # Errors
///
/// The `mmap` error.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<MmapMut> {
    // SAFETY: memmap2 requires that the file is not resized or modified in ways that break
    // Rust's aliasing rules while mapped. The object belongs to this benchmark alone, has a
    // fixed size set before mapping, and its bytes are only ever accessed through
    // `shared_word`'s atomics, never through references to plain data.
    unsafe { memmap2::MmapOptions::new().len(len).map_mut(fd.as_raw_fd()) }
        .map_err(|e| Error::from(e).with_op("mmap"))
}

/// `memcpy` of `src` into the region at `base` (`len` bytes) at `offset`: the floor of every
/// copy into shared memory. Returns false, copying nothing, if it does not fit.
pub(crate) fn memcpy_to(base: *mut u8, len: usize, offset: usize, src: &[u8]) -> bool {
    if offset.checked_add(src.len()).is_none_or(|end| end > len) {
        return false;
    }
    // SAFETY: the caller passes a mapping of `len` bytes at `base`; the range fits (checked
    // above) and `src` is private memory, distinct from the mapping.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(offset), src.len()) };
    true
}

/// `memcpy` out of the region at `base` (`len` bytes) at `offset` into `dst`. Returns false,
/// copying nothing, if it does not fit.
pub(crate) fn memcpy_from(base: *const u8, len: usize, offset: usize, dst: &mut [u8]) -> bool {
    if offset.checked_add(dst.len()).is_none_or(|end| end > len) {
        return false;
    }
    // SAFETY: as for `memcpy_to`.
    unsafe { std::ptr::copy_nonoverlapping(base.add(offset), dst.as_mut_ptr(), dst.len()) };
    true
}
