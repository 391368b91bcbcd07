//! Shared-memory segments: named (`shm_open`) and anonymous (`memfd_create`, sealed).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use ipc_core::{
    CreationMode, Deadline, Error, IpcName, OpenIntent, Permissions, Result, ShmSafe, Unlink,
    UnlinkOnDrop,
};
use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::stat::Mode;

use crate::header::{self, HEADER_LEN, Layout};
use crate::sys;

/// The file-system magic number of tmpfs, where `/dev/shm` objects and memfds live.
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// The file-system magic number of hugetlbfs (memfds created with `MFD_HUGETLB`).
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Seals on a memfd (`F_ADD_SEALS`): promises the kernel enforces against everyone holding
/// the descriptor, including a hostile peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seals(SealFlag);

impl Seals {
    /// No seals.
    pub const NONE: Seals = Seals(SealFlag::empty());
    /// The size cannot shrink: a peer cannot make this process's accesses fault (SIGBUS).
    pub const SHRINK: Seals = Seals(SealFlag::F_SEAL_SHRINK);
    /// The size cannot grow.
    pub const GROW: Seals = Seals(SealFlag::F_SEAL_GROW);
    /// The contents cannot change (no writable mapping may exist when it is added).
    pub const WRITE: Seals = Seals(SealFlag::F_SEAL_WRITE);
    /// New writable mappings and writes are refused, while mappings made before (the
    /// creator's) keep writing: "I write, you only read". Linux 5.1.
    pub const FUTURE_WRITE: Seals = Seals(SealFlag::F_SEAL_FUTURE_WRITE);
    /// No more seals can be added or removed.
    pub const SEAL: Seals = Seals(SealFlag::F_SEAL_SEAL);

    /// Both seals together.
    #[must_use]
    pub const fn with(self, other: Seals) -> Seals {
        Seals(self.0.union(other.0))
    }

    /// Whether all of `other` is set.
    pub const fn contains(self, other: Seals) -> bool {
        self.0.contains(other.0)
    }

    /// Whether the contents can no longer change through new mappings.
    pub const fn forbids_writing(self) -> bool {
        self.0
            .intersects(SealFlag::F_SEAL_WRITE.union(SealFlag::F_SEAL_FUTURE_WRITE))
    }
}

impl Default for Seals {
    /// Shrink, grow and seal: the size is fixed for good.
    fn default() -> Self {
        Seals::SHRINK.with(Seals::GROW).with(Seals::SEAL)
    }
}

/// The name of a segment and the object it led to, which its creator removes on drop.
#[derive(Debug)]
struct SegmentName(IpcName, Option<(u64, u64)>);

