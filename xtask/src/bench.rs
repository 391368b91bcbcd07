//! `cargo xtask bench`: the comparison runner.

use crate::cmd::{cargo, step};

/// Builds the runner in release mode and runs it with `args` (for example `--quick`);
/// `--peers` also builds the other crates it measures (the `peers` feature).
///
/// # Errors
///
/// The name of the step that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut all = vec!["run", "--release", "--quiet", "-p", "ipc-bench"];
    if args.iter().any(|arg| arg == "--peers") {
        all.extend(["--features", "peers"]);
    }
    all.extend(["--bin", "ipc-bench-runner", "--"]);
    all.extend(args.iter().map(String::as_str));
    step("bench runner", &mut cargo(&all))
}
