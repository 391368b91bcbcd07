//! The message server's transports: seqpacket connections carry messages natively, Unix
//! and TCP streams carry them framed (`FramedWriter`'s length prefix).

use std::io::{IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use ipc_core::{
    Deadline, FramedReader, FramedWriter, MessageReceiver, MessageSender, ReadReady, Result,
    WriteReady,
};

use crate::{PeerCredentials, Seqpacket, SeqpacketListener, StreamListener, TcpAcceptor};

/// Who sent a request to a [`MessageServer`](crate::MessageServer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Client {
    /// A process on this machine (Unix stream or seqpacket), as the kernel vouches for it.
    Local(PeerCredentials),
    /// A TCP peer.
    Remote(SocketAddr),
}

/// A listener a [`MessageServer`](crate::MessageServer) serves: a [`SeqpacketListener`]
/// (messages as they are), a [`StreamListener`] or a [`TcpAcceptor`] (messages framed as
/// [`FramedWriter`] writes them: a 4-byte little-endian length, then the bytes).
pub trait ServerListener: sealed::Sealed + AsFd + Send + Sync + 'static {}

impl ServerListener for SeqpacketListener {}
impl ServerListener for StreamListener {}
impl ServerListener for TcpAcceptor {}

pub(super) mod sealed {
    use super::{Client, Connection, Result};

    /// How the server accepts from a listener; not for other crates to implement.
    pub trait Sealed {
        /// Accepts a waiting connection, for messages of at most `max` bytes.
        fn accept_connection(&self, max: usize) -> Result<(Box<dyn Connection>, Client)>;
    }
}

impl sealed::Sealed for SeqpacketListener {
    fn accept_connection(&self, max: usize) -> Result<(Box<dyn Connection>, Client)> {
        let (conn, peer) = self.try_accept()?;
        let conn = Packets {
            conn: conn.with_max_message_size(max),
            unsent: None,
        };
        Ok((Box::new(conn), Client::Local(peer)))
    }
}

impl sealed::Sealed for StreamListener {
    fn accept_connection(&self, max: usize) -> Result<(Box<dyn Connection>, Client)> {
        let (stream, peer) = self.try_accept()?;
        Ok((Framed::boxed(stream, max), Client::Local(peer)))
    }
}

impl sealed::Sealed for TcpAcceptor {
    fn accept_connection(&self, max: usize) -> Result<(Box<dyn Connection>, Client)> {
        let (stream, addr) = self.try_accept()?;
        Ok((Framed::boxed(stream, max), Client::Remote(addr)))
    }
}

/// A served connection: its descriptor, a non-blocking receive, and sends that never
/// block (what finds no room waits inside until [`flush`](Connection::flush)).
pub trait Connection: Send {
    /// The descriptor the server's `epoll` set watches.
    fn fd(&self) -> BorrowedFd<'_>;
    /// The next request, if one is there whole.
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize>;
    /// Whether bytes of requests were read ahead (the descriptor may not be readable
    /// while they wait).
    fn has_buffered(&self) -> bool {
        false
    }
    /// Whether the last read took everything the socket held (it came back short), so
    /// that a request sent since is reported by the set and looking for one now would
    /// only find the socket empty.
    fn drained(&self) -> bool {
        false
    }
    /// Sends `reply`: `Ok(true)` if it went out whole, `Ok(false)` if (some of) it waits
    /// for room.
    fn send(&mut self, reply: &[u8]) -> Result<bool>;
    /// Sends what waits for room: `Ok(true)` once nothing does.
    fn flush(&mut self) -> Result<bool>;
}

/// A seqpacket connection, and the reply it had no room for.
struct Packets {
    conn: Seqpacket,
    unsent: Option<Vec<u8>>,
}

impl Connection for Packets {
    fn fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.conn.try_recv(buf)
    }

    fn send(&mut self, reply: &[u8]) -> Result<bool> {
        send_or_keep(&mut self.conn, reply, &mut self.unsent)
    }

    fn flush(&mut self) -> Result<bool> {
        send_kept(&mut self.conn, &mut self.unsent)
    }
}

