//! A process-wide thread that turns rare events on descriptors (a peer's death on its
//! pidfd, a re-check timer) into a byte written to a waiter's wake descriptor, so that a
//! poller watches that one descriptor alone.
//!
//! Used by the shared-memory channel, whose waiters' wake FIFOs the peer writes: an epoll
//! set per waiter (FIFO, pidfd, timer) nested in the poller's cost 1.33–1.36× a futex
//! round trip where the FIFO alone costs 1.11–1.13× (`ipc-bench-readiness`). The thread
//! wakes only when a watched descriptor fires; its epoll descriptor ([`relay_fd`]) lives
//! as long as the process, once made.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::{Error, Result};

/// The relay of this process.
#[derive(Debug)]
pub struct Relay {
    pid: u32,
    epoll: Epoll,
    /// What every waiter is woken through, by key.
    targets: Mutex<HashMap<u64, Arc<RelayTarget>>>,
    /// The waiters (key, mark) a descriptor watched for many wakes, by group.
    groups: Mutex<HashMap<u64, Vec<(u64, u32)>>>,
}

/// The mark of an event for a group: its members are fired with their own marks.
const GROUP_MARK: u32 = 31;

/// What the relay wakes for one waiter: a descriptor it writes to, and a mark for each
/// watch that fired since the waiter last took it (so that a pidfd that fired once is
/// not forgotten once the descriptor was emptied).
#[derive(Debug)]
pub struct RelayTarget {
    wake: Arc<File>,
    fired: AtomicU32,
}

impl RelayTarget {
    /// Woken by writing to `wake`: a FIFO's or pipe's writing end, non-blocking, or an
    /// eventfd (8 bytes are written).
    pub fn new(wake: Arc<File>) -> Arc<RelayTarget> {
        Arc::new(RelayTarget {
            wake,
            fired: AtomicU32::new(0),
        })
    }

    /// Whether the watch marked `mark` (below 32) fired since the last call, clearing it.
    /// A load, and a write only when it fired.
    pub fn take_fired(&self, mark: u32) -> bool {
        let bit = 1 << mark;
        self.fired.load(Ordering::Acquire) & bit != 0
            && self.fired.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    fn fire(&self, mark: u32) {
        self.fired.fetch_or(1 << mark, Ordering::AcqRel);
        // Full: a wake-up is pending already.
        let _ = (&*self.wake).write(&1u64.to_ne_bytes());
    }
}

static RELAY: Mutex<Option<Arc<Relay>>> = Mutex::new(None);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

impl Relay {
    /// This process's relay, its thread started the first time (a child after `fork`
    /// has none of its parent's threads, so it starts its own).
    ///
    /// # Errors
    ///
    /// The `epoll_create1` error, or the thread's if it cannot start.
    pub fn get() -> Result<Arc<Relay>> {
        let mut current = RELAY.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if let Some(relay) = current.as_ref().filter(|relay| relay.pid == pid) {
            return Ok(Arc::clone(relay));
        }
        let relay = Arc::new(Relay {
            pid,
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
                .map_err(|e| Error::from_errno("epoll_create1", e))?,
            targets: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
        });
        let running = Arc::clone(&relay);
        std::thread::Builder::new()
            .name("ipc-relay".into())
            .spawn(move || running.run())
            .map_err(|e| Error::from(e).with_op("spawn the ipc-rs relay thread"))?;
        *current = Some(Arc::clone(&relay));
        Ok(relay)
    }

    /// A new key for a waiter woken through `target`.
    pub fn enrol(&self, target: Arc<RelayTarget>) -> u64 {
        let key = new_key();
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, target);
        key
    }

    /// Withdraws the waiter `key`: an event that still arrives for it is dropped, and the
    /// relay keeps no reference to its target.
    pub fn withdraw(&self, key: u64) {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Has the members of `group` ([`join`](Relay::join)) marked and woken each time `fd`
    /// becomes readable (edge-triggered), one descriptor for them all. The watch ends
    /// when `fd` is closed; the group's owner then calls [`forget_group`].
    ///
    /// # Errors
    ///
    /// The `epoll_ctl` error.
    pub fn watch_group(&self, fd: impl AsFd, group: u64) -> Result<()> {
        self.add(fd, group << 5 | u64::from(GROUP_MARK))
    }

    /// Makes waiter `key` a member of `group`, marked `mark` (below 31) when it fires.
    pub fn join(&self, group: u64, key: u64, mark: u32) {
        debug_assert!(mark < GROUP_MARK);
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group)
            .or_default()
            .push((key, mark));
    }

    /// Takes waiter `key` out of `group`.
    pub fn leave(&self, group: u64, key: u64) {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups.get_mut(&group) {
            members.retain(|&(member, _)| member != key);
            if members.is_empty() {
                groups.remove(&group);
            }
        }
    }

    /// Marks `mark` on waiter `key`'s target and wakes it now.
    pub fn fire(&self, key: u64, mark: u32) {
        let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(target) = targets.get(&key) {
            target.fire(mark);
        }
    }

