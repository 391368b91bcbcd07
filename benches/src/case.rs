//! What is measured ([`Case`]: a mechanism and its flavour) and the drivers that measure
//! it between this process and a pinned peer: round-trip latency and one-way throughput.

use std::time::{Duration, Instant};

use ipc_core::{Error, Result};

use crate::peer::BenchPeer;
use crate::transport::{Benchmarked, Link, PONG, PRODUCER, Setup, arg, expect, message, number};
use crate::{channels, pipes, queues, sems, signals, sockets};

/// What is measured: a pipe or a socket flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// A pipe flavour.
    Pipe(pipes::Flavour),
    /// A socket flavour.
    Socket(sockets::Flavour),
    /// A shared-memory flavour.
    Shm(channels::Flavour),
    /// A semaphore or mutex flavour.
    Sem(sems::Flavour),
    /// A message-queue flavour.
    Mq(queues::Flavour),
    /// A signal flavour.
    Sig(signals::Flavour),
    /// Another crate's (`--peers`).
    #[cfg(feature = "peers")]
    Peer(crate::peers::Flavour),
}

impl Case {
    /// The mechanism and flavour measured.
    fn mechanism(&self) -> &dyn Benchmarked {
        match self {
            Case::Pipe(f) => f,
            Case::Socket(f) => f,
            Case::Shm(f) => f,
            Case::Sem(f) => f,
            Case::Mq(f) => f,
            Case::Sig(f) => f,
            #[cfg(feature = "peers")]
            Case::Peer(f) => f,
        }
    }

    /// The name used on the peer's command line.
    pub fn name(self) -> String {
        let mechanism = self.mechanism();
        format!("{}:{}", mechanism.prefix(), mechanism.name())
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        self.mechanism().label()
    }

    /// Parses [`Case::name`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unknown name.
    pub fn parse(name: &str) -> Result<Case> {
        let unknown = || {
            Error::new(
                "Case::parse",
                std::io::ErrorKind::InvalidInput,
                format!("unknown case {name}"),
            )
        };
        match name.split_once(':') {
            Some(("pipe", f)) => pipes::Flavour::parse(f).map(Case::Pipe),
            Some(("socket", f)) => sockets::Flavour::parse(f).map(Case::Socket),
            Some(("shm", f)) => channels::Flavour::parse(f).map(Case::Shm),
            Some(("sem", f)) => sems::Flavour::parse(f).map(Case::Sem),
            Some(("mq", f)) => queues::Flavour::parse(f).map(Case::Mq),
            Some(("signal", f)) => signals::Flavour::parse(f).map(Case::Sig),
            #[cfg(feature = "peers")]
            Some(("peer", f)) => crate::peers::Flavour::parse(f).map(Case::Peer),
            _ => Err(unknown()),
        }
    }
}

/// A peer that waits in a selector made wake FIFOs: it ends by itself when its channel
/// closes, and is given the time to remove them.
fn graceful(case: Case, peer: BenchPeer) -> BenchPeer {
    match case {
        Case::Shm(
            channels::Flavour::Select1 | channels::Flavour::Select64 | channels::Flavour::Async,
        ) => peer.ends_with_its_link(),
        _ => peer,
    }
}

fn setup(case: Case, size: usize, capacity: usize) -> Result<Setup> {
    case.mechanism().setup(size, capacity)
}

fn peer_link(case: Case, size: usize, args: &[String]) -> Result<Link> {
    case.mechanism().peer_link(size, args)
}

/// Round trips of `size`-byte messages, the peer echoing each.
pub struct PingPong {
    link: Link,
    buf: Vec<u8>,
    seq: u64,
    _peer: BenchPeer,
}

impl std::fmt::Debug for PingPong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingPong")
            .field("size", &self.buf.len())
            .field("seq", &self.seq)
            .finish()
    }
}

impl PingPong {
    /// Sets up `case`, starts the echoing peer on `peer_cpu` and makes one round trip.
    ///
    /// # Errors
    ///
    /// If the channel or the peer cannot be set up, or the first round trip fails.
    pub fn start(case: Case, size: usize, peer_cpu: Option<usize>) -> Result<Self> {
        let setup = setup(case, size, 0)?;
        let mut args = vec![case.name(), size.to_string()];
        args.extend(setup.args);
        let peer = graceful(
            case,
            BenchPeer::spawn(PONG, args, peer_cpu, setup.stdin, setup.stdout)?,
        );
        let link = (setup.finish)()?;
        let mut pingpong = PingPong {
            link,
            buf: message(size),
            seq: 0,
            _peer: peer,
        };
        pingpong.round_trip()?;
        Ok(pingpong)
    }

