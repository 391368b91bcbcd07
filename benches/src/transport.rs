//! What every measured channel shares: a sender and a receiver of numbered messages on
//! each side, how a mechanism sets up its two sides (the [`Benchmarked`] trait), and the
//! helpers the mechanisms use. The cases and the drivers that run them are in `case`.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;

use ipc_core::{Error, Result};

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

    /// Sends what a batching sender holds back; the drivers call it after the messages
    /// that the other side waits for.
    ///
    /// # Errors
    ///
    /// The transport's send error.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How many messages a batch flavour sends (or receives) a call.
pub(crate) const BATCH: usize = 32;

/// An endpoint that sends many messages a call.
pub(crate) trait SendBatch {
    /// Sends as many of `msgs` as it can in one go; how many.
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize>;
}

/// Stamps messages into `BATCH` buffers and sends them in one call once all are full (or
/// on `flush`).
pub(crate) struct BatchTx<S: SendBatch> {
    sender: S,
    bufs: Vec<Vec<u8>>,
    held: usize,
}

impl<S: SendBatch> BatchTx<S> {
    pub(crate) fn new(sender: S, size: usize) -> Self {
        BatchTx {
            sender,
            bufs: (0..BATCH).map(|_| message(size)).collect(),
            held: 0,
        }
    }
}

impl<S: SendBatch> MsgTx for BatchTx<S> {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.bufs[self.held], seq);
        self.held += 1;
        if self.held == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let msgs: Vec<&[u8]> = self.bufs[..self.held].iter().map(Vec::as_slice).collect();
        let mut sent = 0;
        while sent < msgs.len() {
            sent += self.sender.send_batch(&msgs[sent..])?;
        }
        self.held = 0;
        Ok(())
    }
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

/// A sender that stamps each message and hands it to one call (a peer crate's send, a
/// socket's write).
pub(crate) struct SendWith<F>(pub F, pub Vec<u8>);

impl<F: FnMut(&[u8]) -> Result<()>> MsgTx for SendWith<F> {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        (self.0)(&self.1)
    }
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

/// Copies a message received elsewhere into `buf` (as much as fits) and checks its size.
pub(crate) fn copy_whole(msg: &[u8], buf: &mut [u8]) -> Result<bool> {
    let n = msg.len().min(buf.len());
    buf[..n].copy_from_slice(&msg[..n]);
    whole(msg.len(), buf)
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
pub struct Setup {
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) args: Vec<String>,
    pub(crate) finish: Box<dyn FnOnce() -> Result<Link>>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

/// A mechanism the runner measures: each module's `Flavour` implements it, so that a
/// [`Case`](crate::case::Case) dispatches to its mechanism once.
pub trait Benchmarked {
    /// The prefix of the mechanism's case names (`pipe`, `socket`, ...).
    fn prefix(&self) -> &'static str;

    /// The flavour's name on the peer's command line, after the prefix.
    fn name(&self) -> &'static str;

    /// The flavour's label in the report.
    fn label(&self) -> &'static str;

    /// Sets up the parent's side of a channel for `size`-byte messages (`capacity` where
    /// the mechanism has one).
    ///
    /// # Errors
    ///
    /// The mechanism's error.
    fn setup(&self, size: usize, capacity: usize) -> Result<Setup>;

    /// The peer's side, from the arguments the parent's [`Setup`] passed.
    ///
    /// # Errors
    ///
    /// The mechanism's error.
    fn peer_link(&self, size: usize, args: &[String]) -> Result<Link>;
}

/// The flavour among `all` called `name`; `prefix` ("shm") words the error.
pub(crate) fn flavour_named<F: Copy>(
    all: &[F],
    name: &str,
    prefix: &str,
    name_of: fn(F) -> &'static str,
) -> Result<F> {
    all.iter()
        .copied()
        .find(|&flavour| name_of(flavour) == name)
        .ok_or_else(|| {
            Error::new(
                "Flavour::parse",
                std::io::ErrorKind::InvalidInput,
                format!("unknown {prefix} flavour {name}"),
            )
        })
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

/// Implements [`Benchmarked`] for the calling module's `Flavour`, from its inherent `name`
/// and `label`, the case prefix, and how the module sets up each side.
macro_rules! benchmarked {
    (
        $prefix:literal,
        setup: |$f:ident, $size:pat_param, $capacity:pat_param| $setup:expr,
        peer: |$g:ident, $peer_size:pat_param, $args:pat_param| $peer:expr $(,)?
    ) => {
        impl $crate::transport::Benchmarked for Flavour {
            fn prefix(&self) -> &'static str {
                $prefix
            }

            fn name(&self) -> &'static str {
                Flavour::name(*self)
            }

            fn label(&self) -> &'static str {
                Flavour::label(*self)
            }

            fn setup(&self, $size: usize, $capacity: usize) -> Result<Setup> {
                let $f = *self;
                $setup
            }

            fn peer_link(&self, $peer_size: usize, $args: &[String]) -> Result<Link> {
                let $g = *self;
                $peer
            }
        }
    };
}

pub(crate) use benchmarked;

/// A current-thread runtime for one side of an async row.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| ipc_core::Error::from(e).with_op("tokio runtime"))
}

/// `write_all` of whole messages on any async writer (tokio's own types, `Async` of a
/// pipe end or stream), awaited on the side's runtime.
pub(crate) struct AsyncWriteTx<W>(
    pub(crate) std::rc::Rc<tokio::runtime::Runtime>,
    pub(crate) W,
    pub(crate) Vec<u8>,
);

impl<W: tokio::io::AsyncWrite + Unpin> MsgTx for AsyncWriteTx<W> {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.2, seq);
        let (runtime, writer, msg) = (&self.0, &mut self.1, &self.2);
        runtime
            .block_on(tokio::io::AsyncWriteExt::write_all(writer, msg))
            .map_err(|e| ipc_core::Error::from(e).with_op("write_all"))
    }
}

/// `read_exact` of whole messages on any async reader; the end of the stream ends it.
pub(crate) struct AsyncReadRx<R>(
    pub(crate) std::rc::Rc<tokio::runtime::Runtime>,
    pub(crate) R,
);

impl<R: tokio::io::AsyncRead + Unpin> MsgRx for AsyncReadRx<R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let (runtime, reader) = (&self.0, &mut self.1);
        match runtime.block_on(tokio::io::AsyncReadExt::read_exact(reader, buf)) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(err) => Err(ipc_core::Error::from(err).with_op("read_exact")),
        }
    }
}
