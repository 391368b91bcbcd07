//! Named segments (`shm_open`): creation modes, exact permissions, owner checks, openers
//! that wait for their creator.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use ipc_core::{
    CreationMode, Deadline, Error, IpcName, OpenIntent, Permissions, Result, Unlink, UnlinkOnDrop,
};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use ipc_core::internal::{Backoff, ObjectId, await_name, check_creation_option};

use super::memory::{
    SegmentName, SharedMemory, check_size, ensure_reserved, map_fd, metadata, size_and_reserve,
};
use crate::header::{self, HEADER_LEN, Layout};

/// Options for named segments (`shm_open`): size, permissions, creation mode, read-only
/// access, whose segments to accept, and an optional [`Layout`] header.
///
/// ```
/// use std::time::Duration;
/// use ipc_shm::{Access, IpcName, Permissions};
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
/// # Ok::<(), ipc_shm::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShmOptions {
    pub(crate) size: usize,
    pub(crate) permissions: Permissions,
    pub(crate) mode: CreationMode,
    pub(crate) read_only: bool,
    pub(crate) accept_other_owner: bool,
    pub(crate) layout: Option<Layout>,
    pub(crate) timeout: Duration,
    /// The options type an owner error tells the user to set `accept_other_owner` on.
    pub(crate) owner_hint: &'static str,
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
            timeout: ipc_core::internal::OPEN_TIMEOUT,
            owner_hint: "ShmOptions",
        }
    }
}

impl ShmOptions {
    ipc_core::named_object_setters!("segment");

    /// Owner-only, exclusive creation, read-write, own segments only, no header, a 5 s
    /// open timeout; the size must be set for creation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size of a new segment in bytes (including the header, if any). Opening an
    /// existing segment with it set checks that the segment has that size.
    #[must_use]
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Open (or map) read-only.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Give new segments a header with this layout, and check it when opening.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
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
        check_size("shm_open", self.size, self.layout, "ShmOptions::size")
            .map_err(|e| e.with_subject(name))?;
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
        let mode = Mode::from_bits_truncate(self.permissions.mode());
        let fd = nix::sys::mman::shm_open(name.as_cstr(), flags, mode)
            .map_err(|e| Error::from_errno("shm_open", e).with_subject(name))?;
        // From here on the name is ours: it goes away on every error path.
        let stat = nix::sys::stat::fstat(fd.as_fd());
        let id = stat
            .ok()
            .map(|stat| ObjectId::new(stat.st_dev, stat.st_ino));
        let owner = UnlinkOnDrop::owned(SegmentName(name.clone(), id));
        let stat = stat.map_err(|e| Error::from_errno("fstat", e).with_subject(name))?;
        self.permissions
            .ensure(fd.as_fd(), stat.st_mode)
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

    /// Opens a segment: waits (up to the [`timeout`](ShmOptions::timeout)) for the name to
    /// appear, checks that it is a shared-memory object of this user (or any user, with
    /// [`accept_other_owner`](ShmOptions::accept_other_owner)), waits until its creator has
    /// sized it and, with a layout, initialised it; then maps exactly its size. It never
    /// maps zero bytes.
    ///
    /// # Errors
    ///
    /// `NotFound` if no segment of the name appeared in time; `PermissionDenied` for another user's segment or missing permissions;
    /// `TimedOut` if the creator does not finish in time; `InvalidInput` if a
    /// [`size`](ShmOptions::size) is set and the segment has another; `StorageFull` for a segment whose
    /// space was never reserved when the file system has no room for it; corrupted for a
    /// header that does not match the layout.
    pub fn open(&self, name: &IpcName) -> Result<SharedMemory> {
        let access = if self.read_only {
            OFlag::O_RDONLY
        } else {
            OFlag::O_RDWR
        };
        let deadline = Deadline::after(self.timeout);
        let fd = await_name(
            "segment of this name",
            "ShmOptions::timeout",
            self.timeout,
            deadline,
            || {
                nix::sys::mman::shm_open(name.as_cstr(), access | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|errno| Error::from_errno("shm_open", errno).with_subject(name))
            },
        )?;
        let minimum = if self.layout.is_some() {
            HEADER_LEN + 1
        } else {
            1
        };
        let mut backoff = Backoff::new(Duration::from_millis(5));
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
            ipc_core::internal::check_owner(
                "shm_open",
                name.as_str(),
                meta.uid(),
                self.accept_other_owner,
                self.owner_hint,
            )?;
            let size = usize::try_from(meta.size()).unwrap_or(usize::MAX);
            if size >= minimum {
                break size;
            }
            if !backoff
                .pause(deadline, "open")
                .map_err(|e| e.with_subject(name))?
            {
                return Err(Error::new(
                    "open",
                    io::ErrorKind::TimedOut,
                    format!(
                        "the segment still has {size} bytes: its creator has not sized it (it may have died)"
                    ),
                )
                .with_subject(name));
            }
        };
        // A size of 0 is "unset": it opens a segment of any size.
        check_creation_option(
            "shm_open",
            name.as_str(),
            "ShmOptions::size",
            (self.size != 0).then_some(self.size),
            size,
        )?;
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