    /// One round trip.
    ///
    /// # Errors
    ///
    /// The transport's error; corrupted if the echo is not the message sent.
    pub fn round_trip(&mut self) -> Result<()> {
        self.link.tx.send(self.seq)?;
        expect(self.link.rx.as_mut(), &mut self.buf, self.seq)?;
        self.seq += 1;
        Ok(())
    }
}

/// What a criterion benchmark sets up (a peer, a ping-pong) the first time it runs, not
/// when it is declared: listing the benchmarks (`--list`, which `cargo nextest` runs on every
/// bench binary, without a time limit) then starts nothing.
pub struct OnFirstRun<T> {
    start: Option<Box<dyn FnOnce() -> Result<T>>>,
    value: Option<T>,
}

impl<T> std::fmt::Debug for OnFirstRun<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnFirstRun")
            .field("started", &self.start.is_none())
            .finish()
    }
}

impl<T> OnFirstRun<T> {
    /// `start` runs at the first [`get`](OnFirstRun::get).
    pub fn new(start: impl FnOnce() -> Result<T> + 'static) -> Self {
        OnFirstRun {
            start: Some(Box::new(start)),
            value: None,
        }
    }

    /// The value, set up now if this is the first call.
    ///
    /// # Panics
    ///
    /// If setting up fails (a benchmark cannot go on without it).
    pub fn get(&mut self) -> &mut T {
        if let Some(start) = self.start.take() {
            self.value = Some(start().unwrap_or_else(|err| panic!("setting up failed: {err}")));
        }
        self.value.as_mut().expect("set up above")
    }
}

/// Times `iters` round trips and returns the one-way time (half of it), as criterion's
/// latency groups report it.
///
/// # Panics
///
/// If a round trip fails.
pub fn one_way(iters: u64, mut round_trip: impl FnMut() -> Result<()>) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        round_trip().unwrap_or_else(|err| panic!("round trip failed: {err}"));
    }
    start.elapsed() / 2
}

/// Streams `count` messages of `size` bytes from a pinned peer (through a pipe of
/// `capacity` bytes, for pipes), checking every sequence number, and returns the time from
/// the start signal to the last message.
///
/// # Errors
///
/// If setting up fails, or a message is lost, reordered or damaged.
pub fn throughput(
    case: Case,
    size: usize,
    capacity: usize,
    count: u64,
    peer_cpu: Option<usize>,
) -> Result<Duration> {
    let setup = setup(case, size, capacity)?;
    let mut args = vec![case.name(), size.to_string(), count.to_string()];
    args.extend(setup.args);
    let peer = graceful(
        case,
        BenchPeer::spawn(PRODUCER, args, peer_cpu, setup.stdin, setup.stdout)?,
    );
    let mut link = (setup.finish)()?;
    let mut buf = message(size);
    // The producer's first message says it is set up and pinned; then the clock starts.
    expect(link.rx.as_mut(), &mut buf, u64::MAX)?;
    link.tx.send(u64::MAX - 1)?;
    link.tx.flush()?;
    let start = Instant::now();
    for seq in 0..count {
        expect(link.rx.as_mut(), &mut buf, seq)?;
    }
    let elapsed = start.elapsed();
    drop(link);
    drop(peer);
    Ok(elapsed)
}

/// The peer of [`PingPong`]: echoes messages until end of stream.
///
/// # Errors
///
/// Bad arguments, or a transport error.
pub fn pong(args: &[String]) -> Result<()> {
    let case = Case::parse(arg(args, 0)?)?;
    let size: usize = number(args, 1)?;
    let mut link = peer_link(case, size, &args[2..])?;
    let mut buf = message(size);
    let mut seq = 0u64;
    while link.rx.recv(&mut buf)? {
        link.tx.send(seq)?;
        seq += 1;
    }
    Ok(())
}

/// The peer of [`throughput`]: sends a ready message, waits for the start message, then
/// sends the messages.
///
/// # Errors
///
/// Bad arguments, or a transport error.
pub fn producer(args: &[String]) -> Result<()> {
    let case = Case::parse(arg(args, 0)?)?;
    let size: usize = number(args, 1)?;
    let count: u64 = number(args, 2)?;
    let mut link = peer_link(case, size, &args[3..])?;
    link.tx.send(u64::MAX)?;
    link.tx.flush()?;
    let mut buf = message(size);
    expect(link.rx.as_mut(), &mut buf, u64::MAX - 1)?;
    for seq in 0..count {
        link.tx.send(seq)?;
    }
    link.tx.flush()?;
    // Senders that must outlive the process's own cleanup (the raw vmsplice floor) leak
    // themselves here; see `pipes`.
    std::mem::forget(link.tx);
    Ok(())
}
