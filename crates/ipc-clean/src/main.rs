//! `ipc-clean [--dry-run]`: removes the project's objects left behind by crashed tests,
//! examples and benchmarks, from `/dev/shm`, the temporary directory and the POSIX message
//! queue file system, and the System V semaphore sets of `ipc-sem` whose creator crashed.
//! Run by `cargo xtask clean-ipc`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ipc_clean::{CleanReport, clean_stale};

fn main() -> ExitCode {
    let dry_run = std::env::args().skip(1).any(|a| a == "--dry-run");
    let temp = std::env::temp_dir();
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from("/dev/shm"), temp];
    // Message queues are only visible through an `mqueue` mount. Without one at
    // /dev/mqueue, mount a private one in a mount namespace of our own (as root), which
    // shows the same queues and disappears with this process.
    let private_mount = if is_mqueue(Path::new("/dev/mqueue")) {
        dirs.push(PathBuf::from("/dev/mqueue"));
        None
    } else {
        match mount_private_mqueue() {
            Ok(dir) => {
                dirs.push(dir.clone());
                Some(dir)
            }
            Err(err) => {
                eprintln!("ipc-clean: message queues not checked: {err}");
                None
            }
        }
    };
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let result = clean_stale(&dir_refs, dry_run);
    let sets_ok = clean_undo_sets(dry_run);
    if let Some(dir) = private_mount {
        let _ = nix::mount::umount(&dir);
        let _ = std::fs::remove_dir(&dir);
    }
    match result {
        Ok(report) => {
            print(&report, dry_run);
            if report.failed.is_empty() && sets_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("ipc-clean: cannot read /proc: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print(report: &CleanReport, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removed" };
    for path in &report.removed {
        println!("{verb} {}", path.display());
    }
    for path in &report.kept {
        println!("kept {} (its creator or a user is alive)", path.display());
    }
    for (path, err) in &report.failed {
        println!("could not remove {}: {err}", path.display());
    }
    println!(
        "ipc-clean: {} {verb}, {} kept, {} failed",
        report.removed.len(),
        report.kept.len(),
        report.failed.len()
    );
}

/// Sweeps `ipc-sem`'s System V sets whose creator crashed (they have no name in a
/// directory, so `clean_stale` cannot see them). Returns whether that went well.
fn clean_undo_sets(dry_run: bool) -> bool {
    let found = if dry_run {
        ipc_sem::stale_undo_sets()
    } else {
        ipc_sem::remove_stale_undo_sets()
    };
    match found {
        Ok(sets) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for set in &sets {
                println!(
                    "{verb} System V semaphore set {} (key {:#x}, creator {} gone)",
                    set.id(),
                    set.key(),
                    set.creator_pid()
                );
            }
            true
        }
        Err(err) => {
            eprintln!("ipc-clean: System V semaphore sets: {err}");
            false
        }
    }
}

fn is_mqueue(dir: &Path) -> bool {
    // The file system magic number of `mqueue`, which nix does not name.
    const MQUEUE_MAGIC: u32 = 0x1980_0202;
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|fs| u32::try_from(fs.filesystem_type().0) == Ok(MQUEUE_MAGIC))
}

fn mount_private_mqueue() -> Result<PathBuf, String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    // This process is still single-threaded, which `unshare(CLONE_NEWNS)` requires.
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e} (needs root)"))?;
    // Keep our mount from propagating back into the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    let dir = std::env::temp_dir().join(format!("ipc-clean-mqueue-{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Err(e) = mount(
        Some("mqueue"),
        &dir,
        Some("mqueue"),
        MsFlags::empty(),
        None::<&str>,
    ) {
        let _ = std::fs::remove_dir(&dir);
        return Err(format!("mount -t mqueue: {e}"));
    }
    Ok(dir)
}
