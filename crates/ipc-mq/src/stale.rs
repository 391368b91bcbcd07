//! Finding and removing queues that crashed processes left.

use std::path::Path;

use ipc_core::{Error, IpcName, Result};

use crate::sys;

/// Where queues are files, when an `mqueue` file system is mounted there.
const MQUEUE_DIR: &str = "/dev/mqueue";

/// The queues whose names start with `prefix`, were made by [`IpcName::unique`], whose
/// creator is gone and which no live process has open: safe to remove.
///
/// Queues can be listed only through a mounted `mqueue` file system, at `/dev/mqueue` (`mount
/// -t mqueue none /dev/mqueue`); `ipc clean` mounts one of its own when there is none.
///
/// # Errors
///
/// `NotFound` if no `mqueue` file system is mounted at `/dev/mqueue`; if it or `/proc`
/// cannot be read.
pub fn stale_queues(prefix: &str) -> Result<Vec<IpcName>> {
    // The file system magic number of `mqueue`, which nix does not name.
    const MQUEUE_MAGIC: u32 = 0x1980_0202;
    let mounted = nix::sys::statfs::statfs(MQUEUE_DIR)
        .is_ok_and(|fs| u32::try_from(fs.filesystem_type().0) == Ok(MQUEUE_MAGIC));
    if !mounted {
        return Err(Error::new(
            "statfs",
            std::io::ErrorKind::NotFound,
            "no mqueue file system is mounted here, so queues cannot be listed: mount one \
             (`mount -t mqueue none /dev/mqueue`) or use `ipc clean`",
        )
        .with_subject(MQUEUE_DIR));
    }
    let found =
        ipc_core::internal::stale_entries(Path::new(MQUEUE_DIR), prefix, |_, kind| kind.is_file())
            .map_err(|e| Error::from(e).with_op("read_dir").with_subject(MQUEUE_DIR))?;
    Ok(found
        .into_iter()
        .filter_map(|(_, name)| IpcName::new(format!("/{name}")).ok())
        .collect())
}

/// Removes the queues [`stale_queues`] finds, and returns their names.
///
/// # Errors
///
/// As [`stale_queues`]; the `mq_unlink` error (a queue removed meanwhile by someone else
/// is not an error).
pub fn remove_stale_queues(prefix: &str) -> Result<Vec<IpcName>> {
    let stale = stale_queues(prefix)?;
    for name in &stale {
        match sys::mq_unlink(name.as_cstr()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e.with_subject(name));
            }
            _ => {}
        }
    }
    Ok(stale)
}
