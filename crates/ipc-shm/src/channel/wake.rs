//! Making a channel endpoint ready in a poller (a [`Selector`](ipc_core::Selector), an
//! async runtime): a wake FIFO the other side writes.
//!
//! A side that waits in a poller makes a FIFO in `/dev/shm`, named after its pid and a
//! random id it records in its wait line, and sets the "armed" bit of its sleeping word.
//! The other side, which checks that word after publishing (only if the waiter parks at
//! all: the same check as for a futex sleeper), opens the FIFO by the name it derives from
//! the waiter's state word and the id, once, and writes a byte to it. The waiter's
//! readiness descriptor is the FIFO's reading end. The process's relay (ipc-core's)
//! thread writes to it too when the peer dies (it watches the peer's pidfd, one per peer
//! process) and when the waiter's timer, which the relay keeps, expires, for the cases no
//! publish covers (a peer that is not attached yet, the first wait of a busy-polling
//! endpoint). A waiter holds one descriptor, its FIFO, and shares its endpoint's mapping.
//!
//! Measured against the alternatives (`ipc-bench-readiness`, round trips between pinned
//! processes against a plain futex wait): a FIFO write costs 1.11–1.13× the futex round
//! trip, a datagram to an abstract Unix socket 1.31–1.36×, a waiter thread turning
//! `futex_waitv` wake-ups into an eventfd 1.43–1.56×, and the floor, the waiter's own
//! eventfd taken with `pidfd_getfd` (which needs ptrace rights over the waiter), 1.09–1.11×.
//!
//! What a hostile peer can do: write the id (the waker then opens another name of the same
//! form in `/dev/shm`, with `O_NOFOLLOW`, and writes only to a FIFO: at worst a spurious
//! wake-up of some other waiter), set or clear the armed bit (spurious or missed wake-ups
//! of its own peer, as it could by not publishing), write the FIFO (spurious wake-ups).
//! Nothing it writes is trusted as a length, a path or a descriptor.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex};

use ipc_core::internal::{PeerProcess, Relay, RelayTarget};
use ipc_core::{Error, ReadinessHook, Result};

use crate::SharedMemory;
use crate::segment::SHM_DIR;

use super::layout::*;
use super::side::{LIVENESS_SLICE, PeerStatus, PeerWatch, SideState};

/// Bits of a side's sleeping word: parked on its futex, armed for its FIFO.
pub(super) const PARKED: u32 = 1;
pub(super) const ARMED: u32 = 2;

/// The FIFO of the waiter `pid` whose wait line records `id` (`nonce << 32 | sequence`),
/// in the form `IpcName::unique` gives, so that cleanup tools know its creator.
fn fifo_path(pid: u32, id: u64) -> PathBuf {
    PathBuf::from(format!(
        "{SHM_DIR}/ipcrs-wake-{pid}-{:08x}-{}",
        id >> 32,
        id & 0xffff_ffff
    ))
}

/// Removes the wake FIFO of waiter `pid`, which recorded `id`, once that process is dead:
/// a waiter that was killed cannot remove its own.
pub(super) fn remove_fifo_of_dead(pid: u32, id: u64) {
    if id != 0 && pid != 0 && !ipc_core::internal::process_is_alive(pid) {
        let _ = std::fs::remove_file(fifo_path(pid, id));
    }
}

/// The other side's wake FIFO, opened the first time it is armed (or the failure to open
/// it, so that an unreachable one costs one attempt, not one per message).
#[derive(Debug, Default)]
pub(super) struct PeerFifo {
    open: Option<(u32, u64, Option<File>)>,
}

impl PeerFifo {
    /// Writes a byte to the FIFO of waiter `pid` that records `id`. Best effort: a waiter
    /// that is gone or unreachable is not this side's error (its own timer and its
    /// peer watch bound its wait).
    pub(super) fn wake(&mut self, pid: u32, id: u64) {
        if id == 0 || pid == 0 {
            return;
        }
        if !matches!(&self.open, Some((p, i, _)) if *p == pid && *i == id) {
            self.open = Some((pid, id, open_fifo(pid, id)));
        }
        let Some((_, _, Some(file))) = &mut self.open else {
            return;
        };
        ipc_core::block_sigpipe();
        match file.write(b"w") {
            Ok(_) => {}
            // Full: a wake-up is pending already.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                if err.raw_os_error() == Some(libc::EPIPE) {
                    ipc_core::consume_sigpipe();
                }
                self.open = None;
            }
        }
    }
}

