//! Finding and removing named semaphores that crashed processes left in `/dev/shm`.

use std::path::Path;

use ipc_core::{Error, IpcName, Result};

use crate::sys;

/// Where glibc keeps named semaphores (`sem.NAME`).
const SEM_DIR: &str = "/dev/shm";

/// The named semaphores whose names start with `prefix`, were made by
/// [`IpcName::unique`], whose creator is gone and which no live process has open or
/// mapped: safe to remove. (System V sets: [`stale_undo_sets`](crate::stale_undo_sets).)
///
/// # Errors
///
/// If `/dev/shm` or `/proc` cannot be read.
pub fn stale_named_semaphores(prefix: &str) -> Result<Vec<IpcName>> {
    let found = ipc_core::internal::stale_entries(Path::new(SEM_DIR), prefix, |name, kind| {
        kind.is_file() && name.starts_with("sem.")
    })
    .map_err(|e| Error::from(e).with_op("read_dir").with_subject(SEM_DIR))?;
    Ok(found
        .into_iter()
        .filter_map(|(_, name)| IpcName::new(format!("/{}", name.strip_prefix("sem.")?)).ok())
        .collect())
}

/// Removes the semaphores [`stale_named_semaphores`] finds, and returns their names.
///
/// # Errors
///
/// As [`stale_named_semaphores`]; the `sem_unlink` error (one removed meanwhile by someone
/// else is not an error).
pub fn remove_stale_named_semaphores(prefix: &str) -> Result<Vec<IpcName>> {
    let stale = stale_named_semaphores(prefix)?;
    for name in &stale {
        match sys::sem_unlink(name.as_cstr()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e.with_subject(name));
            }
            _ => {}
        }
    }
    Ok(stale)
}
