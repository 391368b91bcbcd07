//! `ipc-bench-runner [--quick] [--out DIR]`: the comparison runner (`ipc_bench::runner`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ipc_bench::runner::main(&args)
}
