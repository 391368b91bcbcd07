//! Shared-memory copy paths: `SharedMemory::write_at`/`read_at` beside a plain `memcpy` into
//! and out of the same mapping.

use std::time::Instant;

use ipc_core::Result;
use ipc_shm::{MemfdOptions, SharedMemory};

use crate::sys;

/// Which copy is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// `memcpy` into the mapping (floor).
    MemcpyIn,
    /// `SharedMemory::write_at`.
    WriteAt,
    /// `memcpy` out of the mapping (floor).
    MemcpyOut,
    /// `SharedMemory::read_at`.
    ReadAt,
}

impl Copy {
    /// Every case, each floor before its wrapper.
    pub const ALL: [Copy; 4] = [Copy::MemcpyIn, Copy::WriteAt, Copy::MemcpyOut, Copy::ReadAt];

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Copy::MemcpyIn => "shm: memcpy into the mapping (floor)",
            Copy::WriteAt => "shm: SharedMemory::write_at",
            Copy::MemcpyOut => "shm: memcpy out of the mapping (floor)",
            Copy::ReadAt => "shm: SharedMemory::read_at",
        }
    }

    /// The floor this case is compared with (itself for a floor).
    pub fn floor(self) -> Copy {
        match self {
            Copy::WriteAt => Copy::MemcpyIn,
            Copy::ReadAt => Copy::MemcpyOut,
            floor => floor,
        }
    }
}

/// A mapping to copy into and out of: a 4 MiB sealed memfd, larger than the caches of the
/// machines we run on, walked at rotating offsets.
#[derive(Debug)]
pub struct CopyBench {
    segment: SharedMemory,
    buf: Vec<u8>,
}

const SEGMENT: usize = 4 << 20;

impl CopyBench {
    /// Maps the segment and prepares a buffer of `size` bytes.
    ///
    /// # Errors
    ///
    /// If the memfd cannot be created.
    pub fn new(size: usize) -> Result<Self> {
        let segment = MemfdOptions::new(SEGMENT).create()?;
        Ok(CopyBench {
            segment,
            buf: vec![0x5a; size],
        })
    }

    /// Copies `count` times and returns the bytes per second.
    ///
    /// # Errors
    ///
    /// The copy's error (none for in-bounds offsets).
    pub fn run(&mut self, case: Copy, count: usize) -> Result<f64> {
        let size = self.buf.len();
        let slots = SEGMENT / size;
        let base = self.segment.as_ptr();
        let start = Instant::now();
        for i in 0..count {
            let offset = (i % slots) * size;
            match case {
                Copy::MemcpyIn => {
                    sys::memcpy_to(base, SEGMENT, offset, &self.buf);
                }
                Copy::WriteAt => self.segment.write_at(offset, &self.buf)?,
                Copy::MemcpyOut => {
                    sys::memcpy_from(base, SEGMENT, offset, &mut self.buf);
                }
                Copy::ReadAt => self.segment.read_at(offset, &mut self.buf)?,
            }
            std::hint::black_box(&mut self.buf);
        }
        Ok((count * size) as f64 / start.elapsed().as_secs_f64())
    }
}

/// The raw calls that make a named segment of `len` bytes and remove it (`shm_open`,
/// `ftruncate`, `mmap`, `munmap`, `close`, `shm_unlink`), with `posix_fallocate` if
/// `reserve` (as a channel does, so that no page it touches can die of SIGBUS on a full
/// `/dev/shm`): the floor of a channel's creation.
///
/// # Errors
///
/// The first call that fails.
pub fn raw_segment_create_and_remove(
    name: &ipc_core::IpcName,
    len: usize,
    reserve: bool,
) -> Result<()> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let fd = nix::sys::mman::shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| ipc_core::Error::from_errno("shm_open", e))?;
    let size = i64::try_from(len).unwrap_or(i64::MAX);
    nix::unistd::ftruncate(&fd, size).map_err(|e| ipc_core::Error::from_errno("ftruncate", e))?;
    if reserve {
        nix::fcntl::posix_fallocate(&fd, 0, size)
            .map_err(|e| ipc_core::Error::from_errno("posix_fallocate", e))?;
    }
    let map = sys::map_shared(std::os::fd::AsFd::as_fd(&fd), len)?;
    std::hint::black_box(&map);
    drop((map, fd));
    nix::sys::mman::shm_unlink(name.as_str())
        .map_err(|e| ipc_core::Error::from_errno("shm_unlink", e))
}
