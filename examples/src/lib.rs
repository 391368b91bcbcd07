//! Example programs for the ipc-rs crates, one real program per mechanism. Each is a binary
//! of this package (`cargo run -p ipc-examples --bin <name>`):
//!
//! - `pipe_pipeline`: a producer, a filter and a consumer, three processes joined by pipes,
//!   passing length-prefixed records;
//! - `fifo_events`: a server that collects events from unrelated client processes through a
//!   named FIFO, with atomic frames so that clients never interleave;
//! - `uds_echo`, `fd_passing`, `tcp_echo`: a Unix-socket server that checks its clients'
//!   credentials, a memfd handed to another process, a TCP echo server with deadlines;
//! - `shm_table`, `shm_producer_consumer`, `shm_frames`: a table in a named segment and a
//!   sealed memfd, a million messages through a shared-memory channel, 1 MiB frames written
//!   and read in place;
//! - `sem_bounded_buffer`, `sem_crash_recovery`: the classic bounded buffer with two
//!   counting semaphores and a mutex between two processes, and a lock holder that crashes
//!   mid-update while the next process repairs the data;
//! - `mq_client_server`, `mq_events`: request-reply over message queues with a reply queue
//!   per client and correlation ids, and fire-and-forget events with priorities consumed on
//!   the queue's notification;
//! - `signal_shutdown`, `signal_payloads`: a server that shuts down cleanly on SIGTERM and
//!   removes its named objects, and two processes exchanging real-time signals with
//!   payloads;
//! - `async_server`: a tokio server serving a seqpacket socket, a message queue and a
//!   shared-memory channel at once, passing a descriptor to one client, and shutting down
//!   cleanly on SIGTERM.
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
