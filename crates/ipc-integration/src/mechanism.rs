//! The message-oriented mechanisms of ipc-rs, set up the same way across two processes:
//! the receiver listens (and owns every name), the sender connects by address.

use std::path::Path;
use std::time::Duration;

use ipc_core::{
    Error, FramedReader, FramedWriter, IpcName, MessageReceiver, MessageSender, Result,
};
use ipc_mq::{Direction, QueueOptions};
use ipc_pipe::Fifo;
use ipc_shm::ChannelOptions;
use ipc_socket::{Datagram, Seqpacket, SeqpacketListener, StreamListener, UnixAddr};

/// The largest message of the scenarios: small enough for every mechanism's defaults.
pub const MAX_MESSAGE: usize = 1024;

/// A mechanism that carries whole messages between processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// An anonymous pipe with length-prefixed frames; the sender opens its end through
    /// `/proc/<receiver>/fd/<n>`.
    Pipe,
    /// A FIFO with length-prefixed frames.
    Fifo,
    /// A Unix stream socket with length-prefixed frames.
    UdsStream,
    /// A Unix seqpacket socket.
    Seqpacket,
    /// A Unix datagram socket.
    Datagram,
    /// A shared-memory channel.
    ShmChannel,
    /// A POSIX message queue.
    Queue,
}

impl Mechanism {
    /// Every mechanism.
    pub const ALL: [Mechanism; 7] = [
        Mechanism::Pipe,
        Mechanism::Fifo,
        Mechanism::UdsStream,
        Mechanism::Seqpacket,
        Mechanism::Datagram,
        Mechanism::ShmChannel,
        Mechanism::Queue,
    ];

    /// A short name, for command lines and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Fifo => "fifo",
            Mechanism::UdsStream => "uds-stream",
            Mechanism::Seqpacket => "seqpacket",
            Mechanism::Datagram => "datagram",
            Mechanism::ShmChannel => "shm-channel",
            Mechanism::Queue => "mq",
        }
    }

    /// The mechanism named `name`.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the receiver learns that the sender has gone (end of stream, peer gone);
    /// datagrams and queues have no connection.
    pub fn reports_end(self) -> bool {
        matches!(
            self,
            Mechanism::Pipe
                | Mechanism::Fifo
                | Mechanism::UdsStream
                | Mechanism::Seqpacket
                | Mechanism::ShmChannel
        )
    }

    fn channel() -> ChannelOptions {
        ChannelOptions::new()
            .capacity(64 * 1024)
            .max_message_size(MAX_MESSAGE)
            .timeout(Duration::from_secs(10))
    }

    fn queue() -> QueueOptions {
        QueueOptions::new()
            .capacity(10)
            .max_message_size(MAX_MESSAGE)
    }

    /// Sets up the receiving side: a path in `dir` or the name `name`, which the returned
    /// [`Listening`] owns (and removes when dropped).
    ///
    /// # Errors
    ///
    /// The mechanism's error.
    pub fn listen(self, dir: &Path, name: &IpcName) -> Result<Listening> {
        let path = dir.join(format!("{}.{}", &name.as_str()[1..], self.name()));
        if self == Mechanism::Pipe {
            let (reader, writer) = ipc_pipe::pipe()?;
            use std::os::fd::AsRawFd;
            return Ok(Listening {
                mechanism: self,
                address: format!("/proc/{}/fd/{}", std::process::id(), writer.as_raw_fd()),
                state: Some(State::Pipe {
                    reader: Some(reader),
                    writer: Some(writer),
                }),
            });
        }
        let address = match self {
            Mechanism::ShmChannel | Mechanism::Queue => name.as_str().to_owned(),
            _ => path.to_string_lossy().into_owned(),
        };
        let state = match self {
            Mechanism::Pipe => unreachable!("made above"),
            // The reader opens now (it never blocks), so that the writer finds it.
            Mechanism::Fifo => {
                let fifo = Fifo::create(&path)?;
                let reader = fifo.open_reader()?;
                State::Fifo {
                    _fifo: fifo,
                    reader: Some(reader),
                }
            }
            Mechanism::UdsStream => State::Stream(StreamListener::bind(&UnixAddr::path(&path))?),
            Mechanism::Seqpacket => {
                State::Seqpacket(SeqpacketListener::bind(&UnixAddr::path(&path))?)
            }
            Mechanism::Datagram => State::Datagram(Datagram::bind(&UnixAddr::path(&path))?),
            Mechanism::ShmChannel => State::Shm(Box::new(Self::channel().create_consumer(name)?)),
            Mechanism::Queue => State::Queue(Self::queue().create(name)?),
        };
        Ok(Listening {
            mechanism: self,
            address,
            state: Some(state),
        })
    }

    /// The sending side, in another process, from [`Listening::address`].
    ///
    /// # Errors
    ///
    /// The mechanism's error (the receiver not listening, for one).
    pub fn connect(self, address: &str) -> Result<Box<dyn MessageSender>> {
        let timeout = Duration::from_secs(10);
        Ok(match self {
            Mechanism::Pipe => {
                let end = std::fs::OpenOptions::new()
                    .write(true)
                    .open(address)
                    .map_err(|e| {
                        Error::from(e)
                            .with_op("open")
                            .with_subject(address.to_owned())
                    })?;
                let writer = ipc_pipe::PipeWriter::from(std::os::fd::OwnedFd::from(end));
                Box::new(FramedWriter::new(writer).with_max_message_size(MAX_MESSAGE))
            }
            Mechanism::Fifo => {
                let writer = Fifo::open(address)?.open_writer_timeout(timeout)?;
                Box::new(FramedWriter::new(writer).with_max_message_size(MAX_MESSAGE))
            }
            Mechanism::UdsStream => {
                let stream = ipc_socket::connect_stream_timeout(&UnixAddr::path(address), timeout)?;
                Box::new(FramedWriter::new(stream).with_max_message_size(MAX_MESSAGE))
            }
            Mechanism::Seqpacket => Box::new(
                Seqpacket::connect_timeout(&UnixAddr::path(address), timeout)?
                    .with_max_message_size(MAX_MESSAGE),
            ),
            Mechanism::Datagram => {
                let socket = Datagram::unbound()?.with_max_message_size(MAX_MESSAGE);
                socket.connect(&UnixAddr::path(address))?;
                Box::new(socket)
            }
            Mechanism::ShmChannel => {
                Box::new(Self::channel().open_producer(&IpcName::new(address)?)?)
            }
            Mechanism::Queue => {
                Box::new(Self::queue().open(&IpcName::new(address)?, Direction::Send)?)
            }
        })
    }
}

