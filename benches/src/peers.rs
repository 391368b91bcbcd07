//! Other Rust IPC crates on the same work, for `cargo xtask bench --peers` (feature
//! `peers`, so that the default build does not compile them): iceoryx2's
//! publish-subscribe (copying into a loaned sample, polling the subscriber), ipc-channel's
//! byte channels and interprocess's local-socket streams. Each is used as its
//! documentation shows; the report compares the nearest ipc-rs mechanism with it.

use std::io::{Read, Write};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use interprocess::TryClone;
use interprocess::local_socket::{GenericNamespaced, ListenerOptions, Stream, prelude::*};
use ipc_channel::ipc::{IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use ipc_core::{Error, Result};

use crate::transport::{Link, MsgRx, MsgTx, SendWith, Setup, arg, copy_whole, message, stamp};

/// Which crate, used how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// iceoryx2 publish-subscribe of `[u8]` samples, a publisher and a subscriber per
    /// direction, no overflow (the publisher retries until delivered), busy polling.
    Iceoryx2,
    /// ipc-channel's `IpcBytesSender`/`IpcBytesReceiver` (a Unix socket underneath).
    IpcChannel,
    /// interprocess's local-socket `Stream`, `write_all`/`read_exact` of each message.
    Interprocess,
}

impl Flavour {
    /// Every flavour.
    pub const ALL: [Flavour; 3] = [
        Flavour::Iceoryx2,
        Flavour::IpcChannel,
        Flavour::Interprocess,
    ];

    /// The name on a peer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Iceoryx2 => "iceoryx2",
            Flavour::IpcChannel => "ipc-channel",
            Flavour::Interprocess => "interprocess",
        }
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::Iceoryx2 => "peer: iceoryx2 publish-subscribe, copy, polling",
            Flavour::IpcChannel => "peer: ipc-channel bytes channel",
            Flavour::Interprocess => "peer: interprocess local-socket stream",
        }
    }

    /// The largest message measured.
    pub fn max_message(self) -> usize {
        64 * 1024
    }

    /// Parses [`Flavour::name`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unknown name.
    pub fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "peer", Flavour::name)
    }
}

/// A peer crate's error, named after the call that failed.
fn failed(op: &'static str, err: impl std::fmt::Display) -> Error {
    Error::new(op, std::io::ErrorKind::Other, err.to_string())
}

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// A node and the publisher of one service, the subscriber of the other.
struct Iceoryx2End {
    _node: Node<ipc::Service>,
    publisher: Pub,
    subscriber: Sub,
    buf: Vec<u8>,
}

impl Iceoryx2End {
    fn open(publish_to: &str, subscribe_to: &str, size: usize) -> Result<Iceoryx2End> {
        set_log_level(LogLevel::Error);
        // Samples each subscriber may hold queued: as many as the channel's ring holds, so
        // both run as far ahead on the same memory footprint.
        let depth = crate::channels::ring_depth(size);
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .map_err(|e| failed("NodeBuilder::create", e))?;
        let service = |name: &str| {
            let name: ServiceName = name
                .try_into()
                .map_err(|e| failed("ServiceName::try_from", e))?;
            node.service_builder(&name)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .history_size(0)
                .subscriber_max_buffer_size(depth)
                .open_or_create()
                .map_err(|e| failed("publish_subscribe::open_or_create", e))
        };
        let publisher = service(publish_to)?
            .publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| failed("publisher_builder::create", e))?;
        let subscriber = service(subscribe_to)?
            .subscriber_builder()
            .buffer_size(depth)
            .create()
            .map_err(|e| failed("subscriber_builder::create", e))?;
        Ok(Iceoryx2End {
            _node: node,
            publisher,
            subscriber,
            buf: message(size),
        })
    }
}

impl MsgTx for Iceoryx2End {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.buf, seq);
        // Until the other side's subscriber is connected a sample reaches nobody: send
        // again (only the first message of a run can meet that).
        loop {
            let sample = self
                .publisher
                .loan_slice_uninit(self.buf.len())
                .map_err(|e| failed("loan_slice_uninit", e))?
                .write_from_slice(&self.buf);
            if sample.send().map_err(|e| failed("send", e))? > 0 {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
}

impl MsgRx for Iceoryx2End {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        loop {
            if let Some(sample) = self
                .subscriber
                .receive()
                .map_err(|e| failed("receive", e))?
            {
                return copy_whole(sample.payload(), buf);
            }
            std::hint::spin_loop();
        }
    }
}

/// Both directions go through one end: its publisher sends, its subscriber receives.
/// `Link` wants two boxes, so the end is shared.
struct Shared<T>(std::rc::Rc<std::cell::RefCell<T>>);

impl<T: MsgTx> MsgTx for Shared<T> {
    fn send(&mut self, seq: u64) -> Result<()> {
        self.0.borrow_mut().send(seq)
    }
}

impl<T: MsgRx> MsgRx for Shared<T> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        self.0.borrow_mut().recv(buf)
    }
}

fn shared_link<T: MsgTx + MsgRx + 'static>(end: T) -> Link {
    let end = std::rc::Rc::new(std::cell::RefCell::new(end));
    Link {
        tx: Box::new(Shared(std::rc::Rc::clone(&end))),
        rx: Box::new(Shared(end)),
    }
}

