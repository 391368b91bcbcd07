//! `ipc send`, `recv`, `tail` and `hz`: messages through queues, FIFOs, Unix sockets and
//! shared-memory channels, with the toolkit's own endpoints.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ipc_cli::{Error, Kind, Result};
use ipc_core::{FramedReader, FramedWriter, IpcName};
use ipc_mq::{Direction, MessageQueue, QueueOptions};
use ipc_pipe::{FifoOptions, PipeReader, PipeWriter};
use ipc_shm::{ChannelOptions, Consumer, Producer};
use ipc_socket::{Datagram, Seqpacket, UnixAddr};

/// How messages are written on the terminal, or read from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text, one message per line (bytes that are not UTF-8 are shown as U+FFFD).
    Utf8,
    /// Hexadecimal, one message per line.
    Hex,
    /// The bytes as they are, with nothing between messages.
    Raw,
    /// One JSON object per line: `{"n": 1, "len": 5, "priority": 0, "utf8": "hello", "hex":
    /// "68656c6c6f"}` (`utf8` is null when the bytes are not UTF-8; `priority` only for
    /// queues). To send, the argument is a JSON value, sent as its compact text.
    Json,
}

/// How long one receive waits before the loop looks at the clock (and a shutdown).
const SLICE: Duration = Duration::from_millis(250);

/// What one receive got.
pub enum Received {
    /// A message of this many bytes (and the queue priority, if any).
    Message(usize, Option<u32>),
    /// Nothing within the slice.
    Nothing,
    /// The other side is gone: no more messages will come.
    Ended(String),
}

/// An endpoint opened on an object for sending or receiving.
pub enum Endpoint {
    Queue(MessageQueue),
    FifoReader(PipeReader),
    FifoWriter(PipeWriter),
    FramedFifoReader(FramedReader<PipeReader>),
    FramedFifoWriter(FramedWriter<PipeWriter>),
    Stream(std::os::unix::net::UnixStream),
    FramedStreamReader(FramedReader<std::os::unix::net::UnixStream>),
    FramedStreamWriter(FramedWriter<std::os::unix::net::UnixStream>),
    Seqpacket(Seqpacket),
    Datagram(Datagram),
    Consumer(Consumer),
    Producer(Producer),
}

/// Opens the object `name` of `kind` for sending (`send`) or receiving; `framed` reads and
/// writes FIFOs and stream sockets as length-prefixed frames (ipc-rs framing) instead of
/// bytes as they come.
pub fn open(name: &str, kind: Kind, send: bool, framed: bool) -> Result<Endpoint> {
    let timeout = Duration::from_secs(5);
    Ok(match kind {
        Kind::Mq => {
            let direction = if send {
                Direction::Send
            } else {
                Direction::Receive
            };
            Endpoint::Queue(
                QueueOptions::new()
                    .accept_other_owner(true)
                    .open(&IpcName::new(name)?, direction)?,
            )
        }
        Kind::Channel => {
            let options = ChannelOptions::new()
                .accept_other_owner(true)
                .timeout(timeout);
            let name = IpcName::new(name)?;
            if send {
                Endpoint::Producer(options.open_producer(&name)?)
            } else {
                Endpoint::Consumer(options.open_consumer(&name)?)
            }
        }
        Kind::Fifo => {
            let fifo = FifoOptions::new()
                .accept_other_owner(true)
                .timeout(timeout)
                .open(name)?;
            match (send, framed) {
                (true, false) => Endpoint::FifoWriter(fifo.open_writer_timeout(timeout)?),
                (true, true) => Endpoint::FramedFifoWriter(FramedWriter::new(
                    fifo.open_writer_timeout(timeout)?,
                )),
                (false, false) => Endpoint::FifoReader(fifo.open_reader()?),
                (false, true) => Endpoint::FramedFifoReader(FramedReader::new(fifo.open_reader()?)),
            }
        }
        Kind::Socket => socket(name, send, framed)?,
        other => {
            return Err(Error::new(
                "open",
                io::ErrorKind::Unsupported,
                format!(
                    "a {other} carries no messages: send and receive take mq, channel, fifo \
                     and socket"
                ),
            )
            .with_subject(name));
        }
    })
}

