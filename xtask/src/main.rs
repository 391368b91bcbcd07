//! Project automation: `cargo xtask <command>`.
//!
//! - `test`: the conventions (`tidy`), formatting, clippy, the whole test suite (nextest when
//!   installed) and doc tests;
//! - `tidy`: the rules of `CONVENTIONS.md` that a program can check;
//! - `ci`: what CI runs: `test`, plus `cargo doc` with warnings denied and the benchmarks
//!   compiled;
//! - `bench [--quick] [runner options]`: the comparison runner (`ipc-bench-runner`), which
//!   writes `target/ipc-report/report.{md,json,svg}`, keeps baselines (`--save NAME`) and
//!   compares reports (`--compare OLD NEW`);
//! - `stress [--injections N]`: the crash matrix with N kills per mechanism (2000 by
//!   default) and its report;
//! - `clean-ipc [--dry-run]`: removes objects left behind by crashed tests and benchmarks.
//!
//! Every command prints each step before running it and fails naming the step that failed.

mod bench;
mod ci;
mod clean;
mod cmd;
mod stress;
mod test;
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test                     tidy, fmt check, clippy -D warnings, all tests, doc tests
  tidy                     the rules of CONVENTIONS.md that a program can check
  ci                       test + cargo doc (warnings denied) + benchmarks compiled
  bench [--quick] [ARGS]   run the comparison benchmark runner: target/ipc-report/report.{md,json,svg}
                           (--save NAME keeps a baseline; --compare OLD NEW diffs two reports)
  stress [--injections N]  the crash matrix with N kills per mechanism (default 2000)
  clean-ipc [--dry-run]    remove leftover ipcrs-* objects whose creator is gone
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let result = match command.as_str() {
        "test" => test::run(rest),
        "tidy" => tidy::run(rest),
        "ci" => ci::run(rest),
        "bench" => bench::run(rest),
        "stress" => stress::run(rest),
        "clean-ipc" => clean::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {command}: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}
