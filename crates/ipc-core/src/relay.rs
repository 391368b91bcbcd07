//! A process-wide thread that turns rare events (a peer's death on its pidfd, a re-check
//! timer) into a byte written to a waiter's wake descriptor, so that a poller watches that
//! one descriptor alone.
//!
//! Used by the shared-memory channel, whose waiters' wake FIFOs the peer writes: an epoll
//! set per waiter (FIFO, pidfd, timer) nested in the poller's cost 1.33–1.36× a futex
//! round trip where the FIFO alone costs 1.11–1.13× (`ipc-bench-readiness`). The thread
//! wakes only when a watched descriptor fires or a timer expires. Its epoll set and the
//! one timerfd that serves every waiter's timer ([`relay_fds`]) live as long as the
//! process, once made: a waiter holds no descriptor of the relay's.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

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
    /// Set to the earliest of `timers`' deadlines (or earlier: an expiry that finds
    /// nothing due only re-arms it).
    timer: TimerFd,
    timers: Mutex<Timers>,
}

/// The mark of an event for a group: its members are fired with their own marks.
const GROUP_MARK: u32 = 31;

/// The epoll data of the relay's timerfd: key 0 is never a waiter's.
const TIMER_DATA: u64 = 0;

/// The waiters' timers, by deadline (nanoseconds of `CLOCK_MONOTONIC`).
#[derive(Debug, Default)]
struct Timers {
    queue: BTreeSet<(u64, u64)>,
    /// Each waiter's deadline and mark.
    by_key: HashMap<u64, (u64, u32)>,
    /// The expiry the timerfd is set to, 0 once it expired.
    set_to: u64,
}

impl Timers {
    fn cancel(&mut self, key: u64) {
        if let Some((deadline, _)) = self.by_key.remove(&key) {
            self.queue.remove(&(deadline, key));
        }
    }

    /// Takes the timers due at `now`.
    fn take_due(&mut self, now: u64) -> Vec<(u64, u32)> {
        let mut due = Vec::new();
        while let Some(&(deadline, key)) = self.queue.first() {
            if deadline > now {
                break;
            }
            self.queue.pop_first();
            if let Some((_, mark)) = self.by_key.remove(&key) {
                due.push((key, mark));
            }
        }
        due
    }

