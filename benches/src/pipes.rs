//! Pipe flavours: the raw libc calls (the floors) and each way `ipc-pipe` offers to use a
//! pipe.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::rc::Rc;

use ipc_core::{Error, Result};
use ipc_pipe::{
    FramedReader, FramedWriter, Interest, PipeReader, PipeWriter, Selector, VmspliceWriter, pipe,
};
use nix::fcntl::SpliceFFlags;

use crate::sys;
use crate::transport::{
    AsyncReadRx, AsyncWriteTx, Link, MsgRx, MsgTx, Setup, message, runtime, stamp, stdio_fds, whole,
};

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
    /// `PipeReader` woken by a `Selector` holding only it.
    Select1,
    /// `PipeReader` woken by a `Selector` holding it and 63 idle pipes: what a wake-up
    /// costs with many endpoints registered.
    Select64,
    /// `tokio::net::unix::pipe` (`write_all`/`read_exact`) on a current-thread runtime:
    /// the baseline of the async rows.
    Tokio,
    /// `PipeWriter` and `PipeReader` through `Async` (`AsyncWrite`/`AsyncRead`) on a
    /// current-thread runtime.
    Async,
}

impl Flavour {
    /// Every flavour, in report order.
    pub const ALL: [Flavour; 9] = [
        Flavour::Raw,
        Flavour::Pipe,
        Flavour::Framed,
        Flavour::RawVmsplice,
        Flavour::Vmsplice,
        Flavour::Select1,
        Flavour::Select64,
        Flavour::Tokio,
        Flavour::Async,
    ];

    /// The short name used on the command line of the peer.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Raw => "raw",
            Flavour::Pipe => "pipe",
            Flavour::Framed => "framed",
            Flavour::RawVmsplice => "raw-vmsplice",
            Flavour::Vmsplice => "vmsplice",
            Flavour::Select1 => "select-1",
            Flavour::Select64 => "select-64",
            Flavour::Tokio => "tokio",
            Flavour::Async => "async",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::Raw => "pipe: libc read/write (floor)",
            Flavour::Pipe => "pipe: PipeReader/PipeWriter",
            Flavour::Framed => "pipe: FramedReader/FramedWriter",
            Flavour::RawVmsplice => "pipe: libc vmsplice (floor)",
            Flavour::Vmsplice => "pipe: VmspliceWriter",
            Flavour::Select1 => "pipe: PipeReader in a Selector of 1",
            Flavour::Select64 => "pipe: PipeReader in a Selector of 64",
            Flavour::Tokio => "pipe: tokio unix::pipe (async baseline)",
            Flavour::Async => "pipe: Async<PipeReader>/Async<PipeWriter> on tokio",
        }
    }

    pub(crate) fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "pipe", Flavour::name)
    }
}

/// `write(2)` of whole messages: the floor of every byte stream (pipes, Unix and TCP
/// streams).
pub(crate) struct RawTx(pub(crate) OwnedFd, pub(crate) Vec<u8>);

impl MsgTx for RawTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        sys::write_all(self.0.as_fd(), &self.1)
    }
}

/// `read(2)` of whole messages.
pub(crate) struct RawRx(pub(crate) OwnedFd);

impl MsgRx for RawRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        sys::read_exact(self.0.as_fd(), buf)
    }
}

/// `FramedWriter` over any byte stream.
pub(crate) struct FramedTx<W: Write>(pub(crate) FramedWriter<W>, pub(crate) Vec<u8>);

impl<W: Write> MsgTx for FramedTx<W> {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        self.0.send(&self.1)
    }
}

/// `FramedReader` over any byte stream.
pub(crate) struct FramedRx<R: Read>(pub(crate) FramedReader<R>);

impl<R: Read> MsgRx for FramedRx<R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.0.recv(buf) {
            Ok(n) => whole(n, buf),
            Err(err) if err.is_peer_gone() => Ok(false),
            Err(err) => Err(err),
        }
    }
}

struct PipeTx(PipeWriter, Vec<u8>);

impl MsgTx for PipeTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        stamp(&mut self.1, seq);
        self.0.write_all(&self.1).map_err(Error::from)
    }
}

struct PipeRx(PipeReader);

impl PipeRx {
    /// One whole message, or `Ok(false)` at end of stream.
    fn read_from(reader: &mut PipeReader, buf: &mut [u8]) -> Result<bool> {
        match reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(err) => Err(Error::from(err)),
        }
    }
}

impl MsgRx for PipeRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        PipeRx::read_from(&mut self.0, buf)
    }
}

struct RawVmspliceTx {
    fd: OwnedFd,
    ring: Vec<Vec<u8>>,
    next: usize,
}

impl MsgTx for RawVmspliceTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        let len = self.ring.len();
        let buf = &mut self.ring[self.next];
        self.next = (self.next + 1) % len;
        stamp(buf, seq);
        let mut done = 0;
        while done < buf.len() {
            let iov = [std::io::IoSlice::new(&buf[done..])];
            match nix::fcntl::vmsplice(self.fd.as_fd(), &iov, SpliceFFlags::empty()) {
                Ok(n) => done += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => return Err(Error::from_errno("vmsplice", errno)),
            }
        }
        Ok(())
    }
}

impl Drop for RawVmspliceTx {
    fn drop(&mut self) {
        // The ring may still be in the pipe: freeing it would let the allocator write its
        // bookkeeping into pages the reader has yet to read. Leak it, as a C program that
        // simply exits would. (`VmspliceWriter` does the same by itself.)
        std::mem::forget(std::mem::take(&mut self.ring));
    }
}

struct VmspliceTx {
    writer: VmspliceWriter,
    pool: Vec<Vec<u8>>,
    size: usize,
}

