//! Telling whether another process is alive, for mechanisms that record their users' pids
//! in shared state.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::poll::PollFlags;

use crate::{Error, Result};

/// Opens a pidfd for `pid` (`pidfd_open(2)`, Linux 5.3): it becomes readable when the
/// process exits (zombies included), and unlike the pid it can never come to refer to
/// another process. Close-on-exec.
///
/// ```
/// let me = ipc_core::internal::pidfd_open(std::process::id())?;
/// assert!(ipc_core::internal::process_is_alive(std::process::id()));
/// # drop(me);
/// # Ok::<(), ipc_core::Error>(())
/// ```
///
/// # Errors
///
/// `ESRCH` if there is no such process (or it was reaped); `InvalidInput` for a pid that
/// does not fit `pid_t`.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    crate::sys::pidfd_open(pid).map_err(|e| {
        Error::from(e)
            .with_op("pidfd_open")
            .with_subject(pid.to_string())
    })
}

/// Whether process `pid` runs: it exists and has not exited (a zombie has). A pid can be
/// reused, so a `true` for a pid recorded long ago proves little; pair it with the
/// process's start time ([`process_start_time`]) where that matters.
pub fn process_is_alive(pid: u32) -> bool {
    pidfd_open(pid).is_ok_and(|pidfd| {
        crate::internal::poll_now(&pidfd, PollFlags::POLLIN, "poll")
            .is_ok_and(|events| !events.contains(PollFlags::POLLIN))
    })
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`, in clock ticks since boot),
/// or `None` if it does not exist. Together with the pid it names a process for good.
pub fn process_start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// This process's pid and start time ([`process_start_time`], 0 if `/proc` cannot tell),
/// read from `/proc` once per process rather than at every call: a forked child has
/// another pid, and reads its own.
pub fn this_process() -> (u32, u64) {
    // Two words, not a lock: a child forked while another thread held a lock would find
    // it held for good. The start time is stored before the pid that vouches for it.
    static PID: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    if PID.load(Ordering::Acquire) == pid {
        return (pid, START.load(Ordering::Relaxed));
    }
    let start = process_start_time(pid).unwrap_or(0);
    if start != 0 {
        START.store(start, Ordering::Relaxed);
        PID.store(pid, Ordering::Release);
    }
    (pid, start)
}

/// Process `pid`'s state letter (field 3 of `/proc/<pid>/stat`: `R`, `S`, `D`, `T` for
/// stopped, `t` for stopped by a tracer, `Z`...), or `None` if it does not exist. A pid can
/// be reused: read it while holding a pidfd that shows the process has not exited.
pub fn process_state(pid: u32) -> Option<char> {
    stat_field(pid, 3)?.chars().next()
}

/// Field `n` (counted from 1, as in `proc(5)`) of `/proc/<pid>/stat`, for `n` >= 3.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain anything, so count from its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(process_is_alive(std::process::id()));
        assert!(process_start_time(std::process::id()).is_some());
        assert!(matches!(process_state(std::process::id()), Some('R' | 'S')));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_is_alive(pid));
    }
}
