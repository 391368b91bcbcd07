//! Binding Unix sockets: exact permissions without a umask race, safe recovery of stale
//! socket files, removal on drop.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ipc_core::internal::{Backoff, ObjectId, poll_fd, unlink_if_ours};
use ipc_core::{Deadline, Error, Permissions, Result};
use nix::fcntl::{Flock, FlockArg, RenameFlags};
use nix::poll::PollFlags;
use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType};

use crate::UnixAddr;
use crate::sys;

/// What to do when a socket file already exists at the path a listener binds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StalePolicy {
    /// Remove it if it is provably stale: a socket file of this user on which nobody
    /// listens (a connect is refused) and which no other starter holds the lock of. The
    /// default: a crashed server's socket never blocks its restart.
    #[default]
    Reclaim,
    /// Fail with `AddrInUse`, whatever is there.
    Fail,
}

/// Options for binding a Unix socket to an address: permissions of the socket file, what to
/// do with a stale one, the listen backlog, and which users may connect.
///
/// ```no_run
/// use ipc_socket::{Access, Permissions};
/// use ipc_socket::{ListenerOptions, UnixAddr};
///
/// let listener = ListenerOptions::new()
///     .permissions(Permissions::owner_only().group(Access::ReadWrite))
///     .allow_uids([1000, 1001])
///     .bind_stream(&UnixAddr::path("/run/app/app.sock"))?;
/// # Ok::<(), ipc_socket::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    pub(crate) permissions: Permissions,
    pub(crate) stale: StalePolicy,
    pub(crate) backlog: i32,
    pub(crate) allowed_uids: Option<Vec<u32>>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            permissions: Permissions::owner_only(),
            stale: StalePolicy::Reclaim,
            backlog: 128,
            allowed_uids: None,
        }
    }
}

impl ListenerOptions {
    /// Owner-only socket file, stale files reclaimed, backlog 128, every user allowed (that
    /// the file permissions let in).
    pub fn new() -> Self {
        Self::default()
    }

    /// The permissions of the socket file (connecting needs write permission), applied
    /// exactly: the file is bound in a private directory, given its mode there and then
    /// moved into place, so no umask and no window of wider access.
    #[must_use]
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// What to do with an existing socket file.
    #[must_use]
    pub fn stale(mut self, policy: StalePolicy) -> Self {
        self.stale = policy;
        self
    }

    /// The listen backlog: connections the kernel queues before `accept`.
    #[must_use]
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog.max(0);
        self
    }

    /// Accepts only peers running as one of these users (checked with `SO_PEERCRED` at
    /// accept); others are disconnected at once and never returned by `accept`.
    #[must_use]
    pub fn allow_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.allowed_uids = Some(uids.into_iter().collect());
        self
    }
}

/// A socket file this process bound, with the lock that keeps other starters away; both
/// are removed on drop if the path still leads to our socket.
#[derive(Debug)]
pub(crate) struct BoundPath {
    path: PathBuf,
    id: ObjectId,
    lock: Option<PathLock>,
    persist: bool,
}

impl BoundPath {
    pub(crate) fn persist(&mut self) {
        self.persist = true;
    }
}

impl Drop for BoundPath {
    fn drop(&mut self) {
        if !self.persist {
            // Remove the socket file only if it is still ours: a successor may already
            // have replaced it. Errors cannot be reported from a destructor, and the likely
            // one (the file is already gone) leaves nothing to do.
            let current = fs::symlink_metadata(&self.path)
                .ok()
                .map(|meta| ObjectId::of(&meta));
            if current.is_some() {
                let subject = self.path.display().to_string();
                let _ = unlink_if_ours("unlink", &subject, "socket", self.id, current, || {
                    fs::remove_file(&self.path).map_err(|e| Error::from(e).with_op("unlink"))
                });
            }
        }
        drop(self.lock.take());
    }
}

/// An exclusive `flock` on `<path>.lock`, taken before the socket path is examined or
/// bound and held for the listener's life, so that two starters cannot both decide that a
/// socket is stale, and the second cannot remove the first's live socket.
#[derive(Debug)]
struct PathLock {
    path: PathBuf,
    file: Option<Flock<File>>,
}

