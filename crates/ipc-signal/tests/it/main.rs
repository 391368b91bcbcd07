//! ipc-signal across real processes.
//!
//! Signals read through a `SignalFd` must be blocked in every thread of the receiving
//! process, or the kernel hands a process-directed one to a thread that does not block it
//! (and its default action ends the process). The test harness starts its threads before
//! any test runs, so this binary blocks those signals in a constructor that runs before
//! `main`, in the main thread, whose mask every later thread inherits.

// The constructor is a function pointer placed in `.init_array`.
#![allow(unsafe_code)]

mod asynch;
mod process;
mod receive;

/// The signals this binary reads through `SignalFd`s: `SIGUSR1` and the first eight
/// real-time signals. Handler tests use other signals.
pub fn fd_signals() -> Vec<ipc_signal::Signal> {
    let mut signals = vec![ipc_signal::Signal::USR1];
    signals.extend((0..8).map(|n| ipc_signal::Signal::realtime(n).unwrap()));
    signals
}

extern "C" fn block_fd_signals() {
    if let Ok(set) = ipc_signal::SignalSet::of(&fd_signals()) {
        if let Ok(guard) = set.block() {
            guard.keep();
        }
    }
}

// SAFETY: the constructor only builds a signal set and calls `pthread_sigmask`, which need
// nothing of the Rust runtime; it runs once, before `main`, in the main thread.
#[used]
#[unsafe(link_section = ".init_array")]
static BLOCK_FD_SIGNALS: extern "C" fn() = block_fd_signals;

ipc_testkit::peer_roles! {
    "read-queued" => receive::read_queued_role,
    "read-standard" => receive::read_standard_role,
    "overflow-target" => receive::overflow_target_role,
    "send-to" => receive::send_to_role,
    "shutdown" => process::shutdown_role,
    "disposition" => process::disposition_role,
    "async-shutdown" => asynch::async_shutdown_role,
    "queue-to" => asynch::queue_to_role,
}
