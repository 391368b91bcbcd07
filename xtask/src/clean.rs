//! `cargo xtask clean-ipc`: remove what crashed tests left behind.

use crate::cmd::{cargo, step};

/// Runs `ipc-clean`, which removes `ipcrs-*` objects whose creator is gone
/// and that no live process uses, and the System V semaphore sets `ipc-sem` made for a
/// creator that crashed; it never touches other objects.
///
/// # Errors
///
/// Unknown arguments, or the name of the step that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut all = vec![
        "run",
        "--quiet",
        "-p",
        "ipc-clean",
        "--bin",
        "ipc-clean",
        "--",
    ];
    for arg in args {
        match arg.as_str() {
            "--dry-run" => all.push("--dry-run"),
            other => return Err(format!("`clean-ipc` takes only --dry-run, got `{other}`")),
        }
    }
    step("clean-ipc", &mut cargo(&all))
}
