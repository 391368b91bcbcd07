//! Sending signals by pid: `kill` and `sigqueue` with a payload.

use ipc_core::{Error, Limit, Result};

use crate::{Signal, sys};

/// `NotFound` for a process that is gone, from the `ESRCH` of `op` (std calls that errno
/// "uncategorized"); other errors as they are.
pub(crate) fn gone_is_not_found(err: Error, op: &'static str, subject: String) -> Error {
    if err.raw_os_error() == Some(libc::ESRCH) {
        Error::new(
            op,
            std::io::ErrorKind::NotFound,
            "no such process (it has exited, or never existed)",
        )
        .with_subject(subject)
    } else {
        err.with_subject(subject)
    }
}

fn pid_t(pid: u32, op: &'static str) -> Result<libc::pid_t> {
    libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            Error::new(
                op,
                std::io::ErrorKind::InvalidInput,
                format!("{pid} is not a process id (groups and broadcasts are not sent to)"),
            )
        })
}

/// Sends `signal` to process `pid` (`kill`).
///
/// A pid can be reused by another process once the one it named has been reaped: to signal
/// a process you did not start and reap yourself, prefer a [`Process`](crate::Process)
/// (a pidfd), which never reaches a stranger.
///
/// # Errors
///
/// `NotFound` if there is no such process. A process that has exited but is not reaped yet
/// still takes signals (they reach nobody) and is not reported: a [`Process`](crate::Process)
/// is (checking costs `kill` a system call, measured at 5–14% of a signal's round trip); `PermissionDenied` (`EPERM`) if
/// this process may not signal it; `InvalidInput` for pid 0 or one above `i32::MAX` (this
/// function never signals a process group).
pub fn send(pid: u32, signal: Signal) -> Result<()> {
    let target = pid_t(pid, "kill")?;
    let subject = || format!("{signal} to pid {pid}");
    sys::kill(target, signal.number()).map_err(|e| gone_is_not_found(e, "kill", subject()))
}

/// Queues `signal` with the integer payload `value` to process `pid` (`sigqueue`). A
/// real-time signal is queued each time, in order, and its payload reaches a
/// [`SignalFd`](crate::SignalFd) reader; a standard one coalesces with one pending.
///
/// # Errors
///
/// A limit error naming `RLIMIT_SIGPENDING` when the target's queue of pending signals is
/// full (`EAGAIN`): nothing was sent. Otherwise as [`send`].
pub fn queue(pid: u32, signal: Signal, value: i32) -> Result<()> {
    let target = pid_t(pid, "sigqueue")?;
    sys::sigqueue(target, signal.number(), value).map_err(|e| {
        let subject = format!("{signal} to pid {pid}");
        match e.raw_os_error() {
            Some(libc::EAGAIN) => {
                let limit =
                    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_SIGPENDING)
                        .map_or(0, |(soft, _)| soft);
                Error::limit_exceeded(
                    "sigqueue",
                    "pending signals",
                    limit.saturating_add(1),
                    Limit::new("RLIMIT_SIGPENDING (ulimit -i)", limit),
                )
                .with_subject(subject)
            }
            _ => gone_is_not_found(e, "sigqueue", subject),
        }
    })
}

/// Sends `signal` to the calling thread (`raise`): the one way to be sure which thread of
/// this process gets it.
///
/// # Errors
///
/// The error of `raise` (none for a valid signal).
pub fn raise(signal: Signal) -> Result<()> {
    sys::raise(signal.number()).map_err(|e| e.with_subject(signal.to_string()))
}