/// Connects to the socket at `name` as whichever type it is: seqpacket, stream or datagram
/// (a connection of the wrong type is refused with `EPROTOTYPE`).
fn socket(name: &str, send: bool, framed: bool) -> Result<Endpoint> {
    let addr = if let Some(abstract_name) = name.strip_prefix('@') {
        UnixAddr::abstract_name(abstract_name)
    } else {
        UnixAddr::path(Path::new(name))
    };
    let wrong_type = |e: &Error| e.raw_os_error() == Some(libc::EPROTOTYPE);
    match Seqpacket::connect(&addr) {
        Ok(socket) => return Ok(Endpoint::Seqpacket(socket)),
        Err(e) if !wrong_type(&e) => return Err(e),
        Err(_) => {}
    }
    match ipc_socket::connect_stream(&addr) {
        Ok(stream) => {
            return Ok(match (framed, send) {
                (false, _) => Endpoint::Stream(stream),
                (true, true) => Endpoint::FramedStreamWriter(FramedWriter::new(stream)),
                (true, false) => Endpoint::FramedStreamReader(FramedReader::new(stream)),
            });
        }
        Err(e) if !wrong_type(&e) => return Err(e),
        Err(_) => {}
    }
    if !send {
        return Err(Error::new(
            "recv",
            io::ErrorKind::Unsupported,
            "a datagram socket's messages go to whoever bound it: only `ipc send` reaches it",
        )
        .with_subject(name));
    }
    let socket = Datagram::unbound()?;
    socket.connect(&addr)?;
    Ok(Endpoint::Datagram(socket))
}

impl Endpoint {
    /// Sends one message (with `priority`, for a queue).
    pub fn send(&mut self, message: &[u8], priority: u32) -> Result<()> {
        match self {
            Endpoint::Queue(queue) => queue.send_priority(message, priority),
            Endpoint::FifoWriter(writer) => writer
                .write_all(message)
                .map_err(|e| Error::from(e).with_op("write")),
            Endpoint::FramedFifoWriter(writer) => writer.send(message),
            Endpoint::Stream(stream) => stream
                .write_all(message)
                .map_err(|e| Error::from(e).with_op("write")),
            Endpoint::FramedStreamWriter(writer) => writer.send(message),
            Endpoint::Seqpacket(socket) => socket.send(message),
            Endpoint::Datagram(socket) => socket.send(message),
            Endpoint::Producer(producer) => producer.send(message),
            _ => Err(Error::new(
                "send",
                io::ErrorKind::Unsupported,
                "opened for receiving",
            )),
        }
    }

    /// Receives one message into `buf` (grown to the largest message the endpoint can
    /// carry), waiting at most a [`SLICE`].
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Received> {
        let ended = |why: &str| Ok(Received::Ended(why.to_owned()));
        let got = match self {
            Endpoint::Queue(queue) => {
                buf.resize(queue.max_message_size(), 0);
                return match queue.recv_priority_timeout(buf, SLICE) {
                    Ok((len, priority)) => Ok(Received::Message(len, Some(priority))),
                    Err(e) if e.is_timeout() => Ok(Received::Nothing),
                    Err(e) => Err(e),
                };
            }
            Endpoint::FifoReader(reader) => {
                buf.resize(64 * 1024, 0);
                reader.read_timeout(buf, SLICE)
            }
            Endpoint::FramedFifoReader(reader) => {
                buf.resize(reader.max_message_size(), 0);
                reader.recv(buf)
            }
            Endpoint::Stream(stream) => {
                buf.resize(64 * 1024, 0);
                stream
                    .set_read_timeout(Some(SLICE))
                    .and_then(|()| stream.read(buf))
                    .map_err(|e| Error::from(e).with_op("read"))
            }
            Endpoint::FramedStreamReader(reader) => {
                buf.resize(reader.max_message_size(), 0);
                reader.recv(buf)
            }
            Endpoint::Seqpacket(socket) => {
                buf.resize(socket.max_message_size(), 0);
                socket.recv_timeout(buf, SLICE)
            }
            Endpoint::Consumer(consumer) => {
                buf.resize(consumer.max_message_size(), 0);
                consumer.recv_timeout(buf, SLICE)
            }
            _ => {
                return Err(Error::new(
                    "recv",
                    io::ErrorKind::Unsupported,
                    "opened for sending",
                ));
            }
        };
        match got {
            // A byte stream's end: every writer closed it.
            Ok(0) if self.is_stream() => ended("the other side closed it"),
            Ok(len) => Ok(Received::Message(len, None)),
            Err(e) if e.is_timeout() || e.kind() == io::ErrorKind::WouldBlock => {
                Ok(Received::Nothing)
            }
            Err(e) if e.is_peer_gone() => ended(&e.to_string()),
            Err(e) => Err(e),
        }
    }