/// ipc-channel's sender of bytes.
fn ipc_channel_tx(tx: IpcBytesSender, size: usize) -> Box<dyn MsgTx> {
    Box::new(SendWith(
        move |msg: &[u8]| {
            tx.send(msg)
                .map_err(|e| Error::from(e).with_op("IpcBytesSender::send"))
        },
        message(size),
    ))
}

struct IpcChannelRx(IpcBytesReceiver);

impl MsgRx for IpcChannelRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.0.recv() {
            Ok(msg) => copy_whole(&msg, buf),
            Err(ipc_channel::IpcError::Disconnected) => Ok(false),
            Err(e) => Err(failed("IpcBytesReceiver::recv", e)),
        }
    }
}

/// Both directions over interprocess's local-socket stream, messages written whole.
fn stream_link(mut stream: Stream, size: usize) -> Result<Link> {
    let reader = stream
        .try_clone()
        .map_err(|e| Error::from(e).with_op("Stream::try_clone"))?;
    let tx = SendWith(
        move |msg: &[u8]| {
            stream
                .write_all(msg)
                .map_err(|e| Error::from(e).with_op("Stream::write_all"))
        },
        message(size),
    );
    Ok(Link {
        tx: Box::new(tx),
        rx: Box::new(StreamRx(reader)),
    })
}

struct StreamRx(Stream);

impl MsgRx for StreamRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.0.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::from(e).with_op("Stream::read_exact")),
        }
    }
}

/// A name for this setup's services or socket, unique on the machine.
fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcrs-bench-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn setup(flavour: Flavour, size: usize) -> Result<Setup> {
    let size = size.max(8);
    let (args, finish): (Vec<String>, Box<dyn FnOnce() -> Result<Link>>) = match flavour {
        Flavour::Iceoryx2 => {
            let (to_peer, from_peer) = (unique("iox2-to"), unique("iox2-from"));
            let end = Iceoryx2End::open(&to_peer, &from_peer, size)?;
            (
                vec![to_peer, from_peer],
                Box::new(move || Ok(shared_link(end))),
            )
        }
        Flavour::IpcChannel => {
            let (server, name) = IpcOneShotServer::<(IpcBytesSender, IpcBytesReceiver)>::new()
                .map_err(|e| Error::from(e).with_op("IpcOneShotServer::new"))?;
            // The peer makes both channels and sends this side its halves.
            let finish = move || {
                let (_, (tx, rx)) = server
                    .accept()
                    .map_err(|e| failed("IpcOneShotServer::accept", e))?;
                Ok(Link {
                    tx: ipc_channel_tx(tx, size),
                    rx: Box::new(IpcChannelRx(rx)),
                })
            };
            (vec![name], Box::new(finish))
        }
        Flavour::Interprocess => {
            let name = unique("interprocess");
            let listener = ListenerOptions::new()
                .name(
                    name.as_str()
                        .to_ns_name::<GenericNamespaced>()
                        .map_err(|e| Error::from(e).with_op("to_ns_name"))?,
                )
                .create_sync()
                .map_err(|e| Error::from(e).with_op("ListenerOptions::create_sync"))?;
            let finish = move || {
                let stream = listener
                    .accept()
                    .map_err(|e| Error::from(e).with_op("Listener::accept"))?;
                stream_link(stream, size)
            };
            (vec![name], Box::new(finish))
        }
    };
    Ok(Setup {
        stdin: std::process::Stdio::null(),
        stdout: std::process::Stdio::null(),
        args,
        finish,
    })
}

fn peer_link(flavour: Flavour, size: usize, args: &[String]) -> Result<Link> {
    let size = size.max(8);
    match flavour {
        Flavour::Iceoryx2 => {
            let end = Iceoryx2End::open(arg(args, 1)?, arg(args, 0)?, size)?;
            Ok(shared_link(end))
        }
        Flavour::IpcChannel => {
            let bootstrap =
                IpcSender::<(IpcBytesSender, IpcBytesReceiver)>::connect(arg(args, 0)?.to_owned())
                    .map_err(|e| Error::from(e).with_op("IpcSender::connect"))?;
            let (to_peer_tx, to_peer_rx) = ipc_channel::ipc::bytes_channel()
                .map_err(|e| Error::from(e).with_op("bytes_channel"))?;
            let (from_peer_tx, from_peer_rx) = ipc_channel::ipc::bytes_channel()
                .map_err(|e| Error::from(e).with_op("bytes_channel"))?;
            bootstrap
                .send((to_peer_tx, from_peer_rx))
                .map_err(|e| failed("IpcSender::send", e))?;
            Ok(Link {
                tx: ipc_channel_tx(from_peer_tx, size),
                rx: Box::new(IpcChannelRx(to_peer_rx)),
            })
        }
        Flavour::Interprocess => {
            let name = arg(args, 0)?
                .to_ns_name::<GenericNamespaced>()
                .map_err(|e| Error::from(e).with_op("to_ns_name"))?;
            let stream =
                Stream::connect(name).map_err(|e| Error::from(e).with_op("Stream::connect"))?;
            stream_link(stream, size)
        }
    }
}

crate::transport::benchmarked!(
    "peer",
    setup: |f, size, _| setup(f, size),
    peer: |f, size, args| peer_link(f, size, args),
);
