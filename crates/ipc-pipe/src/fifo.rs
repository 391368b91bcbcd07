//! Named pipes (FIFOs): created at a path, opened by unrelated processes.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipc_core::internal::{ObjectId, await_name, check_owner, unlink_if_ours};
use ipc_core::{
    CreationMode, Deadline, Error, OpenIntent, Permissions, Result, Unlink, UnlinkOnDrop,
};
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;

use crate::end::{Wait, wait_for};
use crate::{PipeReader, PipeWriter};

/// Options for creating a [`Fifo`]: permissions (owner-only by default) and what to do
/// when the path exists ([`CreationMode::CreateExclusive`] by default).
///
/// ```
/// use ipc_pipe::{Access, CreationMode, Permissions};
/// use ipc_pipe::FifoOptions;
///
/// # let dir = std::env::temp_dir().join(format!("fifo-options-{}", std::process::id()));
/// # std::fs::create_dir(&dir)?;
/// let fifo = FifoOptions::new()
///     .permissions(Permissions::owner_only().group(Access::ReadWrite))
///     .creation_mode(CreationMode::OpenOrCreate)
///     .create(dir.join("jobs"))?;
/// assert!(fifo.is_owner());
/// # drop(fifo);
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FifoOptions {
    permissions: Permissions,
    mode: CreationMode,
    accept_other_owner: bool,
    timeout: Duration,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions {
            permissions: Permissions::default(),
            mode: CreationMode::default(),
            accept_other_owner: false,
            timeout: ipc_core::internal::OPEN_TIMEOUT,
        }
    }
}

impl FifoOptions {
    ipc_core::named_object_setters!("FIFO");

    /// Owner-only permissions, exclusive creation; opening waits up to 5 s for the FIFO to
    /// appear.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refers to an existing FIFO at `path`, without owning it, waiting up to the
    /// [`timeout`](FifoOptions::timeout) for a creator that has not made it yet.
    ///
    /// # Errors
    ///
    /// `NotFound` if none appeared in time; `InvalidInput` if the path is a symbolic link or not a FIFO;
    /// `PermissionDenied` if another user owns it, unless
    /// [`accept_other_owner`](FifoOptions::accept_other_owner).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        let path = path.as_ref();
        let id = await_name(
            "FIFO at this path",
            "FifoOptions::timeout",
            self.timeout,
            Deadline::after(self.timeout),
            || FifoId::check(path, self.accept_other_owner),
        )?;
        Ok(Fifo {
            owner: UnlinkOnDrop::not_owned(id),
        })
    }

    /// Creates (or, with [`CreationMode::OpenOrCreate`], opens) the FIFO at `path`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` for an exclusive create of a taken path; for an existing path that
    /// is kept or purged, the errors of [`Fifo::open`] (never a symbolic link, a
    /// non-FIFO or another user's FIFO, and `PurgeAndCreate` removes only FIFOs); the
    /// `mkfifo` or `chmod` error otherwise.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        let path = path.as_ref();
        let opened = self.mode.open_with(
            |intent| match intent {
                OpenIntent::Create => make_fifo(path, self.permissions),
                OpenIntent::OpenExisting => FifoId::check(path, self.accept_other_owner),
            },
            || {
                // Only ever remove a FIFO of ours, never a file that happens to be there.
                let id = FifoId::check(path, false)?;
                id.unlink()
            },
        )?;
        Ok(Fifo {
            owner: if opened.created {
                UnlinkOnDrop::owned(opened.object)
            } else {
                UnlinkOnDrop::not_owned(opened.object)
            },
        })
    }
}

/// The identity of a FIFO at a path: the path and the inode found there when it was
/// checked. Opening and unlinking verify that the path still leads to that inode.
#[derive(Debug, Clone)]
struct FifoId {
    path: Arc<Path>,
    id: ObjectId,
    /// Whether another user's FIFO was accepted, which every later check keeps.
    accept_other_owner: bool,
}

impl FifoId {
    /// Checks what is at `path` without following a symbolic link: a FIFO owned by this
    /// user.
    fn check(path: &Path, accept_other_owner: bool) -> Result<FifoId> {
        let meta = fs::symlink_metadata(path).map_err(|e| {
            Error::from(e)
                .with_op("lstat")
                .with_subject(path.display().to_string())
        })?;
        Self::from_metadata(path, &meta, "lstat", accept_other_owner)
    }