fn open_fifo(pid: u32, id: u64) -> Option<File> {
    let file = open_end(&fifo_path(pid, id), false).ok()?;
    // Only a FIFO: a peer that names some other file gets nothing written to it.
    let is_fifo = file
        .metadata()
        .is_ok_and(|meta| meta.mode() & libc::S_IFMT == libc::S_IFIFO);
    is_fifo.then_some(file)
}

/// Opens the FIFO at `path` for writing, or for reading too (Linux allows it on a FIFO:
/// such an end never reports a hang-up), never blocking and never through a symbolic link.
fn open_end(path: &std::path::Path, read: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(read)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

/// Which condition a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A consumer: a message (the producer's head moved past the consumer's tail).
    Consumer,
    /// A producer: room for a largest message.
    Producer,
}

/// A side's readiness for a poller: its wake FIFO, armed and disarmed as a
/// [`ReadinessHook`]. Shared between the endpoint and the pollers it was added to.
#[derive(Debug)]
pub(super) struct Waiter {
    /// The side's own mapping, shared.
    segment: Arc<SharedMemory>,
    role: Role,
    own: usize,
    peer: usize,
    capacity: u64,
    /// The largest record, header included.
    max_record: u64,
    id: u64,
    path: PathBuf,
    /// Opened for reading and writing: the poller reads it, `detach` and the relay write
    /// to it, on one descriptor.
    fifo: Arc<File>,
    relay: Arc<Relay>,
    /// What the relay writes to (`write`), and which of its watches fired.
    target: Arc<RelayTarget>,
    /// This waiter's key in the relay, which also keeps its timer.
    key: u64,
    watch: Mutex<Watch>,
    /// Whether the timer may be running (so that a disarm leaves an idle one alone).
    timing: AtomicBool,
    /// Set while a busy-polling side says it parks only for this poller: the disarm says
    /// it no longer does, so that its peer skips the check again while traffic flows.
    lent_parks: AtomicBool,
    /// Set when the endpoint closed or was handed off: the hook reports ready for good.
    detached: AtomicBool,
}

#[derive(Debug, Default)]
struct Watch {
    peer: PeerWatch,
    /// The peer state, and process, whose exit the relay reports to this waiter.
    registered: Option<(SideState, Arc<PeerProcess>)>,
}

/// The relay's marks for a waiter's timer and its peer's exit.
const TIMER_MARK: u32 = 0;
const PIDFD_MARK: u32 = 1;

impl Waiter {
    /// Makes the wake FIFO of the side at `own` (a consumer or a producer) and enrols it
    /// in the relay. The FIFO is writable by whoever may write the segment.
    pub(super) fn new(
        segment: Arc<SharedMemory>,
        role: Role,
        (own, peer): (usize, usize),
        capacity: u64,
        max: usize,
    ) -> Result<Waiter> {
        let (path, id, fifo) = make_fifo()?;
        // Until the waiter exists (whose drop removes the FIFO), this guard does.
        let mut guard = RemoveOnError(Some(path.clone()));
        share_like(&fifo, &segment);
        let fifo = Arc::new(fifo);
        let relay = Relay::get()?;
        let target = RelayTarget::new(Arc::clone(&fifo));
        let key = relay.enrol(Arc::clone(&target));
        guard.0 = None;
        Ok(Waiter {
            segment,
            role,
            own,
            peer,
            capacity,
            max_record: (RECORD_HEADER + round8(max)) as u64,
            id,
            path,
            fifo,
            relay,
            target,
            key,
            watch: Mutex::new(Watch::default()),
            timing: AtomicBool::new(false),
            lent_parks: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        })
    }

