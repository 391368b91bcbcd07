//! Shared-memory channel flavours: `ipc-shm`'s channel in each wait strategy, copy and zero
//! copy, beside a minimal raw ring (busy polling) and a raw futex ping-pong (blocking).

use std::time::Duration;

use ipc_core::{IpcName, Result};
use ipc_shm::{
    ChannelOptions, Consumer, Interest, Producer, Selector, SharedMemory, ShmOptions, WaitStrategy,
};

use crate::sys::{RawFutex, RawRing};
use crate::transport::{BatchTx, Link, MsgRx, MsgTx, SendBatch, Setup, arg, message, stamp};

/// A shared-memory way of passing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The raw ring, copying, busy polling (floor).
    RawRing,
    /// The raw ring, writing and reading only an 8-byte stamp in place (zero-copy floor).
    RawRingZeroCopy,
    /// A raw futex ping-pong (floor of waking a sleeping peer).
    RawFutex,
    /// The channel, busy polling, copying.
    Busy,
    /// The channel, spin-then-park (default), copying.
    Spin,
    /// The channel, blocking, copying.
    Blocking,
    /// The channel, busy polling, loan and borrow with an 8-byte stamp.
    BusyZeroCopy,
    /// The channel, spin-then-park, `send_batch` of `BATCH` messages a call (throughput
    /// only, against `Spin`).
    SpinBatch,
    /// The channel, blocking, its consumer woken by a `Selector` holding only it.
    Select1,
    /// The same, the `Selector` also holding 63 idle channels.
    Select64,
    /// The channel, blocking, its consumer awaited on a current-thread tokio runtime.
    Async,
}

impl Flavour {
    /// Every flavour.
    pub const ALL: [Flavour; 11] = [
        Flavour::RawRing,
        Flavour::RawRingZeroCopy,
        Flavour::RawFutex,
        Flavour::Busy,
        Flavour::Spin,
        Flavour::Blocking,
        Flavour::BusyZeroCopy,
        Flavour::SpinBatch,
        Flavour::Select1,
        Flavour::Select64,
        Flavour::Async,
    ];

    /// The short name used on the command line of the peer.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::RawRing => "raw-ring",
            Flavour::RawRingZeroCopy => "raw-ring-zc",
            Flavour::RawFutex => "raw-futex",
            Flavour::Busy => "busy",
            Flavour::Spin => "spin",
            Flavour::Blocking => "blocking",
            Flavour::BusyZeroCopy => "busy-zc",
            Flavour::SpinBatch => "spin-batch",
            Flavour::Select1 => "select-1",
            Flavour::Select64 => "select-64",
            Flavour::Async => "async",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::RawRing => "shm: raw spin ring, copy (floor)",
            Flavour::RawRingZeroCopy => "shm: raw spin ring, zero-copy (floor)",
            Flavour::RawFutex => "shm: raw futex ping-pong, blocking (floor)",
            Flavour::Busy => "shm: channel, busy polling",
            Flavour::Spin => "shm: channel, spin-then-park",
            Flavour::Blocking => "shm: channel, blocking",
            Flavour::BusyZeroCopy => "shm: channel, zero-copy loan/borrow",
            Flavour::SpinBatch => "shm: channel, spin-then-park, send_batch 32 a call",
            Flavour::Select1 => "shm: channel in a Selector of 1",
            Flavour::Select64 => "shm: channel in a Selector of 64",
            Flavour::Async => "shm: channel awaited on tokio",
        }
    }

    /// The floor this flavour is compared with (itself for a floor).
    pub fn floor(self) -> Flavour {
        match self {
            Flavour::Busy | Flavour::Spin => Flavour::RawRing,
            Flavour::Blocking | Flavour::Select1 | Flavour::Select64 | Flavour::Async => {
                Flavour::RawFutex
            }
            Flavour::BusyZeroCopy => Flavour::RawRingZeroCopy,
            // Its baseline is one message a call, the gain is the batch's.
            Flavour::SpinBatch => Flavour::Spin,
            floor => floor,
        }
    }

    pub(crate) fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "shm", Flavour::name)
    }

    fn wait(self) -> WaitStrategy {
        match self {
            Flavour::Spin | Flavour::SpinBatch => WaitStrategy::default(),
            Flavour::Blocking | Flavour::Select1 | Flavour::Select64 | Flavour::Async => {
                WaitStrategy::Blocking
            }
            _ => WaitStrategy::BusyPoll,
        }
    }
}

/// A record of a `size`-byte message in the ring: the message and its eight-byte header.
fn record_size(size: usize) -> usize {
    size.max(8) + 8
}

/// How many `size`-byte messages the ring of this bench holds: how far a producer can run
/// ahead of its consumer (a peer crate's queue is given the same depth).
#[cfg(feature = "peers")]
pub(crate) fn ring_depth(size: usize) -> usize {
    ring_capacity(size) / record_size(size)
}