    fn from_metadata(
        path: &Path,
        meta: &fs::Metadata,
        op: &'static str,
        accept_other_owner: bool,
    ) -> Result<FifoId> {
        let refuse = |why: String| {
            Error::new(op, io::ErrorKind::InvalidInput, why)
                .with_subject(path.display().to_string())
        };
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            return Err(refuse(
                "is a symbolic link, not a FIFO; refusing to follow it".into(),
            ));
        }
        if !file_type.is_fifo() {
            let kind = if file_type.is_file() {
                "a regular file"
            } else if file_type.is_dir() {
                "a directory"
            } else if file_type.is_socket() {
                "a socket"
            } else {
                "not a FIFO"
            };
            return Err(refuse(format!("is {kind}, not a FIFO")));
        }
        check_owner(
            op,
            &path.display().to_string(),
            meta.uid(),
            accept_other_owner,
            "FifoOptions",
        )?;
        Ok(FifoId {
            path: path.into(),
            id: ObjectId::of(meta),
            accept_other_owner,
        })
    }

    /// Opens the FIFO with `flags` (plus `O_NONBLOCK`, `O_NOFOLLOW`, `O_CLOEXEC`) and checks
    /// that it is still the same inode.
    fn open(&self, flags: OFlag) -> Result<OwnedFd> {
        let flags = flags | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(&*self.path, flags, Mode::empty()).map_err(|errno| {
            let err =
                Error::from_errno("open", errno).with_subject(self.path.display().to_string());
            if errno == nix::errno::Errno::ELOOP {
                Error::new(
                    "open",
                    io::ErrorKind::InvalidInput,
                    "the FIFO was replaced by a symbolic link",
                )
                .with_subject(self.path.display().to_string())
            } else {
                err
            }
        })?;
        let meta = fs::File::from(fd.try_clone().map_err(|e| Error::from(e).with_op("dup"))?)
            .metadata()
            .map_err(|e| Error::from(e).with_op("fstat"))?;
        let found = Self::from_metadata(&self.path, &meta, "fstat", self.accept_other_owner)?;
        if found.id != self.id {
            return Err(Error::new(
                "open",
                io::ErrorKind::InvalidInput,
                "the FIFO was replaced by another one",
            )
            .with_subject(self.path.display().to_string()));
        }
        Ok(fd)
    }
}

impl Unlink for FifoId {
    /// Removes the path if it still leads to this FIFO.
    fn unlink(&self) -> Result<()> {
        let subject = self.path.display().to_string();
        let current = FifoId::check(&self.path, self.accept_other_owner)?;
        unlink_if_ours(
            "unlink",
            &subject,
            "FIFO",
            self.id,
            Some(current.id),
            || {
                fs::remove_file(&self.path).map_err(|e| {
                    Error::from(e)
                        .with_op("unlink")
                        .with_subject(subject.as_str())
                })
            },
        )
    }
}

/// `mkfifo`, then the exact permissions on the new inode, which cannot have been swapped:
/// it is reached through a descriptor, not the path.
fn make_fifo(path: &Path, permissions: Permissions) -> Result<FifoId> {
    let subject = || path.display().to_string();
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| Error::from_errno("mkfifo", e).with_subject(subject()))?;
    let pinned = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::from_errno("open(O_PATH)", e).with_subject(subject()))?;
    use std::os::fd::AsRawFd;
    let through_fd = PathBuf::from(format!("/proc/self/fd/{}", pinned.as_raw_fd()));
    fs::set_permissions(&through_fd, fs::Permissions::from_mode(permissions.mode()))
        .map_err(|e| Error::from(e).with_op("chmod").with_subject(subject()))?;
    let meta = fs::metadata(&through_fd)
        .map_err(|e| Error::from(e).with_op("fstat").with_subject(subject()))?;
    FifoId::from_metadata(path, &meta, "fstat", false)
}

/// A named pipe (FIFO) in the file system.
///
/// The process that creates it owns the path and removes it on drop, unless
/// [`persist`](Fifo::persist) is called. Others refer to it with [`Fifo::open`], which
/// refuses a symbolic link, anything but a FIFO, and a FIFO owned by another user; every
/// open of an end checks again that the path still leads to the same FIFO.
///
/// A reader sees end of file each time the last writer leaves. A server that serves one
/// client after another keeps a writer of its own open (`fifo.open_writer()` after
/// `open_reader`), so that its reads wait for the next client instead.
///
/// Opening never blocks the way `open(2)` of a FIFO does:
/// [`open_reader`](Fifo::open_reader) returns at once (reads then wait for a writer), and
/// [`open_writer`](Fifo::open_writer) waits for a reader with `try_` and `_timeout` forms.
///
/// ```
/// use std::io::{Read, Write};
/// use ipc_pipe::Fifo;
///
/// # let dir = std::env::temp_dir().join(format!("fifo-doc-{}", std::process::id()));
/// # std::fs::create_dir(&dir)?;
/// let fifo = Fifo::create(dir.join("events"))?;
/// let mut reader = fifo.open_reader()?;
/// let mut writer = Fifo::open(fifo.path())?.open_writer()?;
/// writer.write_all(b"ping")?;
/// let mut buf = [0u8; 4];
/// reader.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// drop(fifo); // removes the path
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Fifo {
    owner: UnlinkOnDrop<FifoId>,
}

