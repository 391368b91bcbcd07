//! Pipe cases: round-trip latency and one-way throughput through a pipe, for the raw libc
//! calls (the floor) and for each way `ipc-pipe` offers to use a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipc_core::{Error, Result};
use ipc_pipe::{FramedReader, FramedWriter, PipeReader, PipeWriter, VmspliceWriter, pipe};
use nix::fcntl::SpliceFFlags;

use crate::peer::BenchPeer;
use crate::sys;

/// The peer role that answers ping-pong round trips.
pub const PIPE_PONG: &str = "pipe-pong";
/// The peer role that streams messages for the throughput cases.
pub const PRODUCER: &str = "pipe-producer";

/// How messages go through the pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `write(2)` and `read(2)` straight from libc: the floor.
    Raw,
    /// `ipc_pipe::PipeWriter` and `PipeReader` through `std::io::Write` and `Read`.
    Pipe,
    /// `ipc_pipe::FramedWriter` and `FramedReader`: length-prefixed messages.
    Framed,
    /// `vmsplice(2)` from libc over a ring of buffers, read with `read(2)`: the zero-copy
    /// floor (a C program that trusts the reader to keep up).
    RawVmsplice,
    /// `ipc_pipe::VmspliceWriter` with reclaimed buffers, read with `PipeReader`.
    Vmsplice,
}

impl Flavour {
    /// Every flavour, in report order.
    pub const ALL: [Flavour; 5] = [
        Flavour::Raw,
        Flavour::Pipe,
        Flavour::Framed,
        Flavour::RawVmsplice,
        Flavour::Vmsplice,
    ];

    /// The short name used on the command line of the peer.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Raw => "raw",
            Flavour::Pipe => "pipe",
            Flavour::Framed => "framed",
            Flavour::RawVmsplice => "raw-vmsplice",
            Flavour::Vmsplice => "vmsplice",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::Raw => "libc read/write (floor)",
            Flavour::Pipe => "PipeReader/PipeWriter",
            Flavour::Framed => "FramedReader/FramedWriter",
            Flavour::RawVmsplice => "libc vmsplice (floor)",
            Flavour::Vmsplice => "VmspliceWriter",
        }
    }

    fn parse(name: &str) -> Result<Flavour> {
        Flavour::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                Error::new(
                    "Flavour::parse",
                    std::io::ErrorKind::InvalidInput,
                    format!("unknown flavour {name}"),
                )
            })
    }
}

/// The sending side of a flavour.
enum Tx {
    Raw(OwnedFd, Vec<u8>),
    Pipe(PipeWriter, Vec<u8>),
    Framed(FramedWriter<PipeWriter>, Vec<u8>),
    RawVmsplice {
        fd: OwnedFd,
        ring: Vec<Vec<u8>>,
        next: usize,
    },
    Vmsplice {
        writer: VmspliceWriter,
        pool: Vec<Vec<u8>>,
        size: usize,
    },
}

impl Tx {
    fn new(flavour: Flavour, fd: OwnedFd, size: usize) -> Result<Tx> {
        Ok(match flavour {
            Flavour::Raw => Tx::Raw(fd, vec![0x5a; size]),
            Flavour::Pipe => Tx::Pipe(PipeWriter::from(fd), vec![0x5a; size]),
            Flavour::Framed => {
                let framed = FramedWriter::new(PipeWriter::from(fd)).with_max_message_size(size);
                Tx::Framed(framed, vec![0x5a; size])
            }
            Flavour::RawVmsplice => {
                // Enough buffers that one is reused only after a full pipe's worth has gone
                // by twice, so the trusting floor does not overwrite unread data.
                let capacity = PipeWriter::from(fd.try_clone().map_err(Error::from)?).capacity()?;
                let count = (2 * capacity / size).max(2) + 1;
                Tx::RawVmsplice {
                    fd,
                    ring: vec![vec![0x5a; size]; count],
                    next: 0,
                }
            }
            Flavour::Vmsplice => {
                // A pool as large as the pipe holds, filled before the clock starts, as a
                // program streaming this way would set it up.
                let writer = PipeWriter::from(fd);
                let count = (writer.capacity()? / size).max(1) + 2;
                Tx::Vmsplice {
                    writer: VmspliceWriter::new(writer),
                    pool: vec![vec![0x5a; size]; count],
                    size,
                }
            }
        })
    }