/// The ring for `size`-byte messages: room for 16 of them, a power of two between 64 KiB
/// (the channel's default) and 2 MiB (about a core's L2 cache here), and at least twice the
/// message. A ring much larger than what is in flight puts every message on memory that
/// has left the caches: with the 8 MiB ring this bench used, a 4 KiB message took 4.6 µs
/// one way against 0.85 µs in a ring of 16 of them (quick run, same host), and 64 KiB
/// messages moved at 3.6 against 12.5 GiB/s.
fn ring_capacity(size: usize) -> usize {
    let record = record_size(size);
    let twice = (2 * record + 16).next_power_of_two();
    (16 * record)
        .next_power_of_two()
        .clamp(64 * 1024, 2 << 20)
        .max(twice)
}

fn options(flavour: Flavour, size: usize) -> ChannelOptions {
    ChannelOptions::new()
        .capacity(ring_capacity(size))
        .max_message_size(size.max(8))
        .wait_strategy(flavour.wait())
        .timeout(Duration::from_secs(10))
}

fn raw_segment(name: &IpcName, create: bool, size: usize) -> Result<SharedMemory> {
    if create {
        ShmOptions::new()
            .size(4096 + ring_capacity(size))
            .create(name)
    } else {
        ShmOptions::new()
            .timeout(Duration::from_secs(10))
            .open(name)
    }
}

/// The raw ring's sending side; `_segment` keeps the mapping alive.
struct RawRingTx {
    ring: RawRing,
    _segment: SharedMemory,
    buf: Vec<u8>,
    copy: bool,
}

impl MsgTx for RawRingTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        if self.copy {
            stamp(&mut self.buf, seq);
            self.ring.send(self.buf.len(), seq, Some(&self.buf));
        } else {
            self.ring.send(self.buf.len(), seq, None);
        }
        Ok(())
    }
}

/// The raw ring's receiving side.
struct RawRingRx {
    ring: RawRing,
    _segment: SharedMemory,
    copy: bool,
}

impl MsgRx for RawRingRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let n = self.ring.recv(buf, self.copy);
        crate::transport::whole(n, buf)
    }
}

struct FutexTx(RawFutex, SharedMemory, Vec<u8>);

impl MsgTx for FutexTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.2, seq);
        // The message goes into the segment after the two futex words.
        self.1.write_at(64, &self.2)?;
        self.0.send();
        Ok(())
    }
}

struct FutexRx(RawFutex, SharedMemory);

impl MsgRx for FutexRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        self.0.recv();
        self.1.read_at(64, buf)?;
        Ok(true)
    }
}

impl SendBatch for Producer {
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        Producer::send_batch(self, msgs)
    }
}

struct ChannelTx(Producer, Vec<u8>, bool);

impl MsgTx for ChannelTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        if self.2 {
            stamp(&mut self.1, seq);
            self.0.send(&self.1)
        } else {
            let mut loan = self.0.loan(self.1.len())?;
            loan.write::<u64>(0, &seq)?;
            loan.commit()
        }
    }
}

struct ChannelRx(Consumer, bool);

