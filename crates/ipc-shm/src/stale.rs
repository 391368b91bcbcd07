//! Finding and removing segments that crashed processes left in `/dev/shm`.

use std::path::Path;

use ipc_core::{Error, IpcName, Result};

use crate::segment::SHM_DIR;

/// The segments in `/dev/shm` whose names start with `prefix`, were made by
/// [`IpcName::unique`], whose creator is gone and which no live process has open or mapped:
/// safe to remove. Semaphores (`sem.*`) are not segments and are skipped.
///
/// `cargo xtask clean-ipc` applies the same rules to all of the project's objects.
///
/// # Errors
///
/// If `/dev/shm` or `/proc` cannot be read.
pub fn stale_segments(prefix: &str) -> Result<Vec<IpcName>> {
    let found = ipc_core::internal::stale_entries(Path::new(SHM_DIR), prefix, |name, kind| {
        kind.is_file() && !name.starts_with("sem.")
    })
    .map_err(|e| Error::from(e).with_op("read_dir").with_subject(SHM_DIR))?;
    Ok(found
        .into_iter()
        .filter_map(|(_, name)| IpcName::new(format!("/{name}")).ok())
        .collect())
}

/// Removes the segments [`stale_segments`] finds, and returns their names.
///
/// # Errors
///
/// As [`stale_segments`]; a segment removed meanwhile by someone else is not an error.
pub fn remove_stale_segments(prefix: &str) -> Result<Vec<IpcName>> {
    let stale = stale_segments(prefix)?;
    for name in &stale {
        match nix::sys::mman::shm_unlink(name.as_cstr()) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(errno) => return Err(Error::from_errno("shm_unlink", errno).with_subject(name)),
        }
    }
    Ok(stale)
}
