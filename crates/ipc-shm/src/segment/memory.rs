//! A mapped segment, and what every kind of segment does to get one: sizing and reserving
//! space, checking an object's allocation, mapping it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, AtomicU64};

use ipc_core::internal::{ObjectId, unlink_if_ours};
use ipc_core::{Error, IpcName, Result, ShmSafe, Unlink, UnlinkOnDrop};
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{FcntlArg, SealFlag, fcntl};

use super::seals::Seals;
use crate::header::{HEADER_LEN, Layout};
use crate::sys;

/// Where glibc's `shm_open` keeps named segments: `shm_open("/x")` opens `/dev/shm/x`.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The file-system magic number of tmpfs, where `/dev/shm` objects and memfds live.
pub(crate) const TMPFS_MAGIC: i64 = 0x0102_1994;
/// The file-system magic number of hugetlbfs (memfds created with `MFD_HUGETLB`).
pub(crate) const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// The name of a segment and the object it led to, which its creator removes on drop.
#[derive(Debug)]
pub(crate) struct SegmentName(pub(crate) IpcName, pub(crate) Option<ObjectId>);

impl Unlink for SegmentName {
    /// Removes the name, unless it now leads to another object (a successor created after
    /// a purge): a creator's drop must never take the name from under its successor.
    fn unlink(&self) -> Result<()> {
        let unlink = || {
            nix::sys::mman::shm_unlink(self.0.as_cstr())
                .map_err(|e| Error::from_errno("shm_unlink", e).with_subject(&self.0))
        };
        let Some(ours) = self.1 else {
            return unlink();
        };
        // One `lstat` of the file `shm_open` would open tells what the name leads to now,
        // without opening it.
        let current = std::fs::symlink_metadata(format!("{SHM_DIR}{}", self.0.as_str()))
            .ok()
            .map(|meta| ObjectId::of(&meta));
        unlink_if_ours(
            "shm_unlink",
            self.0.as_str(),
            "segment",
            ours,
            current,
            unlink,
        )
    }
}

/// A mapped shared-memory segment and its descriptor.
///
/// Made by [`ShmOptions`](crate::ShmOptions) (named, `shm_open`), [`MemfdOptions`](crate::MemfdOptions) (anonymous, sealed) or
/// [`SharedMemory::from_fd`] (received from another process). The memory is shared with
/// processes that may write it at any time, so this type never hands out references to
/// plain bytes: it offers bounds-checked copies ([`read_at`](SharedMemory::read_at),
/// [`write_at`](SharedMemory::write_at)), values of [`ShmSafe`] types, checked atomics and
/// raw pointers; byte slices only through `unsafe fn`s with their contract spelled out.
///
/// ```
/// use ipc_shm::{ShmOptions, SharedMemory};
///
/// let name = ipc_shm::IpcName::unique("doc-segment")?;
/// let segment = ShmOptions::new().size(4096).create(&name)?;
/// segment.write_at(0, b"hello")?;
///
/// let other = ShmOptions::new().open(&name)?; // another process would do this
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// drop(segment); // the creator removes the name
/// # Ok::<(), ipc_shm::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    pub(crate) map: MmapRaw,
    pub(crate) fd: OwnedFd,
    pub(crate) writable: bool,
    pub(crate) name: Option<UnlinkOnDrop<SegmentName>>,
    pub(crate) layout: Option<Layout>,
}

impl SharedMemory {
    /// The segment's size in bytes (its whole mapping).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True for an empty mapping (never the case: segments are at least one byte).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Where the application's data starts: [`HEADER_LEN`] if the segment has a header, 0
    /// otherwise.
    pub fn data_offset(&self) -> usize {
        if self.layout.is_some() { HEADER_LEN } else { 0 }
    }

    /// Whether this mapping may be written.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The segment's name, for named segments.
    pub fn name(&self) -> Option<&IpcName> {
        self.name.as_ref().map(|n| &n.get().0)
    }

