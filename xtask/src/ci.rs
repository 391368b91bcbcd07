//! `cargo xtask ci`: what CI runs.

use crate::cmd::{cargo, step};

/// `cargo xtask ci`: the `test` steps, the documentation with warnings denied, and the
/// benchmarks compiled (not run: timing belongs on a quiet machine).
///
/// # Errors
///
/// Unknown arguments, or the name of the step that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`ci` takes no arguments, got `{arg}`"));
    }
    crate::test::run_steps()?;
    step(
        "doc",
        cargo(&[
            "doc",
            "--workspace",
            "--all-features",
            "--no-deps",
            "--document-private-items",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    step(
        "bench build",
        &mut cargo(&["bench", "--workspace", "--no-run"]),
    )?;
    eprintln!("==> xtask ci: all steps passed");
    Ok(())
}
