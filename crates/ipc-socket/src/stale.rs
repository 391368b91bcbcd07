//! Finding and removing socket files that crashed processes left.

use std::path::{Path, PathBuf};

use ipc_core::{Error, Result};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

/// The socket files in `dir` whose file names start with `prefix`, have the form of
/// `IpcName::unique` (so they name their creator), whose creator is gone and to which no
/// socket is bound: safe to remove.
///
/// # Errors
///
/// If `dir` or `/proc` cannot be read.
pub fn stale_sockets(dir: impl AsRef<Path>, prefix: &str) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let found = ipc_core::internal::stale_entries(dir, prefix, |_, kind| kind.is_socket())
        .map_err(|e| {
            Error::from(e)
                .with_op("read_dir")
                .with_subject(dir.display().to_string())
        })?;
    Ok(found.into_iter().map(|(path, _)| path).collect())
}

/// Removes the socket files [`stale_sockets`] finds, each with its listener's lock file
/// (see [`remove_socket_file`]), and returns their paths.
///
/// # Errors
///
/// As [`stale_sockets`] and [`remove_socket_file`].
pub fn remove_stale_sockets(dir: impl AsRef<Path>, prefix: &str) -> Result<Vec<PathBuf>> {
    let stale = stale_sockets(dir, prefix)?;
    for path in &stale {
        remove_socket_file(path)?;
    }
    Ok(stale)
}

/// Removes the socket file at `path`, which the caller found no socket bound to, and the
/// lock file (`PATH.lock`) a [`StreamListener`](crate::StreamListener) or other listener of
/// this crate keeps beside it, unless a listener starting at that path holds the lock
/// now (then it is that listener's).
///
/// # Errors
///
/// The `unlink` error (a file removed meanwhile by someone else is not an error).
pub fn remove_socket_file(path: impl AsRef<Path>) -> Result<()> {
    use nix::fcntl::{Flock, FlockArg};
    let path = path.as_ref();
    let unlink = |path: &Path| match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::from(e)
            .with_op("unlink")
            .with_subject(path.display().to_string())),
        _ => Ok(()),
    };
    unlink(path)?;
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    // Removed only while this process holds the lock: a listener that opened the file
    // just before re-checks, after locking, that the path still leads to its file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock);
    if let Ok(file) = file {
        if let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            unlink(&lock)?;
        }
    }
    Ok(())
}
