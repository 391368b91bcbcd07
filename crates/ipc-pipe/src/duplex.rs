//! A bidirectional channel made of two pipes.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use ipc_core::Result;

use crate::{PipeReader, PipeWriter, pipe};

/// One end of a duplex channel: it reads what the other end writes and writes what the
/// other end reads. Made by [`duplex`].
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut client, mut server) = ipc_pipe::duplex()?;
/// client.write_all(b"ping")?;
/// let mut buf = [0u8; 4];
/// server.read_exact(&mut buf)?;
/// server.write_all(b"pong")?;
/// client.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// To give one end to a child process, split it with [`Duplex::into_parts`] and pass the
/// parts as the child's stdin and stdout, or with [`ChildFds`](crate::ChildFds).
#[derive(Debug)]
pub struct Duplex {
    reader: PipeReader,
    writer: PipeWriter,
}

/// Creates a duplex channel from two pipes and returns its two ends.
///
/// # Errors
///
/// The `pipe2` error.
pub fn duplex() -> Result<(Duplex, Duplex)> {
    let (a_reader, b_writer) = pipe()?;
    let (b_reader, a_writer) = pipe()?;
    Ok((
        Duplex {
            reader: a_reader,
            writer: a_writer,
        },
        Duplex {
            reader: b_reader,
            writer: b_writer,
        },
    ))
}

impl Duplex {
    /// Joins a reader and a writer into one end.
    pub fn from_parts(reader: PipeReader, writer: PipeWriter) -> Self {
        Duplex { reader, writer }
    }

    /// The reading half.
    pub fn reader(&self) -> &PipeReader {
        &self.reader
    }

    /// The writing half.
    pub fn writer(&self) -> &PipeWriter {
        &self.writer
    }

    /// Splits the end into its reader and writer.
    pub fn into_parts(self) -> (PipeReader, PipeWriter) {
        (self.reader, self.writer)
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.reader.read_vectored(bufs)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.writer.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ipc_core::Source for Duplex {
    /// Readable through its reading pipe, writable through its writing pipe.
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        match interest {
            ipc_core::Interest::Readable => self.reader.readiness(interest),
            ipc_core::Interest::Writable => self.writer.readiness(interest),
        }
    }
}
