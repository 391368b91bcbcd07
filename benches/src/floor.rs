//! The machine's floors: the fastest two processes can exchange a message by shared memory
//! (busy polling) and by a pipe (plain `read`/`write`). Every mechanism is reported as a
//! ratio to the floor measured in the same run.

use std::hint::spin_loop;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_core::{Deadline, Error, IpcName, Result};
use memmap2::MmapMut;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::peer::{BenchPeer, parent_alive, requested_cpu};
use crate::{affinity, sys};

/// The peer role of [`ShmPingPong`].
pub const SHM_PONG: &str = "shm-pong";

const MAP_LEN: usize = 4096;
const PING: usize = 0;
const PONG: usize = 1;
const READY: usize = 2;
/// Written to the ping word to stop the peer.
const STOP: u64 = u64::MAX;
/// Spins between two checks that the other process is still there.
const SPINS_PER_CHECK: u32 = 1 << 20;
/// How long to wait for a peer to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One-way latency through shared memory with busy polling: the parent writes a sequence
/// number into one cache line, the peer copies it into another, and the parent waits for
/// it. The floor of every shared-memory mechanism, and the probe of how fast the two CPUs
/// talk in this run.
#[derive(Debug)]
pub struct ShmPingPong {
    map: MmapMut,
    peer: BenchPeer,
    seq: u64,
}

impl ShmPingPong {
    /// Creates the shared page, starts the peer on `peer_cpu` and waits until it is ready.
    ///
    /// # Errors
    ///
    /// If the page cannot be created or mapped, or the peer does not start in time.
    pub fn start(peer_cpu: Option<usize>) -> Result<Self> {
        let name = IpcName::unique("ipcrs-bench-shm")?;
        let fd = nix::sys::mman::shm_open(
            name.as_cstr(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| Error::from_errno("shm_open", e).with_subject(&name))?;
        // The name is only needed until the peer has opened the object; remove it on every
        // path from here on.
        let started = Self::start_with(&name, fd, peer_cpu);
        let unlinked = nix::sys::mman::shm_unlink(name.as_cstr())
            .map_err(|e| Error::from_errno("shm_unlink", e).with_subject(&name));
        let pingpong = started?;
        unlinked?;
        Ok(pingpong)
    }

    fn start_with(name: &IpcName, fd: OwnedFd, peer_cpu: Option<usize>) -> Result<Self> {
        let len = i64::try_from(MAP_LEN).unwrap_or(i64::MAX);
        nix::unistd::ftruncate(&fd, len).map_err(|e| Error::from_errno("ftruncate", e))?;
        let map = sys::map_shared(fd.as_fd(), MAP_LEN)?;
        let mut peer = BenchPeer::spawn(
            SHM_PONG,
            [name.as_str()],
            peer_cpu,
            Stdio::null(),
            Stdio::null(),
        )?;
        let deadline = Deadline::after(START_TIMEOUT);
        while sys::shared_word(&map, READY)?.load(Ordering::Acquire) == 0 {
            if deadline.has_expired() || !peer.is_alive() {
                return Err(Error::peer_gone(
                    "ShmPingPong::start",
                    "the peer did not become ready",
                ));
            }
            std::thread::yield_now();
        }
        Ok(ShmPingPong { map, peer, seq: 0 })
    }

    fn word(&self, index: usize) -> Result<&AtomicU64> {
        sys::shared_word(&self.map, index)
    }

    /// One round trip.
    ///
    /// # Errors
    ///
    /// Peer-gone if the peer has died.
    pub fn round_trip(&mut self) -> Result<()> {
        self.seq += 1;
        let seq = self.seq;
        // Borrow the mapping field alone, so that `self.peer` stays usable in the loop.
        let (ping, pong) = (
            sys::shared_word(&self.map, PING)?,
            sys::shared_word(&self.map, PONG)?,
        );
        ping.store(seq, Ordering::Release);
        let mut spins = 0u32;
        while pong.load(Ordering::Acquire) != seq {
            spin_loop();
            spins += 1;
            if spins == SPINS_PER_CHECK {
                spins = 0;
                if !self.peer.is_alive() {
                    return Err(Error::peer_gone("ShmPingPong::round_trip", "the peer died"));
                }
            }
        }
        Ok(())
    }
}

impl Drop for ShmPingPong {
    fn drop(&mut self) {
        // Ask the peer to stop; `BenchPeer` kills it anyway if it does not.
        if let Ok(ping) = self.word(PING) {
            ping.store(STOP, Ordering::Release);
        }
    }
}

/// The peer side of [`ShmPingPong`]: copies each ping into the pong word.
///
/// # Errors
///
/// If the shared page cannot be opened or mapped.
pub fn shm_pong(name: &str) -> Result<()> {
    let name = IpcName::new(name)?;
    let parent = std::os::unix::process::parent_id();
    let fd = nix::sys::mman::shm_open(
        name.as_cstr(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::from_errno("shm_open", e).with_subject(&name))?;
    let map = sys::map_shared(fd.as_fd(), MAP_LEN)?;
    let (ping, pong) = (sys::shared_word(&map, PING)?, sys::shared_word(&map, PONG)?);
    sys::shared_word(&map, READY)?.store(1, Ordering::Release);
    let mut last = 0;
    loop {
        let mut spins = 0u32;
        let seq = loop {
            let seq = ping.load(Ordering::Acquire);
            if seq != last {
                break seq;
            }
            spin_loop();
            spins += 1;
            if spins == SPINS_PER_CHECK {
                spins = 0;
                if !parent_alive(parent) {
                    return Ok(());
                }
            }
        };
        if seq == STOP {
            return Ok(());
        }
        pong.store(seq, Ordering::Release);
        last = seq;
    }
}

/// Runs the peer role this process was started in, after pinning it to the requested CPU.
///
/// # Errors
///
/// An unknown role, a missing argument, or the role's error.
pub fn run_peer(role: &str, args: &[String]) -> Result<()> {
    if let Some(cpu) = requested_cpu() {
        affinity::pin_to(cpu)?;
    }
    let arg = args.first().map(String::as_str).unwrap_or_default();
    match role {
        SHM_PONG => shm_pong(arg),
        crate::transport::PONG => crate::case::pong(args),
        crate::transport::PRODUCER => crate::case::producer(args),
        other => Err(Error::new(
            "run_peer",
            std::io::ErrorKind::InvalidInput,
            format!("unknown peer role {other}"),
        )),
    }
}

/// Times `n` calls of `round_trip` one by one and appends the one-way latencies (half of
/// each round trip) to `samples`.
///
/// # Errors
///
/// The first error of `round_trip`.
pub fn sample_one_way(
    n: usize,
    samples: &mut Vec<Duration>,
    mut round_trip: impl FnMut() -> Result<()>,
) -> Result<()> {
    samples.reserve(n);
    for _ in 0..n {
        let start = Instant::now();
        round_trip()?;
        samples.push(start.elapsed() / 2);
    }
    Ok(())
}

/// The cost of one `Instant::now()`, included twice in every timed round trip.
pub fn clock_overhead() -> Duration {
    const N: u32 = 100_000;
    let start = Instant::now();
    for _ in 0..N {
        std::hint::black_box(Instant::now());
    }
    start.elapsed() / N
}

/// Serves the peer role this process was started in, if any, and exits: the first thing a
/// benchmark binary does, since it re-executes itself as its peers. Returns when this
/// process is not a peer.
pub fn serve_peer_role() {
    let Some(role) = crate::peer::role() else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_peer(&role, &args) {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("peer {role}: {err}");
            std::process::exit(1);
        }
    }
}
