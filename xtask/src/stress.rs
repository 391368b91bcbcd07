//! `cargo xtask stress`: the crash matrix with many injections, and the report lines of
//! every crash test (also printed at the end of `cargo xtask test`).

use std::path::PathBuf;

use crate::cmd::{cargo, has_cargo_subcommand, project_root, step};

/// Where the crash tests write their report lines (`CARGO_TARGET_TMPDIR/ipc-crash-report`).
fn report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from);
    target.join("tmp").join("ipc-crash-report")
}

/// Removes the report lines of an earlier run.
pub fn clear_reports() {
    let _ = std::fs::remove_dir_all(report_dir());
}

/// Prints every report line written since [`clear_reports`].
pub fn print_reports() {
    let Ok(entries) = std::fs::read_dir(report_dir()) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    if !files.is_empty() {
        eprintln!("==> crash matrix report");
    }
    for file in files {
        if let Ok(line) = std::fs::read_to_string(&file) {
            eprint!("{line}");
        }
    }
}

/// `cargo xtask stress [--injections N]`.
///
/// # Errors
///
/// Bad arguments, or the failed step.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut injections = "2000".to_owned();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--injections" => {
                injections = args
                    .next()
                    .filter(|n| n.parse::<u64>().is_ok())
                    .ok_or("--injections needs a number")?
                    .clone();
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    clear_reports();
    let mut cmd = if has_cargo_subcommand("nextest") {
        cargo(&[
            "nextest",
            "run",
            "-p",
            "ipc-integration",
            "--profile",
            "stress",
            "-E",
            "test(/^crash::/)",
        ])
    } else {
        cargo(&["test", "-p", "ipc-integration", "--test", "it", "crash::"])
    };
    cmd.env("IPC_CRASH_INJECTIONS", &injections);
    let result = step("crash matrix", &mut cmd);
    print_reports();
    result
}
