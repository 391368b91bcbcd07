//! Removing the objects that crashed tests, examples and benchmarks left behind: the
//! library behind the `ipc-clean` binary and `cargo xtask clean-ipc`.
//!
//! ```no_run
//! let report = ipc_clean::clean_stale(&[std::path::Path::new("/dev/shm")], true)?;
//! for path in &report.removed {
//!     println!("would remove {}", path.display());
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ipc_core::IpcName;

/// The prefix of every object name the project's tests, examples and benchmarks create.
/// [`clean_stale`] touches nothing else.
pub const PROJECT_PREFIX: &str = "ipcrs-";

/// What [`clean_stale`] found.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Objects whose creator is gone and that no live process uses: removed (or, in a dry
    /// run, to be removed).
    pub removed: Vec<PathBuf>,
    /// Project objects kept because their creator is alive or a process still uses them.
    pub kept: Vec<PathBuf>,
    /// Objects that should have been removed but could not be, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// Removes the project's leftover objects from `dirs` (for example `/dev/shm`, a mounted
/// `mqueue` file system, and the temporary directory with the tests' scratch directories).
///
/// An entry is removed only if all of these hold:
///
/// - its name (after an optional `sem.`) starts with [`PROJECT_PREFIX`];
/// - the name has the form of [`IpcName::unique`], so it names its creator's pid;
/// - no process with that pid exists (a pid that was reused keeps the object: safe);
/// - no live process has it open or mapped (`/proc/*/fd`, `/proc/*/maps`), so that an
///   object created by a crashed peer and still used by the test that started it stays.
///
/// With `dry_run`, nothing is removed and the report says what would be.
///
/// # Errors
///
/// Only if `/proc` cannot be read; unreadable directories in `dirs` are skipped.
pub fn clean_stale(dirs: &[&Path], dry_run: bool) -> io::Result<CleanReport> {
    let in_use = ipc_core::internal::objects_in_use()?;
    let mut report = CleanReport::default();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            let bare = name.strip_prefix("sem.").unwrap_or(name);
            if !bare.starts_with(PROJECT_PREFIX) || IpcName::creator_pid_of(bare).is_none() {
                continue;
            }
            let path = entry.path();
            if !ipc_core::internal::is_stale(&path, name, PROJECT_PREFIX, &in_use) {
                report.kept.push(path);
                continue;
            }
            if !dry_run {
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                if let Err(err) = removed {
                    report.failed.push((path, err.to_string()));
                    continue;
                }
            }
            report.removed.push(path);
        }
    }
    Ok(report)
}
