//! The toolkit's one policy for `SIGPIPE`: block it on writing threads, consume it after
//! `EPIPE`.

use std::cell::Cell;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::sys;

thread_local! {
    /// Whether this thread has `SIGPIPE` blocked by the toolkit.
    static BLOCKED: Cell<bool> = const { Cell::new(false) };
}

/// Blocks `SIGPIPE` on the calling thread, once per thread; every write path of the
/// toolkit that can raise it (pipes, `writev` on sockets, `splice`) calls this first.
///
/// The kernel sends `SIGPIPE` to a thread that writes to a pipe or stream socket whose
/// reader is gone, and its default action kills the process. With the signal blocked it
/// stays pending instead, and the write fails with `EPIPE`; [`consume_sigpipe`] then
/// removes the pending signal. The block stays in place afterwards, because checking and
/// restoring the mask around every write would cost two system calls per write.
/// `std::process::Command` gives children a clean mask; a program started from such a
/// thread by other means (raw `fork` and `exec`, `posix_spawn` without a mask) inherits
/// the block, so its own writes to a closed pipe fail with `EPIPE` instead of killing it.
pub fn block_sigpipe() {
    BLOCKED.with(|blocked| {
        if !blocked.get() {
            let mut set = SigSet::empty();
            set.add(Signal::SIGPIPE);
            // `pthread_sigmask` fails only for an invalid `how`, which this is not.
            if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_ok() {
                blocked.set(true);
            }
        }
    });
}

/// Removes a pending `SIGPIPE` from the calling thread without waiting; call it after a
/// write failed with `EPIPE` on a thread where [`block_sigpipe`] ran.
pub fn consume_sigpipe() {
    sys::take_pending_sigpipe();
}