impl PathLock {
    fn acquire(socket_path: &Path, op: &'static str) -> Result<PathLock> {
        let mut name = socket_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let subject = || path.display().to_string();
        // The lock file may be removed by its previous holder between our open and our
        // flock; then we would hold a lock on a file nobody else can find. Re-check that
        // the path still leads to the locked file, a few times.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| Error::from(e).with_op(op).with_subject(subject()))?;
            let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::new(
                        op,
                        io::ErrorKind::AddrInUse,
                        "another process holds the socket's lock file: a listener is running or starting",
                    )
                    .with_subject(subject()));
                }
                Err((_, errno)) => {
                    return Err(Error::from_errno("flock", errno).with_subject(subject()));
                }
            };
            let held = locked
                .metadata()
                .map_err(|e| Error::from(e).with_op("fstat"))?;
            match fs::symlink_metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    return Ok(PathLock {
                        path,
                        file: Some(locked),
                    });
                }
                _ => continue,
            }
        }
        Err(Error::new(
            op,
            io::ErrorKind::AddrInUse,
            "the socket's lock file keeps changing",
        )
        .with_subject(subject()))
    }
}

impl Drop for PathLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock, so that a process waiting to lock
        // it finds it gone when it re-checks; then release.
        let _ = fs::remove_file(&self.path);
        drop(self.file.take());
    }
}

/// A new Unix socket of `kind`, close-on-exec.
pub(crate) fn socket(kind: SockType, flags: SockFlag, op: &'static str) -> Result<OwnedFd> {
    nix::sys::socket::socket(
        AddressFamily::Unix,
        kind,
        flags | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::from_errno(op, e))
}

/// Binds a new socket of `kind` to `addr` (and listens, for connection-oriented kinds).
pub(crate) fn bind(
    kind: SockType,
    addr: &UnixAddr,
    options: &ListenerOptions,
    listen: bool,
) -> Result<(OwnedFd, Option<BoundPath>)> {
    const OP: &str = "bind";
    let flags = if listen {
        SockFlag::SOCK_NONBLOCK
    } else {
        SockFlag::empty()
    };
    let fd = socket(kind, flags, "socket")?;
    let bound = match addr {
        UnixAddr::Abstract(_) => {
            let sockaddr = addr.to_sockaddr(OP)?;
            nix::sys::socket::bind(fd.as_raw_fd(), &sockaddr)
                .map_err(|e| Error::from_errno(OP, e).with_subject(addr.to_string()))?;
            None
        }
        UnixAddr::Path(path) => Some(bind_path(&fd, kind, path, options)?),
    };
    if listen {
        let backlog = Backlog::new(options.backlog).unwrap_or(Backlog::MAXCONN);
        nix::sys::socket::listen(&fd, backlog)
            .map_err(|e| Error::from_errno("listen", e).with_subject(addr.to_string()))?;
    }
    Ok((fd, bound))
}

fn bind_path(
    fd: &OwnedFd,
    kind: SockType,
    path: &Path,
    options: &ListenerOptions,
) -> Result<BoundPath> {
    const OP: &str = "bind";
    let subject = || path.display().to_string();
    // Check the length before touching anything.
    UnixAddr::path(path).to_sockaddr(OP)?;
    let lock = PathLock::acquire(path, OP)?;
    if let Ok(meta) = fs::symlink_metadata(path) {
        reclaim_stale(kind, path, &meta, options.stale)?;
    }
    // Bind inside a private directory next to the target, set the mode there, then move
    // the socket into place without replacing anything (RENAME_NOREPLACE).
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        Error::new(
            OP,
            io::ErrorKind::InvalidInput,
            "a socket path needs a file name",
        )
        .with_subject(subject())
    })?;
    let mut template = parent.join(".").into_os_string();
    template.push(file_name);
    template.push(".XXXXXX");
    let temp_dir = nix::unistd::mkdtemp(Path::new(&template))
        .map_err(|e| Error::from_errno("mkdtemp", e).with_subject(subject()))?;
    let temp_socket = temp_dir.join("s");
    let placed = (|| {
        let sockaddr = UnixAddr::path(&temp_socket).to_sockaddr(OP)?;
        nix::sys::socket::bind(fd.as_raw_fd(), &sockaddr)
            .map_err(|e| Error::from_errno(OP, e).with_subject(subject()))?;
        fs::set_permissions(
            &temp_socket,
            fs::Permissions::from_mode(options.permissions.mode()),
        )
        .map_err(|e| Error::from(e).with_op("chmod").with_subject(subject()))?;
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &temp_socket,
            nix::fcntl::AT_FDCWD,
            path,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| Error::from_errno("renameat2", e).with_subject(subject()))
    })();
    if placed.is_err() {
        let _ = fs::remove_file(&temp_socket);
    }
    let _ = fs::remove_dir(&temp_dir);
    placed?;
    let meta = fs::symlink_metadata(path)
        .map_err(|e| Error::from(e).with_op("lstat").with_subject(subject()))?;
    Ok(BoundPath {
        path: path.to_path_buf(),
        id: ObjectId::of(&meta),
        lock: Some(lock),
        persist: false,
    })
}