    /// Sets `timer` to the earliest deadline if it is set to none or to a later one: one
    /// system call when the earliest deadline moves closer, none otherwise.
    fn rearm(&mut self, timer: &TimerFd) -> Result<()> {
        let Some(&(earliest, _)) = self.queue.first() else {
            return Ok(());
        };
        if self.set_to != 0 && self.set_to <= earliest {
            return Ok(());
        }
        let at = TimeSpec::from_duration(Duration::from_nanos(earliest));
        timer
            .set(
                Expiration::OneShot(at),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )
            .map_err(|e| Error::from_errno("timerfd_settime", e))?;
        self.set_to = earliest;
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (never 0: the clock starts at boot).
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(1, |now| {
        u64::try_from(Duration::from(now).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    })
}

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
            timer: TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .map_err(|e| Error::from_errno("timerfd_create", e))?,
            timers: Mutex::new(Timers::default()),
        });
        relay.add(&relay.timer, TIMER_DATA)?;
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

    /// Withdraws the waiter `key`: its timer is cancelled, an event that still arrives
    /// for it is dropped, and the relay keeps no reference to its target.
    pub fn withdraw(&self, key: u64) {
        self.cancel_timer(key);
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Marks `mark` (below 31) on waiter `key`'s target and wakes it once `after` has
    /// passed, unless cancelled first; replaces the waiter's earlier timer. A system call
    /// only when this timer is the earliest of the process's.
    ///
    /// # Errors
    ///
    /// The `timerfd_settime` error (not expected: the time is valid and the timer too).
    pub fn fire_after(&self, key: u64, mark: u32, after: Duration) -> Result<()> {
        let after = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
        let deadline = monotonic_ns().saturating_add(after);
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        timers.cancel(key);
        timers.queue.insert((deadline, key));
        timers.by_key.insert(key, (deadline, mark));
        timers.rearm(&self.timer)
    }

    /// Cancels waiter `key`'s timer, if set; no system call (the timerfd may still
    /// expire for it, and then finds nothing due).
    pub fn cancel_timer(&self, key: u64) {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel(key);
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
                let members = if event.data() == TIMER_DATA {
                    self.take_due_timers()
                } else if mark == GROUP_MARK {
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

impl Relay {
    /// The timers due now, the timerfd emptied and set to the next one.
    fn take_due_timers(&self) -> Vec<(u64, u32)> {
        // Emptied, so that its next expiry is a new edge.
        let _ = nix::unistd::read(&self.timer, &mut [0u8; 8]);
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        timers.set_to = 0;
        let due = timers.take_due(monotonic_ns());
        // A failure leaves the later timers unset; the next `fire_after` tries again.
        let _ = timers.rearm(&self.timer);
        due
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

/// The relay's descriptors in this process (its epoll set and its timerfd), if the relay
/// was started: they stay open for the life of the process (a leak check must not count
/// them).
pub fn relay_fds() -> Vec<i32> {
    use std::os::fd::AsRawFd;
    RELAY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|relay| relay.pid == std::process::id())
        .map(|relay| vec![relay.epoll.0.as_raw_fd(), relay.timer.as_fd().as_raw_fd()])
        .unwrap_or_default()
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

    /// A waiter enrolled in `relay`, woken through a pipe: its reading end, its target,
    /// its key.
    fn waiter(relay: &Relay) -> (File, Arc<RelayTarget>, u64) {
        let (woken, wake) = pipe();
        let target = RelayTarget::new(Arc::new(wake));
        let key = relay.enrol(Arc::clone(&target));
        (woken, target, key)
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
        let waiters = [waiter(&relay), waiter(&relay)];
        for (_, _, key) in &waiters {
            peer.relay_exit(&relay, *key, 2).unwrap();
        }
        assert!(waiters.iter().all(|(_, target, _)| !target.take_fired(2)));
        child.kill().unwrap();
        let late = waiter(&relay);
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
        let (mut woken, target, key) = waiter(&relay);
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
        assert_eq!(relay_fds()[0], relay.epoll.0.as_raw_fd());
    }

    #[test]
    fn timers_fire_after_their_deadlines_once_each_and_a_cancelled_or_replaced_one_never() {
        let relay = Relay::get().unwrap();
        let [late, early, cancelled, replaced] = std::array::from_fn(|_| waiter(&relay));
        let started = std::time::Instant::now();
        relay
            .fire_after(late.2, 4, Duration::from_millis(60))
            .unwrap();
        relay
            .fire_after(early.2, 4, Duration::from_millis(20))
            .unwrap();
        relay
            .fire_after(cancelled.2, 4, Duration::from_millis(40))
            .unwrap();
        relay.cancel_timer(cancelled.2);
        relay
            .fire_after(replaced.2, 4, Duration::from_millis(40))
            .unwrap();
        // Replaced by a timer far beyond the test: it must not fire at 40 ms.
        relay
            .fire_after(replaced.2, 4, Duration::from_secs(3600))
            .unwrap();
        // A thread held up past 40 ms here could have seen those fire: not asserted then.
        let in_time = started.elapsed() < Duration::from_millis(40);
        let wait = |(woken, target, _): &(File, Arc<RelayTarget>, u64)| {
            let deadline = Deadline::after(Duration::from_secs(10));
            let events = poll_fd(woken, PollFlags::POLLIN, deadline, "poll").unwrap();
            assert!(events.contains(PollFlags::POLLIN));
            assert!(target.take_fired(4));
            started.elapsed()
        };
        let early_at = wait(&early);
        assert!(early_at >= Duration::from_millis(20), "{early_at:?}");
        let late_at = wait(&late);
        assert!(late_at >= Duration::from_millis(60), "{late_at:?}");
        let mut buf = [0u8; 64];
        assert_eq!((&early.0).read(&mut buf).unwrap(), 8, "woken once");
        assert!(!early.1.take_fired(4), "marked once");
        if in_time {
            for (woken, target, _) in [&cancelled, &replaced] {
                assert!((&*woken).read(&mut buf).is_err(), "never woken");
                assert!(!target.take_fired(4));
            }
        }
        for (_, _, key) in [&late, &early, &cancelled, &replaced] {
            relay.withdraw(*key);
        }
        assert!(
            relay.timers.lock().unwrap().by_key.is_empty(),
            "withdraw cancels"
        );
    }
}
