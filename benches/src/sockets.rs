//! Socket flavours: for each kind, the raw libc calls (the floor) and `ipc-socket`'s way.

use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use ipc_core::{Error, FramedReader, FramedWriter, Result};
use std::rc::Rc;

use ipc_socket::{Async, Datagram, RecvBatch, Seqpacket, TcpOptions, UdpSocketExt};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, sockopt};

use crate::pipes::{FramedRx, FramedTx, RawRx, RawTx};
use crate::transport::{
    AsyncReadRx, AsyncWriteTx, BATCH, BatchTx, Link, MsgRx, MsgTx, SendBatch, SendWith, Setup, arg,
    copy_whole, message, runtime, stamp, stdio_fds, whole,
};

/// A socket kind and who drives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Unix stream socket, libc `write`/`read` (floor).
    UdsStreamRaw,
    /// Unix stream socket with `FramedWriter`/`FramedReader`.
    UdsStreamFramed,
    /// Unix seqpacket socket, libc `send`/`recv` (floor).
    SeqpacketRaw,
    /// `ipc_socket::Seqpacket`.
    Seqpacket,
    /// Unix datagram socket, libc `send`/`recv` (floor).
    DatagramRaw,
    /// `ipc_socket::Datagram`.
    Datagram,
    /// TCP over loopback with `TCP_NODELAY` and 4 MiB socket buffers (as bulk senders tune
    /// them; with the defaults, loopback TCP falls into a 4× slower mode on some
    /// connections, at random), libc `write`/`read` (floor).
    TcpRaw,
    /// TCP over loopback with `FramedWriter`/`FramedReader`.
    TcpFramed,
    /// UDP over loopback, libc `send`/`recv` (floor).
    UdpRaw,
    /// UDP with std's `send` and `UdpSocketExt::recv_from_checked`.
    Udp,
    /// Unix datagram socket, `tokio::net::UnixDatagram` on a current-thread runtime: the
    /// baseline of the async rows.
    DatagramTokio,
    /// `ipc_socket::Datagram` through `Async` on a current-thread runtime.
    DatagramAsync,
    /// Unix stream socket, `tokio::net::UnixStream` (`write_all`/`read_exact`) on a
    /// current-thread runtime: the baseline of the async stream rows.
    StreamTokio,
    /// std's `UnixStream` through `Async` (`AsyncWrite`/`AsyncRead`) on a current-thread
    /// runtime.
    StreamAsync,
    /// `Seqpacket::send_batch`/`recv_batch`, `BATCH` messages a call (throughput only,
    /// compared with `Seqpacket`'s one message a call).
    SeqpacketBatch,
    /// `Datagram::send_batch`/`recv_batch`, as `SeqpacketBatch`.
    DatagramBatch,
}

impl Flavour {
    /// Every flavour, floors first within each kind.
    pub const ALL: [Flavour; 16] = [
        Flavour::UdsStreamRaw,
        Flavour::UdsStreamFramed,
        Flavour::SeqpacketRaw,
        Flavour::Seqpacket,
        Flavour::DatagramRaw,
        Flavour::Datagram,
        Flavour::TcpRaw,
        Flavour::TcpFramed,
        Flavour::UdpRaw,
        Flavour::Udp,
        Flavour::DatagramTokio,
        Flavour::DatagramAsync,
        Flavour::StreamTokio,
        Flavour::StreamAsync,
        Flavour::SeqpacketBatch,
        Flavour::DatagramBatch,
    ];