/// Removes the socket file at `path` if it is provably stale; the caller holds the lock.
fn reclaim_stale(
    kind: SockType,
    path: &Path,
    meta: &fs::Metadata,
    policy: StalePolicy,
) -> Result<()> {
    const OP: &str = "bind";
    let subject = || path.display().to_string();
    let in_use =
        |why: &'static str| Error::new(OP, io::ErrorKind::AddrInUse, why).with_subject(subject());
    if policy == StalePolicy::Fail {
        return Err(in_use("the path exists"));
    }
    if !meta.file_type().is_socket() {
        return Err(Error::new(
            OP,
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; it is left alone",
        )
        .with_subject(subject()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::new(
            OP,
            io::ErrorKind::PermissionDenied,
            format!(
                "the socket file belongs to uid {}; it is left alone",
                meta.uid()
            ),
        )
        .with_subject(subject()));
    }
    // The proof that nobody listens: a connect of the same kind is refused.
    let probe = socket(kind, SockFlag::SOCK_NONBLOCK, "socket")?;
    let sockaddr = UnixAddr::path(path).to_sockaddr(OP)?;
    match nix::sys::socket::connect(probe.as_raw_fd(), &sockaddr) {
        Err(nix::errno::Errno::ECONNREFUSED) => fs::remove_file(path)
            .map_err(|e| Error::from(e).with_op("unlink").with_subject(subject())),
        // Connected, or queued (a full backlog says EAGAIN): somebody listens.
        Ok(()) | Err(nix::errno::Errno::EAGAIN) => Err(in_use("a process is listening on it")),
        Err(errno) => Err(Error::from_errno("connect", errno).with_subject(subject())),
    }
}

/// Accepts one connection on a non-blocking listening socket, waiting until `deadline`
/// (`None`: do not wait). The new socket is close-on-exec and blocking.
pub(crate) fn accept(
    listener: &OwnedFd,
    deadline: Option<Deadline>,
    op: &'static str,
) -> Result<OwnedFd> {
    use crate::reserve::Refused;
    loop {
        match crate::reserve::accept(op, || sys::accept4(listener.as_fd())) {
            Ok(fd) => return Ok(fd),
            Err(Refused::TurnedAway(err)) => return Err(err),
            Err(Refused::Errno(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNABORTED)) => {}
            Err(Refused::Errno(nix::errno::Errno::EAGAIN)) => match deadline {
                None => return Err(Error::would_block(op)),
                Some(deadline) => {
                    poll_fd(listener.as_fd(), PollFlags::POLLIN, deadline, op)?;
                }
            },
            Err(Refused::Errno(errno)) => return Err(Error::from_errno(op, errno)),
        }
    }
}

/// Connects a new socket of `kind` to `addr`, waiting at most until `deadline` for a full
/// backlog to make room. Returns a blocking, close-on-exec socket.
pub(crate) fn connect(kind: SockType, addr: &UnixAddr, deadline: Deadline) -> Result<OwnedFd> {
    const OP: &str = "connect";
    let sockaddr = addr.to_sockaddr(OP)?;
    let fd = socket(kind, SockFlag::SOCK_NONBLOCK, "socket")?;
    let mut backoff = Backoff::new(std::time::Duration::from_millis(20));
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &sockaddr) {
            Ok(()) => break,
            Err(nix::errno::Errno::EINTR) => {}
            // A Unix listener whose backlog is full: there is no event to wait for, so try
            // again at growing intervals until the deadline.
            Err(nix::errno::Errno::EAGAIN) => {
                if !backoff
                    .pause(deadline, OP)
                    .map_err(|e| e.with_subject(addr.to_string()))?
                {
                    return Err(Error::timed_out(OP).with_subject(addr.to_string()));
                }
            }
            Err(errno) => return Err(Error::from_errno(OP, errno).with_subject(addr.to_string())),
        }
    }
    set_blocking(&fd)?;
    Ok(fd)
}

/// Clears `O_NONBLOCK`.
pub(crate) fn set_blocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::from_errno("fcntl(F_GETFL)", e))?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags))
        .map(drop)
        .map_err(|e| Error::from_errno("fcntl(F_SETFL)", e))
}