impl MsgTx for VmspliceTx {
    fn send(&mut self, seq: u64) -> Result<()> {
        if self.pool.is_empty() {
            while let Some(buf) = self.writer.reclaim()? {
                self.pool.push(buf);
            }
        }
        let mut buf = self.pool.pop().unwrap_or_else(|| message(self.size));
        stamp(&mut buf, seq);
        self.writer.send(buf)
    }
}

fn tx(flavour: Flavour, fd: OwnedFd, size: usize) -> Result<Box<dyn MsgTx>> {
    Ok(match flavour {
        Flavour::Tokio => {
            let runtime = Rc::new(runtime()?);
            let sender = {
                let _entered = runtime.enter();
                tokio::net::unix::pipe::Sender::from_owned_fd(fd).map_err(Error::from)?
            };
            Box::new(AsyncWriteTx(runtime, sender, message(size)))
        }
        Flavour::Async => Box::new(AsyncWriteTx(
            Rc::new(runtime()?),
            ipc_pipe::Async::new(PipeWriter::from(fd)),
            message(size),
        )),
        Flavour::Raw => Box::new(RawTx(fd, message(size))),
        Flavour::Pipe | Flavour::Select1 | Flavour::Select64 => {
            Box::new(PipeTx(PipeWriter::from(fd), message(size)))
        }
        Flavour::Framed => Box::new(FramedTx(
            FramedWriter::new(PipeWriter::from(fd)).with_max_message_size(size),
            message(size),
        )),
        Flavour::RawVmsplice => {
            // Enough buffers that one is reused only after a full pipe's worth has gone by
            // twice, so the trusting floor does not overwrite unread data.
            let writer = PipeWriter::from(fd);
            let count = (2 * writer.capacity()? / size).max(2) + 1;
            Box::new(RawVmspliceTx {
                fd: OwnedFd::from(writer),
                ring: vec![message(size); count],
                next: 0,
            })
        }
        Flavour::Vmsplice => {
            // A pool as large as the pipe holds, filled before the clock starts, as a
            // program streaming this way would set it up.
            let writer = PipeWriter::from(fd);
            let count = (writer.capacity()? / size).max(1) + 2;
            Box::new(VmspliceTx {
                writer: VmspliceWriter::new(writer),
                pool: vec![message(size); count],
                size,
            })
        }
    })
}

fn rx(flavour: Flavour, fd: OwnedFd, size: usize) -> Result<Box<dyn MsgRx>> {
    Ok(match flavour {
        Flavour::Tokio => {
            let runtime = Rc::new(runtime()?);
            let receiver = {
                let _entered = runtime.enter();
                tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(Error::from)?
            };
            Box::new(AsyncReadRx(runtime, receiver))
        }
        Flavour::Async => Box::new(AsyncReadRx(
            Rc::new(runtime()?),
            ipc_pipe::Async::new(PipeReader::from(fd)),
        )),
        Flavour::Raw | Flavour::RawVmsplice => Box::new(RawRx(fd)),
        Flavour::Pipe | Flavour::Vmsplice => Box::new(PipeRx(PipeReader::from(fd))),
        Flavour::Framed => Box::new(FramedRx(
            FramedReader::new(PipeReader::from(fd)).with_max_message_size(size),
        )),
        Flavour::Select1 => Box::new(SelectRx::new(PipeReader::from(fd), 0)?),
        Flavour::Select64 => Box::new(SelectRx::new(PipeReader::from(fd), 63)?),
    })
}

/// A `PipeReader` read once a `Selector` says it is readable, beside `idle` pipes that
/// never are.
struct SelectRx {
    reader: PipeReader,
    selector: Selector,
    _idle: Vec<(PipeReader, PipeWriter)>,
}

impl SelectRx {
    fn new(reader: PipeReader, idle: usize) -> Result<SelectRx> {
        let mut selector = Selector::new()?;
        let idle = (0..idle).map(|_| pipe()).collect::<Result<Vec<_>>>()?;
        for (idle_reader, _) in &idle {
            selector.add(idle_reader, Interest::Readable)?;
        }
        selector.add(&reader, Interest::Readable)?;
        Ok(SelectRx {
            reader,
            selector,
            _idle: idle,
        })
    }
}

impl MsgRx for SelectRx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        self.selector.wait()?;
        PipeRx::read_from(&mut self.reader, buf)
    }
}

/// Two pipes between the parent and the peer's stdin and stdout; the one towards the
/// parent gets `capacity` bytes (when not zero).
pub(crate) fn setup(flavour: Flavour, size: usize, capacity: usize) -> Result<Setup> {
    let (peer_in, to_peer) = pipe()?;
    let (from_peer, peer_out) = pipe()?;
    if capacity > 0 {
        from_peer.set_capacity(capacity)?;
    }
    Ok(Setup {
        stdin: Stdio::from(peer_in),
        stdout: Stdio::from(peer_out),
        args: Vec::new(),
        finish: Box::new(move || {
            Ok(Link {
                tx: tx(flavour, OwnedFd::from(to_peer), size)?,
                rx: rx(flavour, OwnedFd::from(from_peer), size)?,
            })
        }),
    })
}

/// The peer's side: it reads stdin and writes stdout.
pub(crate) fn peer_link(flavour: Flavour, size: usize, _args: &[String]) -> Result<Link> {
    let (input, output) = stdio_fds()?;
    Ok(Link {
        tx: tx(flavour, output, size)?,
        rx: rx(flavour, input, size)?,
    })
}

crate::transport::benchmarked!(
    "pipe",
    setup: |f, size, capacity| setup(f, size, capacity),
    peer: |f, size, args| peer_link(f, size, args),
);
