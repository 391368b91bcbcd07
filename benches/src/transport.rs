//! What every measured channel shares: a sender and a receiver of numbered messages on
//! each side, set up between this process and a pinned peer, and the two drivers that use
//! them: round-trip latency and one-way throughput.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipc_core::{Error, Result};

use crate::peer::BenchPeer;
use crate::{channels, pipes, queues, sems, signals, sockets};

/// The peer role that answers round trips.
pub const PONG: &str = "pong";
/// The peer role that streams messages for the throughput cases.
pub const PRODUCER: &str = "producer";

/// Sends numbered messages of a fixed size.
pub trait MsgTx {
    /// Sends message `seq`, stamped with `seq` in its first eight bytes.
    ///
    /// # Errors
    ///
    /// The transport's send error.
    fn send(&mut self, seq: u64) -> Result<()>;
}

/// Receives messages of a fixed size.
pub trait MsgRx {
    /// Receives one message into `buf`; `Ok(false)` at end of stream.
    ///
    /// # Errors
    ///
    /// The transport's receive error, or a message of the wrong size.
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool>;
}

/// A buffer of `size` bytes for a sender to stamp.
pub(crate) fn message(size: usize) -> Vec<u8> {
    vec![0x5a; size.max(8)]
}

/// Writes `seq` into the first eight bytes.
pub(crate) fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Receives message `seq` and checks its stamp.
pub(crate) fn expect(rx: &mut dyn MsgRx, buf: &mut [u8], seq: u64) -> Result<()> {
    if !rx.recv(buf)? {
        return Err(Error::peer_gone(
            "recv",
            format!("the stream ended before message {seq}"),
        ));
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&buf[..8]);
    let got = u64::from_le_bytes(stamp);
    if got != seq {
        return Err(Error::corrupted(
            "recv",
            format!("message {got} arrived where {seq} was due"),
        ));
    }
    Ok(())
}

/// Checks that a received message has the expected size.
pub(crate) fn whole(n: usize, buf: &[u8]) -> Result<bool> {
    if n == buf.len() {
        Ok(true)
    } else {
        Err(Error::corrupted(
            "recv",
            format!("a message of {n} bytes, expected {}", buf.len()),
        ))
    }
}

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
}

impl Case {
    /// The name used on the peer's command line.
    pub fn name(self) -> String {
        match self {
            Case::Pipe(f) => format!("pipe:{}", f.name()),
            Case::Socket(f) => format!("socket:{}", f.name()),
            Case::Shm(f) => format!("shm:{}", f.name()),
            Case::Sem(f) => format!("sem:{}", f.name()),
            Case::Mq(f) => format!("mq:{}", f.name()),
            Case::Sig(f) => format!("signal:{}", f.name()),
        }
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Case::Pipe(f) => f.label(),
            Case::Socket(f) => f.label(),
            Case::Shm(f) => f.label(),
            Case::Sem(f) => f.label(),
            Case::Mq(f) => f.label(),
            Case::Sig(f) => f.label(),
        }
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
            _ => Err(unknown()),
        }
    }
}

/// One side of an established channel.
pub struct Link {
    /// Sends to the other side.
    pub tx: Box<dyn MsgTx>,
    /// Receives from the other side.
    pub rx: Box<dyn MsgRx>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

/// How the parent's side is set up: what the peer gets as stdin and stdout, extra
/// arguments, and a function that completes the parent's side once the peer runs.
pub(crate) struct Setup {
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) args: Vec<String>,
    pub(crate) finish: Box<dyn FnOnce() -> Result<Link>>,
}

fn setup(case: Case, size: usize, capacity: usize) -> Result<Setup> {
    match case {
        Case::Pipe(f) => pipes::setup(f, size, capacity),
        Case::Socket(f) => sockets::setup(f, size, capacity),
        Case::Shm(f) => channels::setup(f, size, capacity),
        Case::Sem(f) => sems::setup(f),
        Case::Mq(f) => queues::setup(f, size),
        Case::Sig(f) => signals::setup(f),
    }
}

fn peer_link(case: Case, size: usize, args: &[String]) -> Result<Link> {
    match case {
        Case::Pipe(f) => pipes::peer_link(f, size, args),
        Case::Socket(f) => sockets::peer_link(f, size, args),
        Case::Shm(f) => channels::peer_link(f, size, args),
        Case::Sem(f) => sems::peer_link(f, args),
        Case::Mq(f) => queues::peer_link(f, size, args),
        Case::Sig(f) => signals::peer_link(f),
    }
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
        let peer = BenchPeer::spawn(PONG, args, peer_cpu, setup.stdin, setup.stdout)?;
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
    let peer = BenchPeer::spawn(PRODUCER, args, peer_cpu, setup.stdin, setup.stdout)?;
    let mut link = (setup.finish)()?;
    let mut buf = message(size);
    // The producer's first message says it is set up and pinned; then the clock starts.
    expect(link.rx.as_mut(), &mut buf, u64::MAX)?;
    link.tx.send(u64::MAX - 1)?;
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
    let mut buf = message(size);
    expect(link.rx.as_mut(), &mut buf, u64::MAX - 1)?;
    for seq in 0..count {
        link.tx.send(seq)?;
    }
    // Senders that must outlive the process's own cleanup (the raw vmsplice floor) leak
    // themselves here; see `pipes`.
    std::mem::forget(link.tx);
    Ok(())
}

/// Argument `i` of a peer.
pub(crate) fn arg(args: &[String], i: usize) -> Result<&str> {
    args.get(i).map(String::as_str).ok_or_else(|| {
        Error::new(
            "peer",
            std::io::ErrorKind::InvalidInput,
            format!("missing argument {i}"),
        )
    })
}

/// Argument `i` of a peer, as a number.
pub(crate) fn number<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T> {
    arg(args, i)?.parse().map_err(|_| {
        Error::new(
            "peer",
            std::io::ErrorKind::InvalidInput,
            format!("argument {i} is not a number"),
        )
    })
}

/// This process's stdin and stdout, duplicated.
pub(crate) fn stdio_fds() -> Result<(OwnedFd, OwnedFd)> {
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::from)?;
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::from)?;
    Ok((input, output))
}