    /// The descriptor a poller watches: readable once armed and possibly ready.
    pub(super) fn descriptor(&self) -> Result<OwnedFd> {
        self.fifo
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))
    }

    /// The endpoint closed or left: every later wait reports it ready, so that its
    /// owner learns it from the call it makes.
    pub(super) fn detach(&self) {
        self.detached.store(true, Ordering::Release);
        self.signal();
    }

    fn signal(&self) {
        let _ = (&*self.fifo).write(b"w");
    }

    fn ready(&self) -> Result<bool> {
        let head = self.segment.atomic_u64(HEAD)?.load(Ordering::Acquire);
        let tail = self.segment.atomic_u64(TAIL)?.load(Ordering::Acquire);
        Ok(match self.role {
            Role::Consumer => head != tail,
            // Room for a largest record wherever it lands: padding to the ring's end
            // first when it does not fit before it. A corrupted pair of positions is
            // "ready": the send reports it.
            Role::Producer => {
                let used = head.wrapping_sub(tail);
                if used > self.capacity {
                    return Ok(true);
                }
                let contiguous = self.capacity - (head & (self.capacity - 1));
                let needed = if self.max_record > contiguous {
                    contiguous + self.max_record
                } else {
                    self.max_record
                };
                self.capacity - used >= needed
            }
        })
    }

    fn sleeping(&self) -> Result<&std::sync::atomic::AtomicU32> {
        self.segment.atomic_u32(wait_line(self.own) + SLEEPING)
    }

    /// Has the relay wake this waiter after one liveness slice.
    fn start_timer(&self) -> Result<()> {
        self.timing.store(true, Ordering::Relaxed);
        self.relay.fire_after(self.key, TIMER_MARK, LIVENESS_SLICE)
    }

    /// Cancels the timer if it may be running (a lock, and only when the timer is used).
    fn stop_timer(&self) {
        if self.timing.swap(false, Ordering::Relaxed) {
            self.relay.cancel_timer(self.key);
        }
    }

    /// Has the relay watch the peer's pidfd if the peer changed; reports whether the
    /// peer is attached and alive, or gone for good.
    fn watch_peer(&self) -> Result<PeerStatus> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        // The peer whose pidfd the relay watches, still in the same state, and the pidfd
        // has not fired: alive, or the relay wakes the poller when it dies. No system
        // call. Once it fired, every arm asks (and finds the peer gone).
        let state = SideState(
            self.segment
                .atomic_u64(identity(self.peer) + STATE)?
                .load(Ordering::Acquire),
        );
        let fired = self.target.take_fired(PIDFD_MARK);
        if matches!(&watch.registered, Some((seen, _)) if *seen == state) && !fired {
            return Ok(PeerStatus::Alive);
        }
        let status = watch.peer.status(&self.segment, self.peer)?;
        match status {
            PeerStatus::Alive => {
                let current = watch.peer.process.clone();
                let registered = watch.registered.as_ref().map(|(state, _)| *state);
                if let Some((state, process)) = current
                    && registered != Some(state)
                {
                    self.stop_relaying(&mut watch);
                    process.relay_exit(&self.relay, self.key, PIDFD_MARK)?;
                    watch.registered = Some((state, process));
                }
            }
            PeerStatus::NotYet => {}
            // Gone: the fast path above must not report it alive again.
            _ => self.stop_relaying(&mut watch),
        }
        Ok(status)
    }

    /// Ends the relay's report of the registered peer's exit, if any.
    fn stop_relaying(&self, watch: &mut Watch) {
        if let Some((_, process)) = watch.registered.take() {
            process.stop_relaying(&self.relay, self.key);
        }
    }
}

