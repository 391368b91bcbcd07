//! Finding and removing FIFOs that crashed processes left.

use std::path::{Path, PathBuf};

use ipc_core::{Error, Result};
use std::os::unix::fs::FileTypeExt;

/// The FIFOs in `dir` whose file names start with `prefix`, have the form of
/// `IpcName::unique` (so they name their creator), whose creator is gone and which no live
/// process has open: safe to remove.
///
/// # Errors
///
/// If `dir` or `/proc` cannot be read.
pub fn stale_fifos(dir: impl AsRef<Path>, prefix: &str) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let found =
        ipc_core::internal::stale_entries(dir, prefix, |_, kind| kind.is_fifo()).map_err(|e| {
            Error::from(e)
                .with_op("read_dir")
                .with_subject(dir.display().to_string())
        })?;
    Ok(found.into_iter().map(|(path, _)| path).collect())
}

/// Removes the FIFOs [`stale_fifos`] finds, and returns their paths.
///
/// # Errors
///
/// As [`stale_fifos`]; the `unlink` error (a FIFO removed meanwhile by someone else is not
/// an error).
pub fn remove_stale_fifos(dir: impl AsRef<Path>, prefix: &str) -> Result<Vec<PathBuf>> {
    let stale = stale_fifos(dir, prefix)?;
    for path in &stale {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::from(e)
                    .with_op("unlink")
                    .with_subject(path.display().to_string()));
            }
            _ => {}
        }
    }
    Ok(stale)
}