impl Unlink for SegmentName {
    /// Removes the name, unless it now leads to another object (a successor created after
    /// a purge): a creator's drop must never take the name from under its successor.
    fn unlink(&self) -> Result<()> {
        if let Some(id) = self.1 {
            let current = nix::sys::mman::shm_open(
                self.0.as_cstr(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .and_then(|fd| metadata(fd.as_fd()).ok())
            .map(|meta| (meta.dev(), meta.ino()));
            if current.is_some_and(|current| current != id) {
                return Err(Error::new(
                    "shm_unlink",
                    io::ErrorKind::NotFound,
                    "the name now leads to another segment; left alone",
                )
                .with_subject(&self.0));
            }
        }
        nix::sys::mman::shm_unlink(self.0.as_cstr())
            .map_err(|e| Error::from_errno("shm_unlink", e).with_subject(&self.0))
    }
}

/// A mapped shared-memory segment and its descriptor.
///
/// Made by [`ShmOptions`] (named, `shm_open`), [`MemfdOptions`] (anonymous, sealed) or
/// [`SharedMemory::from_fd`] (received from another process). The memory is shared with
/// processes that may write it at any time, so this type never hands out references to
/// plain bytes: it offers bounds-checked copies ([`read_at`](SharedMemory::read_at),
/// [`write_at`](SharedMemory::write_at)), values of [`ShmSafe`] types, checked atomics and
/// raw pointers; byte slices only through `unsafe fn`s with their contract spelled out.
///
/// ```
/// use ipc_shm::{ShmOptions, SharedMemory};
///
/// let name = ipc_core::IpcName::unique("doc-segment")?;
/// let segment = ShmOptions::new().size(4096).create(&name)?;
/// segment.write_at(0, b"hello")?;
///
/// let other = ShmOptions::new().open(&name)?; // another process would do this
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// drop(segment); // the creator removes the name
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedMemory {
    pub(crate) map: MmapRaw,
    fd: OwnedFd,
    pub(crate) writable: bool,
    name: Option<UnlinkOnDrop<SegmentName>>,
    layout: Option<Layout>,
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

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::new(
                op,
                io::ErrorKind::PermissionDenied,
                "the segment is mapped read-only",
            ))
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range does not lie inside the segment.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        sys::copy_out(&self.map, offset, buf)
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the range does not lie inside the segment; `PermissionDenied` if it
    /// is mapped read-only.
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
    pub fn read<T: ShmSafe>(&self, offset: usize) -> Result<T> {
        sys::read_value(&self.map, offset)
    }

    /// Writes a value of a [`ShmSafe`] type at `offset` (any alignment).
    ///
    /// # Errors
    ///
    /// As [`write_at`](SharedMemory::write_at).
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
    /// (`ResourceBusy`): ask [`MemfdOptions::seals`] for it, which seals before mapping.
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

    /// Receives a segment from another process (for example over a Unix socket) with the
    /// default [`ReceiveOptions`]: it must be a memfd sealed against shrinking.
    ///
    /// # Errors
    ///
    /// See [`ReceiveOptions::map`].
    pub fn from_fd(fd: OwnedFd) -> Result<SharedMemory> {
        ReceiveOptions::new().map(fd)
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

fn metadata(fd: BorrowedFd<'_>) -> Result<std::fs::Metadata> {
    File::from(
        fd.try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))?,
    )
    .metadata()
    .map_err(|e| Error::from(e).with_op("fstat"))
}

fn get_seals(fd: BorrowedFd<'_>) -> Result<Seals> {
    fcntl(fd, FcntlArg::F_GET_SEALS)
        .map(|bits| Seals(SealFlag::from_bits_truncate(bits)))
        .map_err(|e| Error::from_errno("fcntl(F_GET_SEALS)", e))
}

/// Sizes a new object and sets its space aside, so that a full `/dev/shm` is an error now
/// rather than a SIGBUS on first touch.
fn size_and_reserve(fd: BorrowedFd<'_>, size: usize, subject: &str) -> Result<()> {
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
fn ensure_reserved(fd: BorrowedFd<'_>, size: usize, writable: bool, subject: &str) -> Result<()> {
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

fn map_fd(fd: BorrowedFd<'_>, len: usize, writable: bool) -> Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.len(len);
    let mapped = if writable {
        options.map_raw(fd.as_raw_fd())
    } else {
        options.map_raw_read_only(fd.as_raw_fd())
    };
    mapped.map_err(|e| Error::from(e).with_op("mmap"))
}

/// Options for named segments (`shm_open`): size, permissions, creation mode, read-only
/// access, whose segments to accept, and an optional [`Layout`] header.
///
/// ```
/// use std::time::Duration;
/// use ipc_core::{Access, IpcName, Permissions};
/// use ipc_shm::{Layout, ShmOptions};
///
/// const TABLE: Layout = Layout::new(u64::from_le_bytes(*b"PRICES\0\0"), 3);
/// let name = IpcName::unique("doc-table")?;
/// let creator = ShmOptions::new()
///     .size(64 * 1024)
///     .permissions(Permissions::owner_only().group(Access::Read))
///     .layout(TABLE)
///     .create_with(&name, |segment| segment.write_at(segment.data_offset(), b"row 1"))?;
///
/// let reader = ShmOptions::new().layout(TABLE).read_only(true).timeout(Duration::from_secs(1)).open(&name)?;
/// let mut row = [0u8; 5];
/// reader.read_at(reader.data_offset(), &mut row)?;
/// assert_eq!(&row, b"row 1");
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShmOptions {
    size: usize,
    permissions: Permissions,
    mode: CreationMode,
    read_only: bool,
    accept_other_owner: bool,
    layout: Option<Layout>,
    timeout: Duration,
}

impl Default for ShmOptions {
    fn default() -> Self {
        ShmOptions {
            size: 0,
            permissions: Permissions::owner_only(),
            mode: CreationMode::CreateExclusive,
            read_only: false,
            accept_other_owner: false,
            layout: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl ShmOptions {
    /// Owner-only, exclusive creation, read-write, own segments only, no header, a 5 s
    /// open timeout; the size must be set for creation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size of a new segment in bytes (including the header, if any).
    #[must_use]
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// The permissions of a new segment, applied exactly (no umask).
    #[must_use]
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// What to do if the name exists.
    #[must_use]
    pub fn creation_mode(mut self, mode: CreationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Open (or map) read-only.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Accept a segment owned by another user. By default one is refused: a segment whose
    /// name another user took first may be a trap.
    #[must_use]
    pub fn accept_other_owner(mut self, accept: bool) -> Self {
        self.accept_other_owner = accept;
        self
    }

    /// Give new segments a header with this layout, and check it when opening.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// How long `open` waits for a creator that is still sizing or initialising the segment.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates the segment (per the creation mode) and, with a layout, marks it initialised
    /// at once.
    ///
    /// # Errors
    ///
    /// As [`create_with`](ShmOptions::create_with).
    pub fn create(&self, name: &IpcName) -> Result<SharedMemory> {
        self.create_with(name, |_| Ok(()))
    }

    /// Creates the segment and runs `init` on it before openers may see it: with a layout,
    /// openers wait until `init` has returned. If `init` fails, the segment is removed.
    ///
    /// With [`CreationMode::OpenOrCreate`] and an existing segment, the segment is opened as
    /// by [`open`](ShmOptions::open) and `init` does not run.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero size (or one smaller than the header); `AlreadyExists` for
    /// an exclusive create of a taken name; `ENOSPC` (`StorageFull`) if `/dev/shm` cannot hold
    /// it; `init`'s error.
    pub fn create_with(
        &self,
        name: &IpcName,
        init: impl FnOnce(&SharedMemory) -> Result<()>,
    ) -> Result<SharedMemory> {
        let minimum = if self.layout.is_some() {
            HEADER_LEN + 1
        } else {
            1
        };
        if self.size < minimum {
            return Err(Error::new(
                "shm_open",
                io::ErrorKind::InvalidInput,
                format!(
                    "a segment needs at least {minimum} bytes, {} asked",
                    self.size
                ),
            )
            .with_subject(name));
        }
        let mut init = Some(init);
        let opened = self.mode.open_with(
            |intent| match intent {
                OpenIntent::Create => self.create_new(name, init.take()),
                OpenIntent::OpenExisting => self.open(name),
            },
            || SegmentName(name.clone(), None).unlink(),
        )?;
        Ok(opened.object)
    }

    fn create_new(
        &self,
        name: &IpcName,
        init: Option<impl FnOnce(&SharedMemory) -> Result<()>>,
    ) -> Result<SharedMemory> {
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let fd = nix::sys::mman::shm_open(name.as_cstr(), flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| Error::from_errno("shm_open", e).with_subject(name))?;
        // From here on the name is ours: it goes away on every error path.
        let id = metadata(fd.as_fd())
            .map(|meta| (meta.dev(), meta.ino()))
            .ok();
        let owner = UnlinkOnDrop::owned(SegmentName(name.clone(), id));
        self.permissions
            .apply(fd.as_fd())
            .map_err(|e| e.with_subject(name))?;
        size_and_reserve(fd.as_fd(), self.size, name.as_str())?;
        let map = map_fd(fd.as_fd(), self.size, true)?;
        let segment = SharedMemory {
            map,
            fd,
            writable: true,
            name: Some(owner),
            layout: self.layout,
        };
        if let Some(layout) = self.layout {
            header::begin(&segment.map, layout)?;
        }
        if let Some(init) = init {
            init(&segment)?;
        }
        if self.layout.is_some() {
            header::finish(&segment.map)?;
        }
        let mut segment = segment;
        if self.read_only {
            segment.writable = false;
        }
        Ok(segment)
    }

    /// Opens an existing segment: checks that it is a shared-memory object of this user (or
    /// any user, with [`accept_other_owner`](ShmOptions::accept_other_owner)), waits until
    /// its creator has sized it and, with a layout, initialised it; then maps exactly its
    /// size. It never maps zero bytes.
    ///
    /// # Errors
    ///
    /// `NotFound`; `PermissionDenied` for another user's segment or missing permissions;
    /// `TimedOut` if the creator does not finish in time; `StorageFull` for a segment whose
    /// space was never reserved when the file system has no room for it; corrupted for a
    /// header that does not match the layout.
    pub fn open(&self, name: &IpcName) -> Result<SharedMemory> {
        let access = if self.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        let fd = nix::sys::mman::shm_open(name.as_cstr(), access | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::from_errno("shm_open", e).with_subject(name))?;
        let deadline = Deadline::after(self.timeout);
        let minimum = if self.layout.is_some() {
            HEADER_LEN + 1
        } else {
            1
        };
        let mut pause = Duration::from_micros(50);
        let size = loop {
            let meta = metadata(fd.as_fd())?;
            if !meta.file_type().is_file() {
                return Err(Error::new(
                    "open",
                    io::ErrorKind::InvalidInput,
                    "not a shared-memory object",
                )
                .with_subject(name));
            }
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me && !self.accept_other_owner {
                return Err(Error::new(
                    "open",
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the segment belongs to uid {}, not to this user (uid {me})",
                        meta.uid()
                    ),
                )
                .with_subject(name));
            }
            let size = usize::try_from(meta.size()).unwrap_or(usize::MAX);
            if size >= minimum {
                break size;
            }
            if deadline.has_expired() {
                return Err(Error::new("open", io::ErrorKind::TimedOut, format!("the segment still has {size} bytes: its creator has not sized it (it may have died)")).with_subject(name));
            }
            std::thread::sleep(pause.min(deadline.remaining().unwrap_or(pause)));
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        ensure_reserved(fd.as_fd(), size, !self.read_only, name.as_str())?;
        let map = map_fd(fd.as_fd(), size, !self.read_only)?;
        if let Some(layout) = self.layout {
            header::wait_ready(&map, layout, deadline, name.as_str())?;
        }
        Ok(SharedMemory {
            map,
            fd,
            writable: !self.read_only,
            name: Some(UnlinkOnDrop::not_owned(SegmentName(name.clone(), None))),
            layout: self.layout,
        })
    }
}

/// Options for anonymous segments (`memfd_create`): size, seals and an optional header.
///
/// A memfd has no name: it is shared by passing its descriptor (over a Unix socket, or to a
/// child). Sealed, it is safe to share with a peer you do not trust: the default seals fix
/// its size, so the peer cannot shrink it under this process's feet (which would make
/// accesses fault with SIGBUS).
///
/// ```
/// use ipc_shm::{MemfdOptions, Seals};
///
/// // I write, you only read: peers cannot map it writable, the creator's mapping stays so.
/// let segment = MemfdOptions::new(4096).seals(Seals::default().with(Seals::FUTURE_WRITE)).create()?;
/// segment.write_at(0, b"still writable here")?;
/// assert!(segment.seals()?.contains(Seals::FUTURE_WRITE));
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemfdOptions {
    size: usize,
    seals: Seals,
    layout: Option<Layout>,
    debug_name: String,
}

impl MemfdOptions {
    /// A segment of `size` bytes with the default seals (shrink, grow, seal).
    pub fn new(size: usize) -> Self {
        MemfdOptions {
            size,
            seals: Seals::default(),
            layout: None,
            debug_name: "ipc-shm".into(),
        }
    }

    /// The seals to add once the segment is initialised. [`Seals::WRITE`] leaves this
    /// process with a read-only mapping.
    #[must_use]
    pub fn seals(mut self, seals: Seals) -> Self {
        self.seals = seals;
        self
    }

    /// Give the segment a header with this layout.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// The name shown in `/proc/<pid>/fd` (`memfd:<name>`); it has no other effect.
    #[must_use]
    pub fn debug_name(mut self, name: &str) -> Self {
        self.debug_name = name.to_owned();
        self
    }

    /// Creates the segment and seals it.
    ///
    /// # Errors
    ///
    /// As [`create_with`](MemfdOptions::create_with).
    pub fn create(&self) -> Result<SharedMemory> {
        self.create_with(|_| Ok(()))
    }

    /// Creates the segment, runs `init` on it, then seals it: the contents are complete
    /// before any seal (such as [`Seals::WRITE`]) makes them final.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero size; `ENOSPC` if memory cannot be reserved; `init`'s
    /// error; the `F_ADD_SEALS` error.
    pub fn create_with(
        &self,
        init: impl FnOnce(&SharedMemory) -> Result<()>,
    ) -> Result<SharedMemory> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let minimum = if self.layout.is_some() {
            HEADER_LEN + 1
        } else {
            1
        };
        if self.size < minimum {
            return Err(Error::new(
                "memfd_create",
                io::ErrorKind::InvalidInput,
                format!(
                    "a segment needs at least {minimum} bytes, {} asked",
                    self.size
                ),
            ));
        }
        let fd = memfd_create(
            self.debug_name.as_str(),
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| Error::from_errno("memfd_create", e))?;
        size_and_reserve(fd.as_fd(), self.size, "memfd")?;
        let map = map_fd(fd.as_fd(), self.size, true)?;
        let segment = SharedMemory {
            map,
            fd,
            writable: true,
            name: None,
            layout: self.layout,
        };
        if let Some(layout) = self.layout {
            header::begin(&segment.map, layout)?;
        }
        init(&segment)?;
        if self.layout.is_some() {
            header::finish(&segment.map)?;
        }
        if !self.seals.contains(Seals::WRITE) {
            if self.seals != Seals::NONE {
                segment.add_seals(self.seals)?;
            }
            return Ok(segment);
        }
        // A write seal cannot be added while any shared mapping of a descriptor opened for
        // writing exists (even a read-only one could be made writable): unmap, seal, and
        // map again read-only.
        let SharedMemory {
            map: writable_map,
            fd,
            layout,
            ..
        } = segment;
        let len = writable_map.len();
        drop(writable_map);
        fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(self.seals.0))
            .map_err(|e| Error::from_errno("fcntl(F_ADD_SEALS)", e))?;
        let map = map_fd(fd.as_fd(), len, false)?;
        Ok(SharedMemory {
            map,
            fd,
            writable: false,
            name: None,
            layout,
        })
    }
}

/// What to accept when mapping a segment received from another process.
///
/// By default only a memfd sealed against shrinking is accepted: with any other object a
/// peer could shrink it after the check and make this process fault (SIGBUS) on access.
#[derive(Clone, Debug, Default)]
pub struct ReceiveOptions {
    allow_unsealed: bool,
    read_only: bool,
    layout: Option<Layout>,
}

impl ReceiveOptions {
    /// Sealed memfds only, mapped writable unless sealed against writing, no header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept objects that are not sealed against shrinking. Only for peers you trust
    /// completely: a shrink makes this process crash on its next access.
    #[must_use]
    pub fn allow_unsealed(mut self, allow: bool) -> Self {
        self.allow_unsealed = allow;
        self
    }

    /// Map read-only even if writing is allowed.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Check the segment's header against this layout (without waiting: a segment is sent
    /// after it was initialised).
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Verifies the descriptor and maps exactly its verified size.
    ///
    /// Checks: it is a regular file on tmpfs or hugetlbfs (a memfd or a `/dev/shm`
    /// object), not empty, sealed against shrinking (unless allowed otherwise); it is
    /// mapped read-only if it is sealed against writing or was opened read-only.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for anything but a shared-memory object or an empty one;
    /// `PermissionDenied` for an object without the shrink seal; `StorageFull` for one
    /// whose space was never reserved when there is no room for it; corrupted for a header
    /// that does not match the layout.
    pub fn map(&self, fd: OwnedFd) -> Result<SharedMemory> {
        const OP: &str = "SharedMemory::from_fd";
        let refuse = |kind, why: String| Error::new(OP, kind, why);
        let meta = metadata(fd.as_fd())?;
        if !meta.file_type().is_file() {
            return Err(refuse(
                io::ErrorKind::InvalidInput,
                "the descriptor is not a memfd or shared-memory object".into(),
            ));
        }
        let fs = nix::sys::statfs::fstatfs(&fd).map_err(|e| Error::from_errno("fstatfs", e))?;
        let fs_type = fs.filesystem_type().0;
        if fs_type != TMPFS_MAGIC && fs_type != HUGETLBFS_MAGIC {
            return Err(refuse(
                io::ErrorKind::InvalidInput,
                format!(
                    "the descriptor is a file on file system {fs_type:#x}, not a memfd or shared-memory object"
                ),
            ));
        }
        let size = usize::try_from(meta.size()).unwrap_or(0);
        if size == 0 {
            return Err(refuse(
                io::ErrorKind::InvalidInput,
                "the segment is empty".into(),
            ));
        }
        let seals = get_seals(fd.as_fd()).unwrap_or(Seals::NONE);
        if !seals.contains(Seals::SHRINK) && !self.allow_unsealed {
            return Err(refuse(io::ErrorKind::PermissionDenied, "the segment is not sealed against shrinking: its sender could make this process crash (SIGBUS); refused".into()));
        }
        let access = fcntl(fd.as_fd(), FcntlArg::F_GETFL)
            .map_err(|e| Error::from_errno("fcntl(F_GETFL)", e))?;
        let opened_writable = OFlag::from_bits_truncate(access) & OFlag::O_ACCMODE == OFlag::O_RDWR;
        let writable = opened_writable && !seals.forbids_writing() && !self.read_only;
        ensure_reserved(fd.as_fd(), size, writable, "a received segment")?;
        let map = map_fd(fd.as_fd(), size, writable)?;
        if let Some(layout) = self.layout {
            header::wait_ready(
                &map,
                layout,
                Deadline::after(Duration::ZERO),
                "received segment",
            )?;
        }
        Ok(SharedMemory {
            map,
            fd,
            writable,
            name: None,
            layout: self.layout,
        })
    }
}
