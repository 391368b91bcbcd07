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
    // Message queues are only visible through an `mqueue` mount: /dev/mqueue, or one
    // mounted for this process alone (as root), made while it has one thread.
    let mqueue = match ipc_cli::MqueueDir::open() {
        Ok(dir) => {
            dirs.push(dir.path().to_path_buf());
            Some(dir)
        }
        Err(err) => {
            eprintln!("ipc-clean: message queues not checked: {err}");
            None
        }
    };
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let result = clean_stale(&dir_refs, dry_run);
    let sets_ok = clean_undo_sets(dry_run);
    drop(mqueue);
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