    /// The short name used on the command line of the peer.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::UdsStreamRaw => "uds-stream-raw",
            Flavour::UdsStreamFramed => "uds-stream-framed",
            Flavour::SeqpacketRaw => "seqpacket-raw",
            Flavour::Seqpacket => "seqpacket",
            Flavour::DatagramRaw => "dgram-raw",
            Flavour::Datagram => "dgram",
            Flavour::TcpRaw => "tcp-raw",
            Flavour::TcpFramed => "tcp-framed",
            Flavour::UdpRaw => "udp-raw",
            Flavour::Udp => "udp",
            Flavour::DatagramTokio => "dgram-tokio",
            Flavour::DatagramAsync => "dgram-async",
            Flavour::StreamTokio => "uds-stream-tokio",
            Flavour::StreamAsync => "uds-stream-async",
            Flavour::SeqpacketBatch => "seqpacket-batch",
            Flavour::DatagramBatch => "dgram-batch",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::UdsStreamRaw => "UDS stream: libc write/read (floor)",
            Flavour::UdsStreamFramed => "UDS stream: FramedReader/FramedWriter",
            Flavour::SeqpacketRaw => "UDS seqpacket: libc send/recv (floor)",
            Flavour::Seqpacket => "UDS seqpacket: Seqpacket",
            Flavour::DatagramRaw => "UDS datagram: libc send/recv (floor)",
            Flavour::Datagram => "UDS datagram: Datagram",
            Flavour::TcpRaw => "TCP loopback: libc write/read (floor)",
            Flavour::TcpFramed => "TCP loopback: FramedReader/FramedWriter",
            Flavour::UdpRaw => "UDP loopback: libc send/recv (floor)",
            Flavour::Udp => "UDP loopback: send/recv_from_checked",
            Flavour::DatagramTokio => "UDS datagram: tokio UnixDatagram (async baseline)",
            Flavour::DatagramAsync => "UDS datagram: Async<Datagram> on tokio",
            Flavour::StreamTokio => "UDS stream: tokio UnixStream (async baseline)",
            Flavour::StreamAsync => "UDS stream: Async<UnixStream> on tokio",
            Flavour::SeqpacketBatch => "UDS seqpacket: send_batch/recv_batch, 32 a call",
            Flavour::DatagramBatch => "UDS datagram: send_batch/recv_batch, 32 a call",
        }
    }

    /// The floor this flavour is compared with (itself for a floor).
    pub fn floor(self) -> Flavour {
        match self {
            Flavour::UdsStreamFramed => Flavour::UdsStreamRaw,
            Flavour::Seqpacket => Flavour::SeqpacketRaw,
            Flavour::Datagram => Flavour::DatagramRaw,
            Flavour::TcpFramed => Flavour::TcpRaw,
            Flavour::Udp => Flavour::UdpRaw,
            Flavour::DatagramAsync => Flavour::DatagramTokio,
            Flavour::StreamAsync => Flavour::StreamTokio,
            // What batching gains over one message a call.
            Flavour::SeqpacketBatch => Flavour::Seqpacket,
            Flavour::DatagramBatch => Flavour::Datagram,
            floor => floor,
        }
    }

    /// The largest message this kind carries in one piece: message sockets are limited by
    /// their send buffer (about 200 KiB by default) and UDP by its 64 KiB datagrams.
    pub fn max_message(self) -> usize {
        match self {
            Flavour::SeqpacketRaw
            | Flavour::Seqpacket
            | Flavour::DatagramRaw
            | Flavour::Datagram
            | Flavour::DatagramTokio
            | Flavour::DatagramAsync => 64 * 1024,
            // Measured where batching matters: small and page-sized messages.
            Flavour::SeqpacketBatch | Flavour::DatagramBatch => 4 * 1024,
            Flavour::UdpRaw | Flavour::Udp => 60 * 1024,
            _ => usize::MAX,
        }
    }

    /// Whether this is an async row, compared with tokio's own type.
    pub fn is_async(self) -> bool {
        matches!(self, Flavour::DatagramAsync | Flavour::StreamAsync)
    }

    /// Whether this is a batch row: measured for throughput only (a batching sender
    /// holds messages back, which a round trip cannot).
    pub fn is_batch(self) -> bool {
        matches!(self, Flavour::SeqpacketBatch | Flavour::DatagramBatch)
    }

    pub(crate) fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "socket", Flavour::name)
    }
}

/// libc `send` of whole messages on a message socket, without `SIGPIPE`.
struct RawMsgTx(OwnedFd, Vec<u8>);

impl MsgTx for RawMsgTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        loop {
            match nix::sys::socket::send(self.0.as_raw_fd(), &self.1, MsgFlags::MSG_NOSIGNAL) {
                Err(nix::errno::Errno::EINTR) => {}
                other => return other.map(drop).map_err(|e| Error::from_errno("send", e)),
            }
        }
    }
}

/// libc `recv` of whole messages; a zero-length read is end of stream.
struct RawMsgRx(OwnedFd);

impl MsgRx for RawMsgRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        loop {
            match nix::sys::socket::recv(self.0.as_raw_fd(), buf, MsgFlags::empty()) {
                Ok(0) => return Ok(false),
                Ok(n) => return whole(n, buf),
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => return Err(Error::from_errno("recv", errno)),
            }
        }
    }
}

/// A Seqpacket or Datagram through `MessageSender`/`MessageReceiver`.
struct MessageTx<S: ipc_core::MessageSender>(S, Vec<u8>);

impl<S: ipc_core::MessageSender> MsgTx for MessageTx<S> {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        self.0.send(&self.1)
    }
}

struct MessageRx<R: ipc_core::MessageReceiver>(R);