enum State {
    /// The pipe's write end is kept until the sender has opened its own, then closed, so
    /// that the sender's death ends the stream.
    Pipe {
        reader: Option<ipc_pipe::PipeReader>,
        writer: Option<ipc_pipe::PipeWriter>,
    },
    /// The FIFO is kept for its path, which it removes on drop.
    Fifo {
        _fifo: Fifo,
        reader: Option<ipc_pipe::PipeReader>,
    },
    Stream(StreamListener),
    Seqpacket(SeqpacketListener),
    Datagram(Datagram),
    Shm(Box<ipc_shm::Consumer>),
    Queue(ipc_mq::MessageQueue),
}

/// The receiving side of a mechanism, set up and waiting for its sender.
pub struct Listening {
    mechanism: Mechanism,
    address: String,
    state: Option<State>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("mechanism", &self.mechanism)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Listening {
    /// What the sender connects to: a path or a name.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The receiver: for a connection-oriented mechanism, once the sender has connected
    /// (waiting at most `timeout`). The name or path stays owned by the caller's
    /// `Listening` for FIFOs and listeners, and moves with the receiver otherwise.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no sender connected; the mechanism's error; an error if called twice
    /// for a mechanism whose receiver is the listening object itself.
    pub fn accept(&mut self, timeout: Duration) -> Result<Box<dyn MessageReceiver>> {
        let used = || {
            Error::new(
                "accept",
                std::io::ErrorKind::Other,
                "the receiver was taken already",
            )
        };
        Ok(match self.state.as_mut().ok_or_else(used)? {
            State::Pipe { reader, writer } => {
                drop(writer.take());
                let reader = reader.take().ok_or_else(used)?;
                Box::new(FramedReader::new(reader).with_max_message_size(MAX_MESSAGE))
            }
            State::Fifo { reader, .. } => {
                let reader = reader.take().ok_or_else(used)?;
                Box::new(FramedReader::new(reader).with_max_message_size(MAX_MESSAGE))
            }
            State::Stream(listener) => {
                let (stream, _) = listener.accept_timeout(timeout)?;
                Box::new(FramedReader::new(stream).with_max_message_size(MAX_MESSAGE))
            }
            State::Seqpacket(listener) => {
                let (socket, _) = listener.accept_timeout(timeout)?;
                Box::new(socket.with_max_message_size(MAX_MESSAGE))
            }
            State::Datagram(_) | State::Shm(_) | State::Queue(_) => match self.state.take() {
                Some(State::Datagram(socket)) => {
                    Box::new(socket.with_max_message_size(MAX_MESSAGE))
                }
                Some(State::Shm(consumer)) => consumer,
                Some(State::Queue(queue)) => Box::new(queue),
                _ => return Err(used()),
            },
        })
    }
}
