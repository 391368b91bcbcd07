//! Segments whose descriptor came from another process: verified before they are mapped.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use ipc_core::{Deadline, Error, Result};
use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::memory::{
    HUGETLBFS_MAGIC, SharedMemory, TMPFS_MAGIC, ensure_reserved, get_seals, map_fd, metadata,
};
use super::seals::Seals;
use crate::header::{self, Layout};

/// What to accept when mapping a segment received from another process.
///
/// By default only a memfd sealed against shrinking is accepted: with any other object a
/// peer could shrink it after the check and make this process fault (SIGBUS) on access.
#[derive(Clone, Debug, Default)]
pub struct ReceiveOptions {
    pub(crate) allow_unsealed: bool,
    pub(crate) read_only: bool,
    pub(crate) layout: Option<Layout>,
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

impl SharedMemory {
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
