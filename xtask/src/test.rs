//! `cargo xtask test`: everything a change must pass.

use std::time::Duration;

use crate::cmd::{cargo, has_cargo_subcommand, step, step_within};

/// How long the test suite may take before it is killed as hung: it takes about two
/// minutes on this project's machines and must stay under ten.
const SUITE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Runs the conventions check, formatting, clippy, the test suite and the doc tests, with
/// every feature (the `tokio` support), after checking that everything builds without.
///
/// # Errors
///
/// The name of the first step that failed.
pub fn run_steps() -> Result<(), String> {
    crate::tidy::run_checks().map_err(|problems| format!("step `tidy` failed: {problems}"))?;
    step("fmt", &mut cargo(&["fmt", "--all", "--check"]))?;
    // Every feature includes the benchmarks' `peers`: iceoryx2, whose bindings need libclang.
    crate::bench::ensure_libclang()?;
    step(
        "check without features",
        &mut cargo(&["check", "--workspace", "--all-targets"]),
    )?;
    step(
        "clippy",
        &mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    crate::stress::clear_reports();
    if has_cargo_subcommand("nextest") {
        // One process per test: the leak checker can then also watch descriptors, and a
        // hung test is killed by the slow-test limit in .config/nextest.toml.
        step_within(
            "tests (nextest)",
            &mut cargo(&[
                "nextest",
                "run",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--profile",
                "ci",
            ]),
            SUITE_LIMIT,
        )?;
    } else {
        eprintln!("==> cargo-nextest is not installed; running the tests with cargo test");
        step_within(
            "tests",
            &mut cargo(&["test", "--workspace", "--all-targets", "--all-features"]),
            SUITE_LIMIT,
        )?;
    }
    crate::stress::print_reports();
    step_within(
        "doc tests",
        &mut cargo(&["test", "--workspace", "--doc", "--all-features"]),
        SUITE_LIMIT,
    )
}

/// `cargo xtask test`.
///
/// # Errors
///
/// Unknown arguments, or the name of the step that failed.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("`test` takes no arguments, got `{arg}`"));
    }
    run_steps()?;
    eprintln!("==> xtask test: all steps passed");
    Ok(())
}