impl ReadinessHook for Waiter {
    fn arm(&self) -> Result<bool> {
        if self.detached.load(Ordering::Acquire) {
            return Ok(true);
        }
        let status = self.watch_peer()?;
        if !matches!(status, PeerStatus::Alive | PeerStatus::NotYet) {
            return Ok(true);
        }
        // A busy-polling side says it never parks, so its peer skips the check: say it
        // does now. The peer may not see that before its next publish, so the first
        // wait also re-checks after a slice.
        let parks = self.segment.atomic_u32(identity(self.own) + PARKS)?;
        let was_parking = parks.swap(1, Ordering::Relaxed) != 0;
        if !was_parking {
            self.lent_parks.store(true, Ordering::Relaxed);
        }
        if status == PeerStatus::NotYet || !was_parking {
            self.start_timer()?;
        } else {
            self.stop_timer();
        }
        self.segment
            .atomic_u64(wait_line(self.own) + WAKE)?
            .store(self.id, Ordering::Relaxed);
        let sleeping = self.sleeping()?;
        sleeping.fetch_or(ARMED, Ordering::Relaxed);
        // Pairs with the fence of the side that publishes and then reads the word.
        fence(Ordering::SeqCst);
        if self.ready()? {
            // Nothing was written to the FIFO for this arming: no read to empty it.
            self.withdraw();
            return Ok(true);
        }
        Ok(false)
    }

    fn disarm(&self) {
        self.withdraw();
        // A read returns all that is there up to the buffer's size: a short one emptied it.
        let mut buf = [0u8; 64];
        while matches!((&*self.fifo).read(&mut buf), Ok(n) if n == buf.len()) {}
    }
}

impl Waiter {
    /// Withdraws the request to be woken: the armed bit, the timer, and the "parks" a
    /// busy-polling side lent the poller.
    fn withdraw(&self) {
        if let Ok(sleeping) = self.sleeping() {
            sleeping.fetch_and(!ARMED, Ordering::Relaxed);
        }
        self.stop_timer();
        if self.lent_parks.swap(false, Ordering::Relaxed) {
            if let Ok(parks) = self.segment.atomic_u32(identity(self.own) + PARKS) {
                parks.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        self.stop_relaying(&mut watch);
        drop(watch);
        self.relay.withdraw(self.key);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes a FIFO made for a waiter that could not be completed.
struct RemoveOnError(Option<PathBuf>);

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Makes a FIFO with a fresh name and opens it for reading and writing.
fn make_fifo() -> Result<(PathBuf, u64, File)> {
    for _ in 0..16 {
        let id = fresh_id();
        let path = fifo_path(std::process::id(), id);
        match nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(errno) => {
                return Err(
                    Error::from_errno("mkfifo", errno).with_subject(path.display().to_string())
                );
            }
        }
        return match open_end(&path, true) {
            Ok(fifo) => Ok((path, id, fifo)),
            Err(err) => {
                let _ = std::fs::remove_file(&path);
                Err(Error::from(err)
                    .with_op("open")
                    .with_subject(path.display().to_string()))
            }
        };
    }
    Err(Error::new(
        "mkfifo",
        io::ErrorKind::AlreadyExists,
        format!("no free wake FIFO name in {SHM_DIR}"),
    ))
}

/// A nonzero id: a random nonce (from the kernel's random pool) and a sequence number.
fn fresh_id() -> u64 {
    static SEQUENCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let mut nonce = [0u8; 4];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .is_err()
    {
        nonce = (std::process::id() ^ 0x9e37_79b9).to_le_bytes();
    }
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed).max(1);
    u64::from(u32::from_le_bytes(nonce)) << 32 | u64::from(sequence)
}

/// Gives the FIFO the segment's write permissions (whoever may write the segment may wake
/// its waiters) and, when this process may, the segment's owner.
fn share_like(fifo: &File, segment: &SharedMemory) {
    let Ok(meta) = nix::sys::stat::fstat(segment.as_fd()) else {
        return;
    };
    let mode = 0o600 | (meta.st_mode & 0o022);
    let _ = nix::sys::stat::fchmod(fifo, nix::sys::stat::Mode::from_bits_truncate(mode));
    if meta.st_uid != nix::unistd::geteuid().as_raw() {
        let _ = nix::unistd::fchown(
            fifo,
            Some(nix::unistd::Uid::from_raw(meta.st_uid)),
            Some(nix::unistd::Gid::from_raw(meta.st_gid)),
        );
    }
}