impl MsgRx for ChannelRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let result = if self.1 {
            self.0.recv(buf).map(|n| (n, true))
        } else {
            self.0.borrow().and_then(|loan| {
                let n = loan.len();
                let seq: u64 = loan.read(0)?;
                buf[..8].copy_from_slice(&seq.to_ne_bytes());
                Ok((n, true))
            })
        };
        match result {
            Ok((n, _)) => crate::transport::whole(n, buf),
            Err(err) if err.is_peer_gone() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// One direction: what the sender and the receiver of it hold.
fn sender(flavour: Flavour, name: &IpcName, create: bool, size: usize) -> Result<Box<dyn MsgTx>> {
    Ok(match flavour {
        Flavour::RawRing | Flavour::RawRingZeroCopy => {
            let segment = raw_segment(name, create, size)?;
            Box::new(RawRingTx {
                ring: RawRing::new(&segment),
                _segment: segment,
                buf: message(size),
                copy: flavour == Flavour::RawRing,
            })
        }
        Flavour::RawFutex => {
            let segment = if create {
                ShmOptions::new().size(64 + size.max(8)).create(name)?
            } else {
                ShmOptions::new()
                    .timeout(Duration::from_secs(10))
                    .open(name)?
            };
            Box::new(FutexTx(
                RawFutex::new(&segment, 0, 0),
                segment,
                message(size),
            ))
        }
        _ => {
            let options = options(flavour, size);
            let producer = if create {
                options.create_producer(name)?
            } else {
                options.open_producer(name)?
            };
            if flavour == Flavour::SpinBatch {
                Box::new(BatchTx::new(producer, size))
            } else {
                Box::new(ChannelTx(
                    producer,
                    message(size),
                    flavour != Flavour::BusyZeroCopy,
                ))
            }
        }
    })
}

fn receiver(flavour: Flavour, name: &IpcName, create: bool, size: usize) -> Result<Box<dyn MsgRx>> {
    Ok(match flavour {
        Flavour::RawRing | Flavour::RawRingZeroCopy => {
            let segment = raw_segment(name, create, size)?;
            Box::new(RawRingRx {
                ring: RawRing::new(&segment),
                _segment: segment,
                copy: flavour == Flavour::RawRing,
            })
        }
        Flavour::RawFutex => {
            let segment = ShmOptions::new()
                .timeout(Duration::from_secs(10))
                .open(name)?;
            Box::new(FutexRx(RawFutex::new(&segment, 0, 0), segment))
        }
        _ => {
            let options = options(flavour, size);
            let consumer = if create {
                options.create_consumer(name)?
            } else {
                options.open_consumer(name)?
            };
            match flavour {
                Flavour::Select1 => Box::new(SelectRx::new(consumer, 0)?),
                Flavour::Select64 => Box::new(SelectRx::new(consumer, 63)?),
                Flavour::Async => Box::new(AsyncRx::new(consumer)?),
                _ => Box::new(ChannelRx(consumer, flavour != Flavour::BusyZeroCopy)),
            }
        }
    })
}

/// A consumer awaited on a current-thread tokio runtime, as an async program receives.
struct AsyncRx {
    runtime: tokio::runtime::Runtime,
    consumer: ipc_shm::Async<Consumer>,
}

impl AsyncRx {
    fn new(consumer: Consumer) -> Result<AsyncRx> {
        Ok(AsyncRx {
            runtime: crate::transport::runtime()?,
            consumer: ipc_shm::Async::new(consumer),
        })
    }
}

impl MsgRx for AsyncRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let consumer = &mut self.consumer;
        match self
            .runtime
            .block_on(consumer.read_with(|c| c.try_recv(buf)))
        {
            Ok(n) => crate::transport::whole(n, buf),
            Err(err) if err.is_peer_gone() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// A consumer received from once a `Selector` says it is ready, beside `idle` channels
/// that never are.
struct SelectRx {
    consumer: Consumer,
    selector: Selector,
    _idle: Vec<(Producer, Consumer)>,
}

impl SelectRx {
    fn new(consumer: Consumer, idle: usize) -> Result<SelectRx> {
        let mut selector = Selector::new()?;
        let idle = (0..idle)
            .map(|_| ChannelOptions::new().capacity(4096).channel())
            .collect::<Result<Vec<_>>>()?;
        for (_, idle_consumer) in &idle {
            selector.add(idle_consumer, Interest::Readable)?;
        }
        selector.add(&consumer, Interest::Readable)?;
        Ok(SelectRx {
            consumer,
            selector,
            _idle: idle,
        })
    }
}

impl MsgRx for SelectRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        loop {
            match self.consumer.try_recv(buf) {
                Ok(n) => return crate::transport::whole(n, buf),
                Err(err) if err.is_would_block() => {
                    self.selector.wait()?;
                }
                Err(err) if err.is_peer_gone() => return Ok(false),
                Err(err) => return Err(err),
            }
        }
    }
}

/// Two named segments, one per direction, created by the parent (which removes them).
pub(crate) fn setup(flavour: Flavour, size: usize, _capacity: usize) -> Result<Setup> {
    let to_peer = IpcName::unique("ipcrs-bench-to")?;
    let from_peer = IpcName::unique("ipcrs-bench-from")?;
    // Create both now, so that the peer can open them.
    let tx = sender(flavour, &to_peer, true, size)?;
    let rx = receiver_created(flavour, &from_peer, size)?;
    Ok(Setup {
        stdin: std::process::Stdio::null(),
        stdout: std::process::Stdio::null(),
        args: vec![to_peer.as_str().to_owned(), from_peer.as_str().to_owned()],
        finish: Box::new(move || Ok(Link { tx, rx })),
    })
}

/// The receiving side of a direction this process creates.
fn receiver_created(flavour: Flavour, name: &IpcName, size: usize) -> Result<Box<dyn MsgRx>> {
    if flavour == Flavour::RawFutex {
        let segment = ShmOptions::new().size(64 + size.max(8)).create(name)?;
        return Ok(Box::new(FutexRx(RawFutex::new(&segment, 0, 0), segment)));
    }
    receiver(flavour, name, true, size)
}

/// The peer's side: it opens both directions by name.
pub(crate) fn peer_link(flavour: Flavour, size: usize, args: &[String]) -> Result<Link> {
    let to_peer = IpcName::new(arg(args, 0)?)?;
    let from_peer = IpcName::new(arg(args, 1)?)?;
    let rx = receiver(flavour, &to_peer, false, size)?;
    let tx = sender(flavour, &from_peer, false, size)?;
    Ok(Link { tx, rx })
}

crate::transport::benchmarked!(
    "shm",
    setup: |f, size, capacity| setup(f, size, capacity),
    peer: |f, size, args| peer_link(f, size, args),
);
