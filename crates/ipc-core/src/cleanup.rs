//! Telling whether a leftover object is still in use, for cleanup tools.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::IpcName;

/// Everything any process has open, mapped or is in, as `/proc` shows it: `/dev/shm/x` for
/// segments and semaphores, `/x` for message queues, paths for files and FIFOs, the paths
/// of bound Unix sockets (`/proc/net/unix`, as an open socket's descriptor names no path),
/// and working directories.
///
/// # Errors
///
/// If `/proc` cannot be read; processes that vanish or cannot be inspected are skipped.
pub fn objects_in_use() -> io::Result<BTreeSet<PathBuf>> {
    let mut used = BTreeSet::new();
    // Columns: Num RefCount Protocol Flags Type St Inode Path (absent for unbound sockets).
    if let Ok(sockets) = fs::read_to_string("/proc/net/unix") {
        used.extend(
            sockets
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(7))
                .filter(|path| path.starts_with('/'))
                .map(PathBuf::from),
        );
    }
    for process in fs::read_dir("/proc")?.flatten() {
        let is_pid = process
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        if let Ok(fds) = fs::read_dir(process.path().join("fd")) {
            used.extend(fds.flatten().filter_map(|fd| fs::read_link(fd.path()).ok()));
        }
        if let Ok(cwd) = fs::read_link(process.path().join("cwd")) {
            used.insert(cwd);
        }
        if let Ok(maps) = fs::read_to_string(process.path().join("maps")) {
            for line in maps.lines() {
                // The path is the sixth field; it may be followed by " (deleted)".
                if let Some(path) = line.split_whitespace().nth(5) {
                    used.insert(PathBuf::from(path));
                }
            }
        }
    }
    Ok(used)
}

/// Whether the object at `path`, named `file_name` in its directory, is a stale leftover of
/// this project: its name (after an optional `sem.`) starts with `prefix` and has the form
/// of [`IpcName::unique`], its creator is gone, and no live process uses it or, for a
/// directory, anything inside it (`in_use`, from [`objects_in_use`]: a FIFO or file held
/// open, a bound socket, a mapping, a working directory).
///
/// A creator pid that was reused keeps the object: the check errs on the side of keeping.
pub fn is_stale(path: &Path, file_name: &str, prefix: &str, in_use: &BTreeSet<PathBuf>) -> bool {
    let bare = file_name.strip_prefix("sem.").unwrap_or(file_name);
    if !bare.starts_with(prefix) {
        return false;
    }
    let Some(pid) = IpcName::creator_pid_of(bare) else {
        return false;
    };
    let creator_alive = Path::new(&format!("/proc/{pid}")).exists();
    !creator_alive
        && !in_use.iter().any(|used| used.starts_with(path))
        && !in_use.contains(Path::new(&format!("/{file_name}")))
}

/// The entries of `dir` that [`is_stale`] finds to be stale leftovers for `prefix`, among
/// those `wanted` accepts (by file name and type), as their paths and file names: the
/// search behind each crate's `stale_*` function.
///
/// # Errors
///
/// If `dir` or `/proc` cannot be read.
pub fn stale_entries(
    dir: &Path,
    prefix: &str,
    wanted: impl Fn(&str, fs::FileType) -> bool,
) -> io::Result<Vec<(PathBuf, String)>> {
    let in_use = objects_in_use()?;
    let mut stale = Vec::new();
    for entry in fs::read_dir(dir)?.flatten() {
        let (Ok(file_type), Some(name)) = (
            entry.file_type(),
            entry.file_name().to_str().map(str::to_owned),
        ) else {
            continue;
        };
        let path = entry.path();
        if wanted(&name, file_type) && is_stale(&path, &name, prefix, &in_use) {
            stale.push((path, name));
        }
    }
    Ok(stale)
}