    /// The first byte of the mapping. Accesses through it must stay within
    /// [`len`](SharedMemory::len) bytes, and writes are allowed only if
    /// [`is_writable`](SharedMemory::is_writable).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    #[inline]
    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(read_only(op))
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range does not lie inside the segment.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        sys::copy_out(&self.map, offset, buf)
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range does not lie inside the segment; `PermissionDenied` if it
    /// is mapped read-only.
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write_at")?;
        sys::copy_in(&self.map, offset, data)
    }

    /// Reads a value of a [`ShmSafe`] type at `offset` (any alignment). Whatever a peer wrote
    /// there, the result is a valid `T`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it does not lie inside the segment.
    #[inline]
    pub fn read<T: ShmSafe>(&self, offset: usize) -> Result<T> {
        sys::read_value(&self.map, offset)
    }

    /// Writes a value of a [`ShmSafe`] type at `offset` (any alignment).
    ///
    /// # Errors
    ///
    /// As [`write_at`](SharedMemory::write_at).
    #[inline]
    pub fn write<T: ShmSafe>(&self, offset: usize, value: &T) -> Result<()> {
        self.check_writable("write")?;
        sys::write_value(&self.map, offset, value)
    }

    /// The 32-bit atomic at `offset`, for counters and flags shared with peers.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it does not lie inside the segment or `offset` is not 4-byte
    /// aligned; `PermissionDenied` on a read-only mapping (any atomic store would fault; read
    /// shared values with [`read`](SharedMemory::read) there).
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_writable("atomic_u32")?;
        sys::atomic_u32(&self.map, offset)
    }

    /// The 64-bit atomic at `offset`.
    ///
    /// # Errors
    ///
    /// As [`atomic_u32`](SharedMemory::atomic_u32), with 8-byte alignment.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_writable("atomic_u64")?;
        sys::atomic_u64(&self.map, offset)
    }

    /// The seals on the segment (none for named segments, which cannot be sealed).
    ///
    /// # Errors
    ///
    /// The `fcntl` error.
    pub fn seals(&self) -> Result<Seals> {
        get_seals(self.fd.as_fd())
    }

    /// Adds seals. [`Seals::WRITE`] cannot be added while the segment is mapped here
    /// (`ResourceBusy`): ask [`MemfdOptions::seals`](crate::MemfdOptions::seals) for it, which seals before mapping.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if the segment is sealed against new seals or cannot be sealed;
    /// `ResourceBusy` for a write seal with writable mappings.
    pub fn add_seals(&self, seals: Seals) -> Result<()> {
        fcntl(self.fd.as_fd(), FcntlArg::F_ADD_SEALS(seals.0))
            .map(drop)
            .map_err(|e| Error::from_errno("fcntl(F_ADD_SEALS)", e))
    }

    /// True if the segment's name was removed while this process still maps it (the
    /// object lives on, but nobody can open it by name any more). Always false for memfds,
    /// which never had a name.
    ///
    /// # Errors
    ///
    /// The `fstat` error.
    pub fn is_unlinked(&self) -> Result<bool> {
        if self.name.is_none() {
            return Ok(false);
        }
        Ok(metadata(self.fd.as_fd())?.nlink() == 0)
    }

    /// Keeps a named segment after this handle is dropped.
    pub fn persist(&mut self) {
        if let Some(name) = &mut self.name {
            name.persist();
        }
    }

    /// Removes the segment's name now (`shm_unlink`); processes that map it keep it.
    ///
    /// # Errors
    ///
    /// `NotFound` if the name is already gone; `InvalidInput` for a memfd.
    pub fn unlink(&mut self) -> Result<()> {
        match &mut self.name {
            Some(name) => name.unlink(),
            None => Err(Error::new(
                "shm_unlink",
                io::ErrorKind::InvalidInput,
                "a memfd has no name",
            )),
        }
    }
}

impl SharedMemory {
    /// A second handle to the same segment: its descriptor duplicated (close-on-exec) and
    /// mapped again, as writable as this one. It does not own the name: only the creator's
    /// handle removes it.
    ///
    /// # Errors
    ///
    /// The `fcntl(F_DUPFD_CLOEXEC)` or `mmap` error.
    pub fn try_clone(&self) -> Result<SharedMemory> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::from(e).with_op("fcntl(F_DUPFD_CLOEXEC)"))?;
        let map = map_fd(fd.as_fd(), self.map.len(), self.writable)?;
        Ok(SharedMemory {
            map,
            fd,
            writable: self.writable,
            name: self.name.as_ref().map(|name| {
                UnlinkOnDrop::not_owned(SegmentName(name.get().0.clone(), name.get().1))
            }),
            layout: self.layout,
        })
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SharedMemory {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) fn metadata(fd: BorrowedFd<'_>) -> Result<std::fs::Metadata> {
    File::from(
        fd.try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))?,
    )
    .metadata()
    .map_err(|e| Error::from(e).with_op("fstat"))
}

pub(crate) fn get_seals(fd: BorrowedFd<'_>) -> Result<Seals> {
    fcntl(fd, FcntlArg::F_GET_SEALS)
        .map(|bits| Seals(SealFlag::from_bits_truncate(bits)))
        .map_err(|e| Error::from_errno("fcntl(F_GET_SEALS)", e))
}

