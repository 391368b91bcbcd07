//! Anonymous segments (`memfd_create`), sealed before they are shared.

use std::os::fd::AsFd;

use ipc_core::{Error, Result};
use nix::fcntl::{FcntlArg, fcntl};

use super::memory::{SharedMemory, check_size, map_fd, size_and_reserve};
use super::seals::Seals;
use crate::header::{self, Layout};

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
/// # Ok::<(), ipc_shm::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemfdOptions {
    pub(crate) size: usize,
    pub(crate) seals: Seals,
    pub(crate) layout: Option<Layout>,
    pub(crate) debug_name: String,
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
        check_size("memfd_create", self.size, self.layout, "MemfdOptions::new")?;
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