impl<R: ipc_core::MessageReceiver> MsgRx for MessageRx<R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.0.recv(buf) {
            Ok(n) => whole(n, buf),
            Err(err) if err.is_peer_gone() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// A message socket's batch receive.
trait Batching {
    fn recv_batch(&self, batch: &mut RecvBatch) -> Result<usize>;
}

impl Batching for Seqpacket {
    fn recv_batch(&self, batch: &mut RecvBatch) -> Result<usize> {
        Seqpacket::recv_batch(self, batch)
    }
}

impl Batching for Datagram {
    fn recv_batch(&self, batch: &mut RecvBatch) -> Result<usize> {
        Datagram::recv_batch(self, batch)
    }
}

impl SendBatch for Seqpacket {
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        Seqpacket::send_batch(self, msgs)
    }
}

impl SendBatch for Datagram {
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        Datagram::send_batch(self, msgs)
    }
}

/// Receives `BATCH` messages a call at most and hands them out one at a time.
struct BatchRx<S: Batching> {
    socket: S,
    batch: RecvBatch,
    next: usize,
}

impl<S: Batching> MsgRx for BatchRx<S> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        if self.next == self.batch.len() {
            match self.socket.recv_batch(&mut self.batch) {
                Ok(_) => self.next = 0,
                Err(err) if err.is_peer_gone() => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        let msg = self.batch.get(self.next).unwrap_or_default();
        self.next += 1;
        copy_whole(msg, buf)
    }
}

/// std's `UdpSocket::send` on a connected socket.
fn udp_tx(socket: UdpSocket, buf: Vec<u8>) -> Box<dyn MsgTx> {
    Box::new(SendWith(
        move |msg: &[u8]| {
            socket
                .send(msg)
                .map(drop)
                .map_err(|e| Error::from(e).with_op("send"))
        },
        buf,
    ))
}

/// `recv_from_checked` into a buffer as large as any datagram, as a receiver that cannot
/// know the size of the next datagram sets it up.
struct UdpRx(UdpSocket, Vec<u8>);

impl MsgRx for UdpRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let (n, _) = self.0.recv_from_checked(&mut self.1)?;
        copy_whole(&self.1[..n], buf)
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd> {
    fd.try_clone().map_err(|e| Error::from(e).with_op("dup"))
}