/// Sizes a new object and sets its space aside, so that a full `/dev/shm` is an error now
/// rather than a SIGBUS on first touch.
pub(crate) fn size_and_reserve(fd: BorrowedFd<'_>, size: usize, subject: &str) -> Result<()> {
    let len = i64::try_from(size)
        .map_err(|_| Error::new("ftruncate", io::ErrorKind::InvalidInput, "size too large"))?;
    nix::unistd::ftruncate(fd, len)
        .map_err(|e| Error::from_errno("ftruncate", e).with_subject(subject))?;
    nix::fcntl::posix_fallocate(fd, 0, len)
        .map_err(|e| Error::from_errno("posix_fallocate", e).with_subject(subject))
}

/// Makes sure every page of the `size` bytes of an existing object has its space set aside
/// before the object is mapped: a page that was never allocated (a creator that only
/// `ftruncate`d, a hole) is allocated on first touch, and on a full file system that
/// touch dies of SIGBUS. A writable object's holes are reserved now (`posix_fallocate`,
/// which keeps its contents); one this process may only read is refused unless the file
/// system has room for them (pages read from holes are allocated too).
pub(crate) fn ensure_reserved(
    fd: BorrowedFd<'_>,
    size: usize,
    writable: bool,
    subject: &str,
) -> Result<()> {
    let meta = metadata(fd)?;
    let reserved = meta.blocks().saturating_mul(512);
    let size64 = size as u64;
    if reserved >= size64 {
        return Ok(());
    }
    let missing = size64 - reserved;
    let full = |why: &str| {
        Error::new(
            "open",
            io::ErrorKind::StorageFull,
            format!(
                "{missing} of the segment's {size} bytes were never allocated (its creator did not \
                 reserve them) and {why}: touching them would kill this process with SIGBUS. \
                 Free space in /dev/shm, or have the creator reserve the segment \
                 (posix_fallocate; ShmOptions::create does)"
            ),
        )
        .with_subject(subject)
    };
    if writable {
        let len = i64::try_from(size).unwrap_or(i64::MAX);
        return match nix::fcntl::posix_fallocate(fd, 0, len) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ENOSPC) => Err(full("the file system has no room for them")),
            Err(errno) => Err(Error::from_errno("posix_fallocate", errno).with_subject(subject)),
        };
    }
    let stats = nix::sys::statvfs::fstatvfs(fd)
        .map_err(|e| Error::from_errno("fstatvfs", e).with_subject(subject))?;
    let free = stats
        .blocks_available()
        .saturating_mul(stats.fragment_size());
    if free < missing {
        return Err(full(&format!(
            "the file system has only {free} bytes free, and this process may not reserve them"
        )));
    }
    Ok(())
}

/// Refuses a new segment of `size` bytes too small to hold anything (or its header, with
/// a `layout`), naming `setter`, where the size is given.
pub(crate) fn check_size(
    op: &'static str,
    size: usize,
    layout: Option<Layout>,
    setter: &str,
) -> Result<()> {
    let minimum = if layout.is_some() { HEADER_LEN + 1 } else { 1 };
    if size >= minimum {
        return Ok(());
    }
    Err(Error::new(
        op,
        io::ErrorKind::InvalidInput,
        format!(
            "a segment needs at least {minimum} byte(s), {size} asked: set the size with \
             {setter} (it counts the header, if there is a layout)"
        ),
    ))
}

pub(crate) fn map_fd(fd: BorrowedFd<'_>, len: usize, writable: bool) -> Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.len(len);
    let mapped = if writable {
        options.map_raw(fd.as_raw_fd())
    } else {
        options.map_raw_read_only(fd.as_raw_fd())
    };
    mapped.map_err(|e| Error::from(e).with_op("mmap"))
}

// The unsafe views stand beside their type; the raw work is in `sys`.
#[allow(unsafe_code)]
impl SharedMemory {
    /// The whole segment as bytes.
    ///
    /// # Safety
    ///
    /// No process may write the segment while the slice lives (for example: it is sealed
    /// against writing, or the application's protocol guarantees it). Otherwise the
    /// compiler's assumption that the bytes do not change is broken, which is undefined
    /// behaviour even if the values read look fine.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: forwarded to the caller.
        unsafe { sys::as_slice(&self.map) }
    }

    /// The whole segment as mutable bytes.
    ///
    /// # Safety
    ///
    /// No other process may read or write the segment while the slice lives, and the
    /// segment must be writable.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: forwarded to the caller.
        unsafe { sys::as_mut_slice(&mut self.map) }
    }
}

#[cold]
#[inline(never)]
fn read_only(op: &'static str) -> Error {
    Error::new(
        op,
        io::ErrorKind::PermissionDenied,
        "the segment is mapped read-only",
    )
}