    fn is_stream(&self) -> bool {
        matches!(
            self,
            Endpoint::FifoReader(_)
                | Endpoint::Stream(_)
                | Endpoint::FramedFifoReader(_)
                | Endpoint::FramedStreamReader(_)
        )
    }
}

/// Turns a command-line message into bytes.
pub fn parse(text: &str, format: Format) -> std::result::Result<Vec<u8>, String> {
    match format {
        Format::Utf8 | Format::Raw => Ok(text.as_bytes().to_vec()),
        Format::Hex => {
            let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if digits.len() % 2 != 0 {
                return Err(format!("`{text}`: an odd number of hex digits"));
            }
            digits
                .chunks(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                        .ok_or_else(|| format!("`{text}`: not hexadecimal"))
                })
                .collect()
        }
        Format::Json => serde_json::from_str::<serde_json::Value>(text)
            .map(|value| value.to_string().into_bytes())
            .map_err(|e| format!("`{text}`: not JSON: {e}")),
    }
}

/// Writes message number `n` to `out` in `format`.
pub fn print(
    out: &mut impl Write,
    n: u64,
    message: &[u8],
    priority: Option<u32>,
    format: Format,
) -> io::Result<()> {
    match format {
        Format::Utf8 => writeln!(out, "{}", String::from_utf8_lossy(message)),
        Format::Hex => writeln!(out, "{}", hex(message)),
        Format::Raw => out.write_all(message),
        Format::Json => {
            let mut object = serde_json::json!({
                "n": n,
                "len": message.len(),
                "utf8": std::str::from_utf8(message).ok(),
                "hex": hex(message),
            });
            if let Some(priority) = priority {
                object["priority"] = priority.into();
            }
            writeln!(out, "{object}")
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Messages and bytes per second over the intervals `hz` prints.
#[derive(Debug)]
pub struct Rate {
    started: Instant,
    interval_start: Instant,
    messages: u64,
    bytes: u64,
    total_messages: u64,
    total_bytes: u64,
}

impl Rate {
    /// Starts counting now.
    pub fn new() -> Rate {
        let now = Instant::now();
        Rate {
            started: now,
            interval_start: now,
            messages: 0,
            bytes: 0,
            total_messages: 0,
            total_bytes: 0,
        }
    }

    /// Counts a message of `len` bytes.
    pub fn count(&mut self, len: usize) {
        self.messages += 1;
        self.bytes += len as u64;
        self.total_messages += 1;
        self.total_bytes += len as u64;
    }

    /// The line for the interval just ended, if a second has passed, and starts the next.
    pub fn tick(&mut self) -> Option<String> {
        let elapsed = self.interval_start.elapsed();
        if elapsed < Duration::from_secs(1) {
            return None;
        }
        let line = line(self.messages, self.bytes, elapsed);
        self.interval_start = Instant::now();
        self.messages = 0;
        self.bytes = 0;
        Some(line)
    }

    /// The line for the whole run.
    pub fn total(&self) -> String {
        format!(
            "total: {} messages, {} bytes in {:.1} s; {}",
            self.total_messages,
            self.total_bytes,
            self.started.elapsed().as_secs_f64(),
            line(
                self.total_messages,
                self.total_bytes,
                self.started.elapsed()
            )
        )
    }
}

fn line(messages: u64, bytes: u64, over: Duration) -> String {
    let seconds = over.as_secs_f64().max(1e-9);
    format!(
        "{:.1} messages/s, {}/s",
        messages as f64 / seconds,
        human_bytes(bytes as f64 / seconds)
    )
}

fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_from_every_format() {
        assert_eq!(parse("hi", Format::Utf8).unwrap(), b"hi");
        assert_eq!(parse("68 69", Format::Hex).unwrap(), b"hi");
        assert!(parse("6", Format::Hex).is_err());
        assert!(parse("zz", Format::Hex).is_err());
        assert_eq!(parse("{ \"a\" : 1 }", Format::Json).unwrap(), b"{\"a\":1}");
        assert!(parse("{", Format::Json).is_err());
    }

    #[test]
    fn messages_print_in_every_format() {
        let printed = |format| {
            let mut out = Vec::new();
            print(&mut out, 3, b"hi", Some(2), format).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(printed(Format::Utf8), "hi\n");
        assert_eq!(printed(Format::Hex), "6869\n");
        assert_eq!(printed(Format::Raw), "hi");
        assert_eq!(
            printed(Format::Json),
            "{\"hex\":\"6869\",\"len\":2,\"n\":3,\"priority\":2,\"utf8\":\"hi\"}\n"
        );
        assert_eq!(human_bytes(2048.0), "2.0 KiB");
    }
}
