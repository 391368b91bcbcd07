//! POSIX message queues: `ipc-mq`'s `MessageQueue` beside raw `mq_send`/`mq_receive`,
//! blocking and non-blocking.

use ipc_core::{IpcName, Result};
use ipc_mq::{Direction, MessageQueue, QueueOptions};

use crate::sys::RawQueue;
use crate::transport::{Link, MsgRx, MsgTx, Setup, arg, message, stamp, whole};

/// How the queue is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `mq_send`/`mq_receive` from libc, blocking (floor).
    Raw,
    /// `MessageQueue::send`/`recv`.
    Queue,
    /// `mq_send`/`mq_receive` on a non-blocking queue, spinning on `EAGAIN` (floor).
    RawNonblocking,
    /// `MessageQueue::try_send`/`try_recv` on a non-blocking queue, spinning on
    /// `WouldBlock`.
    QueueNonblocking,
}

impl Flavour {
    /// Every flavour, each floor before its wrapper.
    pub const ALL: [Flavour; 4] = [
        Flavour::Raw,
        Flavour::Queue,
        Flavour::RawNonblocking,
        Flavour::QueueNonblocking,
    ];

    /// The name on a peer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Raw => "raw",
            Flavour::Queue => "queue",
            Flavour::RawNonblocking => "raw-nonblocking",
            Flavour::QueueNonblocking => "queue-nonblocking",
        }
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::Raw => "mq: libc mq_send/mq_receive (floor)",
            Flavour::Queue => "mq: MessageQueue",
            Flavour::RawNonblocking => "mq: libc, non-blocking, spinning (floor)",
            Flavour::QueueNonblocking => "mq: MessageQueue try_send/try_recv, spinning",
        }
    }

    /// The floor this flavour is compared with (itself for a floor).
    pub fn floor(self) -> Flavour {
        match self {
            Flavour::Queue => Flavour::Raw,
            Flavour::QueueNonblocking => Flavour::RawNonblocking,
            floor => floor,
        }
    }

    fn raw(self) -> bool {
        matches!(self, Flavour::Raw | Flavour::RawNonblocking)
    }

    fn nonblocking(self) -> bool {
        matches!(self, Flavour::RawNonblocking | Flavour::QueueNonblocking)
    }

    /// Parses [`Flavour::name`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unknown name.
    pub fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "mq", Flavour::name)
    }
}

/// One end of a queue: raw or `ipc-mq`.
enum End {
    Raw(RawQueue),
    Queue(MessageQueue, bool),
}

impl End {
    fn open(flavour: Flavour, name: &IpcName, create: bool, size: usize) -> Result<End> {
        if flavour.raw() {
            return Ok(End::Raw(RawQueue::open(
                name,
                create,
                size,
                flavour.nonblocking(),
            )?));
        }
        let options = QueueOptions::new()
            .capacity(10)
            .max_message_size(size)
            .nonblocking(flavour.nonblocking());
        let queue = if create {
            options.create(name)?
        } else {
            options.open(name, Direction::Both)?
        };
        Ok(End::Queue(queue, flavour.nonblocking()))
    }
}

struct Tx(End, Vec<u8>);

impl MsgTx for Tx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        match &self.0 {
            End::Raw(queue) => queue.send(&self.1),
            End::Queue(queue, false) => queue.send(&self.1),
            End::Queue(queue, true) => loop {
                match queue.try_send(&self.1) {
                    Err(err) if err.is_would_block() => std::hint::spin_loop(),
                    other => return other,
                }
            },
        }
    }
}

struct Rx(End);

impl MsgRx for Rx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let n = match &self.0 {
            End::Raw(queue) => queue.recv(buf)?,
            End::Queue(queue, false) => queue.recv(buf)?,
            End::Queue(queue, true) => loop {
                match queue.try_recv(buf) {
                    Err(err) if err.is_would_block() => std::hint::spin_loop(),
                    other => break other?,
                }
            },
        };
        whole(n, buf)
    }
}

/// Two queues made by the parent, one per direction, of messages of exactly `size` bytes.
pub(crate) fn setup(flavour: Flavour, size: usize) -> Result<Setup> {
    let to_peer = IpcName::unique("ipcrs-bench-mq-to")?;
    let from_peer = IpcName::unique("ipcrs-bench-mq-from")?;
    let size = size.max(8);
    let tx = Tx(End::open(flavour, &to_peer, true, size)?, message(size));
    let rx = Rx(End::open(flavour, &from_peer, true, size)?);
    Ok(Setup {
        stdin: std::process::Stdio::null(),
        stdout: std::process::Stdio::null(),
        args: vec![to_peer.as_str().to_owned(), from_peer.as_str().to_owned()],
        finish: Box::new(move || {
            Ok(Link {
                tx: Box::new(tx),
                rx: Box::new(rx),
            })
        }),
    })
}

/// The peer's side: it opens both queues by name.
pub(crate) fn peer_link(flavour: Flavour, size: usize, args: &[String]) -> Result<Link> {
    let size = size.max(8);
    let rx = Rx(End::open(
        flavour,
        &IpcName::new(arg(args, 0)?)?,
        false,
        size,
    )?);
    let tx = Tx(
        End::open(flavour, &IpcName::new(arg(args, 1)?)?, false, size)?,
        message(size),
    );
    Ok(Link {
        tx: Box::new(tx),
        rx: Box::new(rx),
    })
}

crate::transport::benchmarked!(
    "mq",
    setup: |f, size, _| setup(f, size),
    peer: |f, size, args| peer_link(f, size, args),
);