/// The link over one connected socket of `flavour` (a Unix socket or a TCP stream).
fn link(flavour: Flavour, fd: OwnedFd, size: usize) -> Result<Link> {
    let buf = message(size);
    Ok(match flavour {
        Flavour::UdsStreamRaw | Flavour::TcpRaw => Link {
            tx: Box::new(RawTx(dup(&fd)?, buf)),
            rx: Box::new(RawRx(fd)),
        },
        Flavour::SeqpacketRaw | Flavour::DatagramRaw | Flavour::UdpRaw => Link {
            tx: Box::new(RawMsgTx(dup(&fd)?, buf)),
            rx: Box::new(RawMsgRx(fd)),
        },
        Flavour::UdsStreamFramed => {
            let tx = FramedWriter::new(UnixStream::from(dup(&fd)?)).with_max_message_size(size);
            let rx = FramedReader::new(UnixStream::from(fd)).with_max_message_size(size);
            Link {
                tx: Box::new(FramedTx(tx, buf)),
                rx: Box::new(FramedRx(rx)),
            }
        }
        Flavour::TcpFramed => {
            let tx = FramedWriter::new(TcpStream::from(dup(&fd)?)).with_max_message_size(size);
            let rx = FramedReader::new(TcpStream::from(fd)).with_max_message_size(size);
            Link {
                tx: Box::new(FramedTx(tx, buf)),
                rx: Box::new(FramedRx(rx)),
            }
        }
        // The message size is known, so the maximum is set to it, as a program that
        // knows its messages would: receives then need no size check first.
        Flavour::Seqpacket => Link {
            tx: Box::new(MessageTx(
                Seqpacket::from(dup(&fd)?).with_max_message_size(size),
                buf,
            )),
            rx: Box::new(MessageRx(Seqpacket::from(fd).with_max_message_size(size))),
        },
        Flavour::Datagram => Link {
            tx: Box::new(MessageTx(
                Datagram::from(dup(&fd)?).with_max_message_size(size),
                buf,
            )),
            rx: Box::new(MessageRx(Datagram::from(fd).with_max_message_size(size))),
        },
        Flavour::SeqpacketBatch => Link {
            tx: Box::new(BatchTx::new(
                Seqpacket::from(dup(&fd)?).with_max_message_size(size),
                size,
            )),
            rx: Box::new(BatchRx {
                socket: Seqpacket::from(fd).with_max_message_size(size),
                batch: RecvBatch::new(BATCH, size),
                next: 0,
            }),
        },
        Flavour::DatagramBatch => Link {
            tx: Box::new(BatchTx::new(
                Datagram::from(dup(&fd)?).with_max_message_size(size),
                size,
            )),
            rx: Box::new(BatchRx {
                socket: Datagram::from(fd).with_max_message_size(size),
                batch: RecvBatch::new(BATCH, size),
                next: 0,
            }),
        },
        Flavour::Udp => Link {
            tx: udp_tx(UdpSocket::from(dup(&fd)?), buf),
            rx: Box::new(UdpRx(UdpSocket::from(fd), vec![0; 64 * 1024])),
        },
        Flavour::DatagramTokio => {
            let runtime = runtime()?;
            let socket = {
                let _entered = runtime.enter();
                let std = std::os::unix::net::UnixDatagram::from(fd);
                std.set_nonblocking(true).map_err(Error::from)?;
                tokio::net::UnixDatagram::from_std(std).map_err(Error::from)?
            };
            let shared = Rc::new((runtime, socket));
            Link {
                tx: Box::new(TokioTx(Rc::clone(&shared), buf)),
                rx: Box::new(TokioRx(shared)),
            }
        }
        Flavour::StreamTokio => {
            let runtime = Rc::new(runtime()?);
            let (tx, rx) = {
                let _entered = runtime.enter();
                let tokio = |fd: OwnedFd| -> Result<tokio::net::UnixStream> {
                    let std = UnixStream::from(fd);
                    std.set_nonblocking(true).map_err(Error::from)?;
                    tokio::net::UnixStream::from_std(std).map_err(Error::from)
                };
                (tokio(dup(&fd)?)?, tokio(fd)?)
            };
            Link {
                tx: Box::new(AsyncWriteTx(Rc::clone(&runtime), tx, buf)),
                rx: Box::new(AsyncReadRx(runtime, rx)),
            }
        }
        Flavour::StreamAsync => {
            let runtime = Rc::new(runtime()?);
            let tx = Async::new(UnixStream::from(dup(&fd)?));
            let rx = Async::new(UnixStream::from(fd));
            Link {
                tx: Box::new(AsyncWriteTx(Rc::clone(&runtime), tx, buf)),
                rx: Box::new(AsyncReadRx(runtime, rx)),
            }
        }
        Flavour::DatagramAsync => {
            let runtime = Rc::new(runtime()?);
            let tx = Datagram::from(dup(&fd)?).with_max_message_size(size);
            let rx = Datagram::from(fd).with_max_message_size(size);
            Link {
                tx: Box::new(AsyncTx(Rc::clone(&runtime), Async::new(tx), buf)),
                rx: Box::new(AsyncRx(runtime, Async::new(rx))),
            }
        }
    })
}

/// tokio's `UnixDatagram::send`, awaited.
struct TokioTx(
    Rc<(tokio::runtime::Runtime, tokio::net::UnixDatagram)>,
    Vec<u8>,
);

impl MsgTx for TokioTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        let (runtime, socket) = &*self.0;
        runtime
            .block_on(socket.send(&self.1))
            .map(drop)
            .map_err(|e| Error::from(e).with_op("send"))
    }
}

/// tokio's `UnixDatagram::recv`, awaited.
struct TokioRx(Rc<(tokio::runtime::Runtime, tokio::net::UnixDatagram)>);

impl MsgRx for TokioRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let (runtime, socket) = &*self.0;
        match runtime.block_on(socket.recv(buf)) {
            Ok(0) => Ok(false),
            Ok(n) => whole(n, buf),
            Err(err) => Err(Error::from(err).with_op("recv")),
        }
    }
}

/// `Datagram::try_send` through `Async::write_with`, awaited.
struct AsyncTx(Rc<tokio::runtime::Runtime>, Async<Datagram>, Vec<u8>);

impl MsgTx for AsyncTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.2, seq);
        let (runtime, socket, msg) = (&self.0, &mut self.1, &self.2);
        runtime.block_on(socket.write_with(|s| ipc_core::MessageSender::try_send(s, msg)))
    }
}

/// `Datagram::try_recv` through `Async::read_with`, awaited.
struct AsyncRx(Rc<tokio::runtime::Runtime>, Async<Datagram>);

