//! Example programs for the ipc-rs crates, one real program per mechanism. Each is a binary
//! of this package (`cargo run -p ipc-examples --bin <name>`):
//!
//! - `pipe_pipeline`: a producer, a filter and a consumer, three processes joined by pipes,
//!   passing length-prefixed records;
//! - `fifo_events`: a server that collects events from unrelated client processes through a
//!   named FIFO, with atomic frames so that clients never interleave.
//!
//! The library part holds what several examples share.

use std::process::{Child, Command, Stdio};

/// Starts this same program again with `args` (a role and its arguments), with the given
/// stdin and stdout, and stderr shared with this process.
///
/// # Errors
///
/// If the program cannot be found or started.
pub fn spawn_self(args: &[&str], stdin: Stdio, stdout: Stdio) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .spawn()
}