    /// Marks `mark` (below 31) on the target of waiter `key` and wakes it each time `fd`
    /// becomes readable (edge-triggered: once per timer expiry, once for a pidfd). The
    /// watch ends when `fd` is closed.
    ///
    /// # Errors
    ///
    /// The `epoll_ctl` error (out of memory, or the user's epoll watch limit).
    pub fn watch(&self, fd: impl AsFd, key: u64, mark: u32) -> Result<()> {
        debug_assert!(mark < GROUP_MARK);
        self.add(fd, key << 5 | u64::from(mark & 31))
    }

    fn add(&self, fd: impl AsFd, data: u64) -> Result<()> {
        self.epoll
            .add(
                fd,
                EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, data),
            )
            .map_err(|e| Error::from_errno("epoll_ctl", e))
    }

    fn run(&self) {
        let mut events = [EpollEvent::empty(); 32];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                // A signal handler ran.
                Err(nix::errno::Errno::EINTR) => continue,
                // Not expected of a valid set; rather than spin or end (the waiters would
                // then miss their peers' deaths), try again a little later.
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            for event in &events[..n] {
                let (key, mark) = (event.data() >> 5, (event.data() & 31) as u32);
                let members = if mark == GROUP_MARK {
                    let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
                    groups.get(&key).cloned().unwrap_or_default()
                } else {
                    vec![(key, mark)]
                };
                // Fired under the lock, so that once `withdraw` returns the relay holds
                // nothing of the waiter's (its descriptors close with it).
                let targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
                for (key, mark) in members {
                    if let Some(target) = targets.get(&key) {
                        target.fire(mark);
                    }
                }
            }
        }
    }
}

/// A new key, for a waiter or a group: never 0, never reused in this process.
pub(crate) fn new_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Forgets `group`, whose descriptor was closed, in this process's relay if it runs.
pub(crate) fn forget_group(group: u64) {
    let relay = RELAY.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(relay) = relay.filter(|relay| relay.pid == std::process::id()) {
        relay
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&group);
    }
}

/// The relay's epoll descriptor in this process, if the relay was started: it stays open
/// for the life of the process (a leak check must not count it).
pub fn relay_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    RELAY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|relay| relay.pid == std::process::id())
        .map(|relay| relay.epoll.0.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use nix::poll::PollFlags;

    use super::*;
    use crate::Deadline;
    use crate::internal::poll_fd;

    fn pipe() -> (File, File) {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .unwrap();
        (File::from(read), File::from(write))
    }

    #[test]
    fn one_pidfd_per_peer_process_wakes_every_waiter_on_it_even_one_that_joins_late() {
        use crate::internal::{PeerProcess, process_start_time};
        let relay = Relay::get().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let (pid, start) = (child.id(), process_start_time(child.id()).unwrap());
        let peer = PeerProcess::get(pid, start).unwrap().unwrap();
        let again = PeerProcess::get(pid, start).unwrap().unwrap();
        assert!(Arc::ptr_eq(&peer, &again), "one per process");
        assert!(
            PeerProcess::get(pid, start + 1).unwrap().is_none(),
            "another start time"
        );
        let waiter = || {
            let (woken, wake) = pipe();
            let target = RelayTarget::new(Arc::new(wake));
            let key = relay.enrol(Arc::clone(&target));
            (woken, target, key)
        };
        let waiters = [waiter(), waiter()];
        for (_, _, key) in &waiters {
            peer.relay_exit(&relay, *key, 2).unwrap();
        }
        assert!(waiters.iter().all(|(_, target, _)| !target.take_fired(2)));
        child.kill().unwrap();
        let late = waiter();
        for (woken, target, _) in waiters.iter().chain([&late]) {
            if std::ptr::eq(target, &late.1) {
                // Joins after the exit (once the others were woken by it).
                peer.relay_exit(&relay, late.2, 2).unwrap();
            }
            let deadline = Deadline::after(Duration::from_secs(10));
            let events = poll_fd(woken, PollFlags::POLLIN, deadline, "poll").unwrap();
            assert!(events.contains(PollFlags::POLLIN));
            assert!(target.take_fired(2));
        }
        for (_, _, key) in waiters.iter().chain([&late]) {
            peer.stop_relaying(&relay, *key);
            relay.withdraw(*key);
        }
        child.wait().unwrap();
        drop((peer, again));
        assert!(PeerProcess::get(pid, start).unwrap().is_none(), "reaped");
    }

    #[test]
    fn a_watched_descriptor_that_fires_marks_and_wakes_its_target_once_per_edge() {
        let relay = Relay::get().unwrap();
        let (mut woken, wake) = pipe();
        let target = RelayTarget::new(Arc::new(wake));
        let key = relay.enrol(Arc::clone(&target));
        let (watched_read, mut watched_write) = pipe();
        relay.watch(&watched_read, key, 3).unwrap();
        assert!(!target.take_fired(3));
        for _ in 0..2 {
            watched_write.write_all(b"x").unwrap();
            let events = poll_fd(
                &woken,
                PollFlags::POLLIN,
                Deadline::after(Duration::from_secs(10)),
                "poll",
            )
            .unwrap();
            assert!(events.contains(PollFlags::POLLIN));
            assert_eq!(woken.read(&mut [0u8; 64]).unwrap(), 8);
            assert!(target.take_fired(3));
            assert!(!target.take_fired(3), "taken once");
            assert!(!target.take_fired(0), "only the watch that fired is marked");
        }
        relay.withdraw(key);
        assert_eq!(relay_fd(), Some(relay.epoll.0.as_raw_fd()));
    }
}