impl MsgRx for AsyncRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let (runtime, socket) = (&self.0, &mut self.1);
        match runtime.block_on(socket.read_with(|s| ipc_core::MessageReceiver::try_recv(s, buf))) {
            Ok(n) => whole(n, buf),
            Err(err) if err.is_peer_gone() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

fn kind(flavour: Flavour) -> Option<SockType> {
    match flavour {
        Flavour::UdsStreamRaw
        | Flavour::UdsStreamFramed
        | Flavour::StreamTokio
        | Flavour::StreamAsync => Some(SockType::Stream),
        Flavour::SeqpacketRaw | Flavour::Seqpacket | Flavour::SeqpacketBatch => {
            Some(SockType::SeqPacket)
        }
        Flavour::DatagramRaw
        | Flavour::Datagram
        | Flavour::DatagramBatch
        | Flavour::DatagramTokio
        | Flavour::DatagramAsync => Some(SockType::Datagram),
        _ => None,
    }
}

/// Big kernel buffers for UDP, so that a burst is queued rather than dropped (UDP has no
/// flow control); as root the system maximum does not apply (`SO_RCVBUFFORCE`).
fn big_buffers(socket: &UdpSocket) {
    let _ = nix::sys::socket::setsockopt(socket, sockopt::RcvBufForce, &(256 << 20));
    let _ = nix::sys::socket::setsockopt(socket, sockopt::SndBufForce, &(4 << 20));
}

/// The parent's side: a socketpair whose other end is the peer's stdin, or a TCP or UDP
/// socket whose address the peer gets as an argument.
pub(crate) fn setup(flavour: Flavour, size: usize, _capacity: usize) -> Result<Setup> {
    if let Some(kind) = kind(flavour) {
        let (ours, theirs) =
            nix::sys::socket::socketpair(AddressFamily::Unix, kind, None, SockFlag::SOCK_CLOEXEC)
                .map_err(|e| Error::from_errno("socketpair", e))?;
        return Ok(Setup {
            stdin: Stdio::from(theirs),
            stdout: Stdio::null(),
            args: Vec::new(),
            finish: Box::new(move || link(flavour, ours, size)),
        });
    }
    let loopback = "127.0.0.1:0";
    if matches!(flavour, Flavour::TcpRaw | Flavour::TcpFramed) {
        let acceptor = TcpOptions::new()
            .nodelay(true)
            .send_buffer(4 << 20)
            .recv_buffer(4 << 20)
            .listen(loopback)?;
        let addr = acceptor.local_addr()?;
        return Ok(Setup {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            args: vec![addr.to_string()],
            finish: Box::new(move || {
                let (stream, _) = acceptor.accept_timeout(std::time::Duration::from_secs(10))?;
                link(flavour, OwnedFd::from(stream), size)
            }),
        });
    }
    let socket = UdpSocket::bind(loopback).map_err(|e| Error::from(e).with_op("bind"))?;
    big_buffers(&socket);
    let addr = socket
        .local_addr()
        .map_err(|e| Error::from(e).with_op("getsockname"))?;
    Ok(Setup {
        stdin: Stdio::null(),
        stdout: Stdio::null(),
        args: vec![addr.to_string()],
        finish: Box::new(move || {
            // The peer says hello first, so that this side learns where it is.
            let mut hello = [0u8; 8];
            let (_, peer) =
                socket.recv_from_timeout(&mut hello, std::time::Duration::from_secs(10))?;
            socket
                .connect(peer)
                .map_err(|e| Error::from(e).with_op("connect"))?;
            link(flavour, OwnedFd::from(socket), size)
        }),
    })
}

/// The peer's side: its stdin for Unix sockets, or a connection to the address given.
pub(crate) fn peer_link(flavour: Flavour, size: usize, args: &[String]) -> Result<Link> {
    if kind(flavour).is_some() {
        let (input, _) = stdio_fds()?;
        return link(flavour, input, size);
    }
    let addr: std::net::SocketAddr = arg(args, 0)?.parse().map_err(|_| {
        Error::new(
            "peer",
            std::io::ErrorKind::InvalidInput,
            "not a socket address",
        )
    })?;
    if matches!(flavour, Flavour::TcpRaw | Flavour::TcpFramed) {
        let stream = TcpOptions::new()
            .nodelay(true)
            .send_buffer(4 << 20)
            .recv_buffer(4 << 20)
            .connect(addr)?;
        return link(flavour, OwnedFd::from(stream), size);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| Error::from(e).with_op("bind"))?;
    big_buffers(&socket);
    socket
        .connect(addr)
        .map_err(|e| Error::from(e).with_op("connect"))?;
    socket
        .send(b"hello!!!")
        .map_err(|e| Error::from(e).with_op("send"))?;
    link(flavour, OwnedFd::from(socket), size)
}

crate::transport::benchmarked!(
    "socket",
    setup: |f, size, capacity| setup(f, size, capacity),
    peer: |f, size, args| peer_link(f, size, args),
);
