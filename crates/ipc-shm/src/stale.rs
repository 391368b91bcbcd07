//! Finding and removing segments that crashed processes left in `/dev/shm`.

use std::fs;
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
    let in_use = ipc_core::internal::objects_in_use()
        .map_err(|e| Error::from(e).with_op("read_dir").with_subject("/proc"))?;
    let entries = fs::read_dir(SHM_DIR)
        .map_err(|e| Error::from(e).with_op("read_dir").with_subject(SHM_DIR))?;
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with("sem.") {
            continue;
        }
        if ipc_core::internal::is_stale(
            &Path::new(SHM_DIR).join(file_name),
            file_name,
            prefix,
            &in_use,
        ) {
            if let Ok(name) = IpcName::new(format!("/{file_name}")) {
                stale.push(name);
            }
        }
    }
    Ok(stale)
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