    /// Sends one message stamped with `seq` in its first eight bytes.
    fn send(&mut self, seq: u64) -> Result<()> {
        let stamp = seq.to_le_bytes();
        match self {
            Tx::Raw(fd, buf) => {
                buf[..8].copy_from_slice(&stamp);
                sys::write_all(fd.as_fd(), buf)
            }
            Tx::Pipe(w, buf) => {
                buf[..8].copy_from_slice(&stamp);
                w.write_all(buf).map_err(Error::from)
            }
            Tx::Framed(w, buf) => {
                buf[..8].copy_from_slice(&stamp);
                w.send(buf)
            }
            Tx::RawVmsplice { fd, ring, next } => {
                let len = ring.len();
                let buf = &mut ring[*next];
                *next = (*next + 1) % len;
                buf[..8].copy_from_slice(&stamp);
                let mut done = 0;
                while done < buf.len() {
                    let iov = [std::io::IoSlice::new(&buf[done..])];
                    match nix::fcntl::vmsplice(fd.as_fd(), &iov, SpliceFFlags::empty()) {
                        Ok(n) => done += n,
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(errno) => return Err(Error::from_errno("vmsplice", errno)),
                    }
                }
                Ok(())
            }
            Tx::Vmsplice { writer, pool, size } => {
                if pool.is_empty() {
                    while let Some(buf) = writer.reclaim()? {
                        pool.push(buf);
                    }
                }
                let mut buf = pool.pop().unwrap_or_else(|| vec![0x5a; *size]);
                buf[..8].copy_from_slice(&stamp);
                writer.send(buf)
            }
        }
    }
}

/// The receiving side of a flavour.
enum Rx {
    Raw(OwnedFd),
    Pipe(PipeReader),
    Framed(FramedReader<PipeReader>),
}

impl Rx {
    fn new(flavour: Flavour, fd: OwnedFd, size: usize) -> Rx {
        match flavour {
            Flavour::Raw | Flavour::RawVmsplice => Rx::Raw(fd),
            Flavour::Pipe | Flavour::Vmsplice => Rx::Pipe(PipeReader::from(fd)),
            Flavour::Framed => {
                Rx::Framed(FramedReader::new(PipeReader::from(fd)).with_max_message_size(size))
            }
        }
    }

    /// Receives one message of `buf.len()` bytes; `Ok(false)` at end of stream.
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self {
            Rx::Raw(fd) => sys::read_exact(fd.as_fd(), buf),
            Rx::Pipe(r) => match r.read_exact(buf) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
                Err(err) => Err(Error::from(err)),
            },
            Rx::Framed(r) => match r.recv(buf) {
                Ok(n) if n == buf.len() => Ok(true),
                Ok(n) => Err(Error::corrupted(
                    "recv",
                    format!("a message of {n} bytes, expected {}", buf.len()),
                )),
                Err(err) if err.is_peer_gone() => Ok(false),
                Err(err) => Err(err),
            },
        }
    }

    /// Receives message `seq` and checks its stamp.
    fn expect(&mut self, buf: &mut [u8], seq: u64) -> Result<()> {
        if !self.recv(buf)? {
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
}

fn arg(args: &[String], i: usize) -> Result<&str> {
    args.get(i).map(String::as_str).ok_or_else(|| {
        Error::new(
            "peer",
            std::io::ErrorKind::InvalidInput,
            format!("missing argument {i}"),
        )
    })
}

fn number<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T> {
    arg(args, i)?.parse().map_err(|_| {
        Error::new(
            "peer",
            std::io::ErrorKind::InvalidInput,
            format!("argument {i} is not a number"),
        )
    })
}

fn stdio_fds() -> Result<(OwnedFd, OwnedFd)> {
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

/// Round trips of `size`-byte messages through two pipes, the peer echoing each.
#[derive(Debug)]
pub struct PipePingPong {
    inner: PingPongInner,
    buf: Vec<u8>,
    seq: u64,
    _peer: BenchPeer,
}

struct PingPongInner {
    tx: Tx,
    rx: Rx,
}

impl std::fmt::Debug for PingPongInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PingPong")
    }
}

