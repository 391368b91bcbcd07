//! Telling whether another process is alive, for mechanisms that record their users' pids
//! in shared state.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

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

/// Another process this process watches for its exit, through one pidfd shared by every
/// object here that watches it: a thousand channels to one peer hold one descriptor for
/// it, not a thousand. Dropped with its last watcher.
#[derive(Debug)]
pub struct PeerProcess {
    pid: u32,
    start: u64,
    pidfd: OwnedFd,
    /// The relay group its pidfd is watched under, and the pid of the process whose relay
    /// watches it (0 while none does; a forked child's relay is another).
    group: u64,
    relayed_by: AtomicU32,
}

/// The peers watched in this process, by pid and start time.
type Peers = HashMap<(u32, u64), Weak<PeerProcess>>;

/// The peers and the pid of the process that watches them: a forked child (whose pid
/// differs) starts afresh and opens pidfds of its own.
static PEERS: Mutex<Option<(u32, Peers)>> = Mutex::new(None);

impl PeerProcess {
    /// The process `pid` that started at `start` ([`process_start_time`]), shared with
    /// every other watcher of it in this process; `None` if it no longer runs (it exited,
    /// or the pid now names another process).
    ///
    /// # Errors
    ///
    /// The `pidfd_open` error other than `ESRCH` (out of descriptors, say).
    pub fn get(pid: u32, start: u64) -> Result<Option<Arc<PeerProcess>>> {
        let own = std::process::id();
        let mut peers = PEERS.lock().unwrap_or_else(|e| e.into_inner());
        let (owner, map) = peers.get_or_insert_with(|| (own, HashMap::new()));
        if *owner != own {
            *owner = own;
            map.clear();
        }
        if let Some(peer) = map.get(&(pid, start)).and_then(Weak::upgrade) {
            return Ok(Some(peer));
        }
        let pidfd = match pidfd_open(pid) {
            Ok(pidfd) => pidfd,
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(err) => return Err(err),
        };
        // The pid may have been reused since it was recorded: only the same start time,
        // read while the pidfd holds the process, proves it is the same one.
        if process_start_time(pid) != Some(start) {
            return Ok(None);
        }
        let peer = Arc::new(PeerProcess {
            pid,
            start,
            pidfd,
            group: crate::relay::new_key(),
            relayed_by: AtomicU32::new(0),
        });
        map.insert((pid, start), Arc::downgrade(&peer));
        Ok(Some(peer))
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it has exited (a `poll` of its pidfd; a zombie has).
    ///
    /// # Errors
    ///
    /// The `poll` error.
    pub fn exited(&self) -> Result<bool> {
        crate::internal::poll_now(&self.pidfd, PollFlags::POLLIN, "poll")
            .map(|events| events.contains(PollFlags::POLLIN))
    }

    /// Has this process's relay mark `mark` on waiter `key`'s target and wake it when the
    /// peer exits, at once if it has already.
    ///
    /// # Errors
    ///
    /// The `epoll_ctl` error of the first watch of this peer, or `poll`'s.
    pub fn relay_exit(&self, relay: &crate::internal::Relay, key: u64, mark: u32) -> Result<()> {
        let own = std::process::id();
        relay.join(self.group, key, mark);
        let before = self.relayed_by.load(Ordering::Acquire);
        // One watcher adds the pidfd to the relay's set; one that finds it being added
        // goes on: an exit the adding misses, the check below sees.
        if before != own
            && self
                .relayed_by
                .compare_exchange(before, own, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            if let Err(err) = relay.watch_group(&self.pidfd, self.group) {
                self.relayed_by.store(before, Ordering::Release);
                relay.leave(self.group, key);
                return Err(err);
            }
        }
        // The pidfd is watched edge-triggered: an exit before this waiter joined fired
        // for the others only.
        if self.exited()? {
            relay.fire(key, mark);
        }
        Ok(())
    }

    /// Stops what [`relay_exit`](PeerProcess::relay_exit) started for waiter `key`.
    pub fn stop_relaying(&self, relay: &crate::internal::Relay, key: u64) {
        relay.leave(self.group, key);
    }
}

impl AsFd for PeerProcess {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let mut peers = PEERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, map)) = peers.as_mut() {
            let key = (self.pid, self.start);
            // A successor for the same process may have taken the entry meanwhile.
            if map
                .get(&key)
                .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), self))
            {
                map.remove(&key);
            }
        }
        drop(peers);
        if self.relayed_by.load(Ordering::Acquire) == std::process::id() {
            crate::relay::forget_group(self.group);
        }
    }
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