/// A stream connection with framing; a reply the writer did not take at all waits here.
struct Framed<S> {
    reader: FramedReader<Half<S>>,
    writer: FramedWriter<Half<S>>,
    unsent: Option<Vec<u8>>,
}

/// One side of a stream shared by its reader and its writer: one descriptor for both.
struct Half<S> {
    stream: Arc<S>,
    /// The last read returned less than it asked for: a stream socket gives all it holds
    /// up to the length asked, so it was empty then.
    short: bool,
}

impl<S> Half<S> {
    fn new(stream: Arc<S>) -> Self {
        Half {
            stream,
            short: false,
        }
    }
}

impl<S> Read for Half<S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.stream).read(buf)
    }
}

impl<S> Write for Half<S>
where
    for<'a> &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.stream).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        (&*self.stream).write_vectored(bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.stream).flush()
    }
}

impl<S> ReadReady for Half<S>
where
    for<'a> &'a S: ReadReady + Read,
{
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let result = (&*self.stream).try_read(buf);
        // End of stream counts as short too: the next read reports it again.
        self.short = matches!(result, Ok(n) if n < buf.len());
        result
    }

    fn wait_readable(&self, deadline: Deadline) -> Result<()> {
        (&*self.stream).wait_readable(deadline)
    }
}

impl<S> WriteReady for Half<S>
where
    for<'a> &'a S: WriteReady + Write,
{
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        (&*self.stream).try_write_vectored(bufs)
    }

    fn wait_writable(&self, deadline: Deadline) -> Result<()> {
        (&*self.stream).wait_writable(deadline)
    }
}

impl<S> Framed<S>
where
    S: AsFd + Send + Sync + 'static,
    for<'a> &'a S: ReadReady + WriteReady + Read + Write,
{
    /// Frames `stream` for messages of at most `max` bytes: its read buffer is at most
    /// `max` plus a header, up to 64 KiB.
    fn boxed(stream: S, max: usize) -> Box<dyn Connection> {
        let stream = Arc::new(stream);
        let writer = FramedWriter::new(Half::new(Arc::clone(&stream))).with_max_message_size(max);
        let reader = FramedReader::new(Half::new(stream)).with_max_message_size(max);
        Box::new(Framed {
            reader,
            writer,
            unsent: None,
        })
    }
}

impl<S> Connection for Framed<S>
where
    S: AsFd + Send + Sync,
    for<'a> &'a S: ReadReady + WriteReady + Read + Write,
{
    fn fd(&self) -> BorrowedFd<'_> {
        self.reader.get_ref().stream.as_fd()
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        MessageReceiver::try_recv(&mut self.reader, buf)
    }

    fn has_buffered(&self) -> bool {
        self.reader.buffered() > 0
    }

    fn drained(&self) -> bool {
        self.reader.get_ref().short && self.reader.buffered() == 0
    }

    fn send(&mut self, reply: &[u8]) -> Result<bool> {
        // Taken with its rest pending in the writer: not out whole yet.
        Ok(send_or_keep(&mut self.writer, reply, &mut self.unsent)? && !self.writer.has_pending())
    }

    fn flush(&mut self) -> Result<bool> {
        if !send_kept(&mut self.writer, &mut self.unsent)? {
            return Ok(false);
        }
        match self.writer.try_flush() {
            Ok(()) => Ok(true),
            Err(err) if err.is_would_block() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// Sends `reply` if `sender` takes it now, or keeps it in `unsent`: whether it was taken.
fn send_or_keep(
    sender: &mut impl MessageSender,
    reply: &[u8],
    unsent: &mut Option<Vec<u8>>,
) -> Result<bool> {
    match sender.try_send(reply) {
        Ok(()) => Ok(true),
        Err(err) if err.is_would_block() => {
            *unsent = Some(reply.to_vec());
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// Sends the reply `unsent` keeps, if `sender` takes it now: whether none is kept.
fn send_kept(sender: &mut impl MessageSender, unsent: &mut Option<Vec<u8>>) -> Result<bool> {
    if let Some(reply) = unsent {
        match sender.try_send(reply) {
            Ok(()) => *unsent = None,
            Err(err) if err.is_would_block() => return Ok(false),
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}