impl PipePingPong {
    /// Starts the echoing peer on `peer_cpu` and makes one round trip.
    ///
    /// # Errors
    ///
    /// If the pipes or the peer cannot be set up, or the first round trip fails.
    pub fn start(size: usize, flavour: Flavour, peer_cpu: Option<usize>) -> Result<Self> {
        let (peer_in, to_peer) = pipe()?;
        let (from_peer, peer_out) = pipe()?;
        let peer = BenchPeer::spawn(
            PIPE_PONG,
            [size.to_string(), flavour.name().to_owned()],
            peer_cpu,
            Stdio::from(peer_in),
            Stdio::from(peer_out),
        )?;
        let mut pingpong = PipePingPong {
            inner: PingPongInner {
                tx: Tx::new(flavour, OwnedFd::from(to_peer), size)?,
                rx: Rx::new(flavour, OwnedFd::from(from_peer), size),
            },
            buf: vec![0; size],
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
    /// The read or write error; corrupted if the echo is not the message sent.
    pub fn round_trip(&mut self) -> Result<()> {
        self.inner.tx.send(self.seq)?;
        self.inner.rx.expect(&mut self.buf, self.seq)?;
        self.seq += 1;
        Ok(())
    }
}

/// The peer of [`PipePingPong`]: echoes messages from stdin to stdout until end of file.
///
/// # Errors
///
/// Bad arguments, or a read or write error.
pub fn pipe_pong(args: &[String]) -> Result<()> {
    let size: usize = number(args, 0)?;
    let flavour = Flavour::parse(arg(args, 1)?)?;
    let (input, output) = stdio_fds()?;
    let mut rx = Rx::new(flavour, input, size);
    let mut tx = Tx::new(flavour, output, size)?;
    let mut buf = vec![0u8; size];
    let mut seq = 0u64;
    while rx.recv(&mut buf)? {
        tx.send(seq)?;
        seq += 1;
    }
    Ok(())
}

/// Streams `count` messages of `size` bytes from a pinned peer through a pipe of `capacity`
/// bytes, checking every sequence number, and returns the time from the start signal to
/// the last message.
///
/// # Errors
///
/// If setting up fails, or a message is lost, reordered or damaged.
pub fn throughput(
    flavour: Flavour,
    size: usize,
    capacity: usize,
    count: u64,
    peer_cpu: Option<usize>,
) -> Result<Duration> {
    let (data_in, data_out) = pipe()?;
    data_in.set_capacity(capacity)?;
    let (go_in, mut go_out) = pipe()?;
    let peer = BenchPeer::spawn(
        PRODUCER,
        [
            flavour.name().to_owned(),
            size.to_string(),
            count.to_string(),
        ],
        peer_cpu,
        Stdio::from(go_in),
        Stdio::from(data_out),
    )?;
    let mut rx = Rx::new(flavour, OwnedFd::from(data_in), size);
    // The producer's first message says it is set up and pinned; then the clock starts.
    let mut buf = vec![0u8; size];
    rx.expect(&mut buf, u64::MAX)?;
    go_out.write_all(b"g").map_err(Error::from)?;
    let start = Instant::now();
    for seq in 0..count {
        rx.expect(&mut buf, seq)?;
    }
    let elapsed = start.elapsed();
    if rx.recv(&mut buf)? {
        return Err(Error::corrupted(
            "throughput",
            "the producer sent more than asked",
        ));
    }
    drop(peer);
    Ok(elapsed)
}

/// The peer of [`throughput`]: sends a ready message, waits for the start signal on stdin,
/// then sends the messages to stdout.
///
/// # Errors
///
/// Bad arguments, or a write error.
pub fn producer(args: &[String]) -> Result<()> {
    let flavour = Flavour::parse(arg(args, 0)?)?;
    let size: usize = number(args, 1)?;
    let count: u64 = number(args, 2)?;
    let (input, output) = stdio_fds()?;
    let mut tx = Tx::new(flavour, output, size)?;
    tx.send(u64::MAX)?;
    let mut go = [0u8; 1];
    File::from(input).read_exact(&mut go).map_err(Error::from)?;
    for seq in 0..count {
        tx.send(seq)?;
    }
    if let Tx::RawVmsplice { .. } = tx {
        // The floor's ring may still be in the pipe: freeing it would let the allocator
        // write its bookkeeping into pages the reader has yet to read. Leak it, as a C
        // program that simply exits would. (`VmspliceWriter` does the same by itself.)
        std::mem::forget(tx);
    }
    Ok(())
}