impl Fifo {
    /// Creates a FIFO at `path`, owner-only, failing if the path exists. See
    /// [`FifoOptions`] for more choices.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if the path exists; the `mkfifo` error otherwise.
    pub fn create(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().create(path)
    }

    /// Refers to an existing FIFO at `path`, without owning it; [`FifoOptions::open`]
    /// with the defaults.
    ///
    /// # Errors
    ///
    /// `NotFound`; `InvalidInput` if the path is a symbolic link or not a FIFO;
    /// `PermissionDenied` if another user owns it.
    pub fn open(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().open(path)
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.owner.get().path
    }

    /// True if this handle created the FIFO and removes it on drop.
    pub fn is_owner(&self) -> bool {
        self.owner.is_owned()
    }

    /// Keeps the FIFO after this handle is dropped.
    pub fn persist(&mut self) {
        self.owner.persist();
    }

    /// Removes the FIFO now, if the path still leads to it.
    ///
    /// # Errors
    ///
    /// `NotFound` if it is already gone or the path leads elsewhere.
    pub fn unlink(&mut self) -> Result<()> {
        self.owner.unlink()
    }

    /// Opens the reading end. It returns at once, even with no writer: reads then wait for
    /// the first writer, and report end of file only after a writer has come and gone.
    ///
    /// # Errors
    ///
    /// The `open` error, or an error if the path no longer leads to this FIFO.
    pub fn open_reader(&self) -> Result<PipeReader> {
        // The descriptor stays non-blocking: FIFOs lack `RWF_NOWAIT`, so blocking is
        // emulated with `poll` (see `PipeReader::set_nonblocking`).
        let fd = self.owner.get().open(OFlag::O_RDONLY)?;
        Ok(PipeReader::from_fifo(fd))
    }

    /// Opens the writing end, waiting as long as it takes for a reader.
    ///
    /// # Errors
    ///
    /// The `open` error, or an error if the path no longer leads to this FIFO.
    pub fn open_writer(&self) -> Result<PipeWriter> {
        self.open_writer_with(Wait::Block)
    }

    /// Opens the writing end if a reader has the FIFO open; otherwise fails with
    /// `WouldBlock`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` without a reader; the `open` error otherwise.
    pub fn try_open_writer(&self) -> Result<PipeWriter> {
        self.open_writer_with(Wait::Try)
    }

    /// Opens the writing end, waiting at most `timeout` for a reader.
    ///
    /// # Errors
    ///
    /// `TimedOut` without a reader in time; the `open` error otherwise.
    pub fn open_writer_timeout(&self, timeout: Duration) -> Result<PipeWriter> {
        self.open_writer_with(Wait::Until(Deadline::after(timeout)))
    }

    fn open_writer_with(&self, wait: Wait) -> Result<PipeWriter> {
        let id = self.owner.get();
        // Watch the FIFO for opens before the first attempt, so that a reader arriving
        // between an attempt and the wait cannot be missed.
        let watch = match wait {
            Wait::Try => None,
            Wait::Block | Wait::Until(_) => Some(watch_opens(&id.path)?),
        };
        let deadline = match wait {
            Wait::Until(deadline) => deadline,
            Wait::Block | Wait::Try => Deadline::NEVER,
        };
        // A reader blocked in `open(2)` only shows up as an open event once a writer has
        // arrived, so the wait also retries at growing intervals.
        let mut interval = Duration::from_millis(1);
        loop {
            match id.open(OFlag::O_WRONLY) {
                Ok(fd) => return Ok(PipeWriter::from_fifo(fd)),
                Err(err) if err.raw_os_error() == Some(libc::ENXIO) => {}
                Err(err) => return Err(err),
            }
            let Some(watch) = &watch else {
                return Err(Error::would_block("open").with_subject(id.path.display().to_string()));
            };
            if deadline.has_expired() {
                return Err(Error::timed_out("open").with_subject(id.path.display().to_string()));
            }
            let step = Deadline::after(interval);
            let until = match (step.instant(), deadline.instant()) {
                (Some(a), Some(b)) if b < a => deadline,
                _ => step,
            };
            match wait_for(watch.as_fd(), PollFlags::POLLIN, until, "poll") {
                Ok(_) => while watch.read_events().is_ok_and(|events| !events.is_empty()) {},
                Err(err) if err.is_timeout() => {}
                Err(err) => return Err(err),
            }
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }
}

fn watch_opens(path: &Path) -> Result<Inotify> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| Error::from_errno("inotify_init1", e))?;
    inotify
        .add_watch(path, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_DONT_FOLLOW)
        .map_err(|e| {
            Error::from_errno("inotify_add_watch", e).with_subject(path.display().to_string())
        })?;
    Ok(inotify)
}
