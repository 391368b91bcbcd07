//! Pipes for Linux: anonymous pipes, named FIFOs, duplex pairs, length-prefixed messages
//! and zero-copy transfer, with the failure modes people usually get wrong taken care of.
//!
//! A pipe is a one-way byte stream in the kernel. `pipe()` gives its two ends, which can be
//! handed to child processes; a [`Fifo`] gives a pipe a name in the file system, so that
//! unrelated processes can meet at it.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::process::{Command, Stdio};
//! use ipc_pipe::{FramedReader, FramedWriter, pipe};
//!
//! // A pipe into a child process: its stdin.
//! let (reader, mut writer) = pipe()?;
//! let mut child = Command::new("wc").arg("-c").stdin(Stdio::from(reader)).stdout(Stdio::piped()).spawn()?;
//! writer.write_all(b"twelve bytes")?;
//! drop(writer); // end of file for the child
//! let mut count = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut count)?;
//! assert_eq!(count.trim(), "12");
//! child.wait()?;
//!
//! // Whole messages over a pipe.
//! let (reader, writer) = pipe()?;
//! let mut tx = FramedWriter::new(writer);
//! let mut rx = FramedReader::new(reader);
//! tx.send(b"first")?;
//! tx.send(b"second")?;
//! let mut buf = [0u8; 64];
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"first");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate takes care of
//!
//! - **Every descriptor is close-on-exec**, so child processes get only what they are given
//!   (as stdio through [`std::process::Stdio`], or at chosen numbers through [`ChildFds`]).
//! - **`SIGPIPE` never kills the process.** Writing to a pipe whose readers are gone fails
//!   with `BrokenPipe`; the kernel also raises `SIGPIPE`, whose default action is to end the
//!   process. Each thread that writes through this crate blocks `SIGPIPE` once (the first
//!   time it writes), and a write that fails with `EPIPE` removes the pending signal; see
//!   [`ipc_core::block_sigpipe`] for what that means for programs started from that thread.
//! - **`EINTR` is retried everywhere**, against the original deadline for timed calls.
//! - **Every blocking operation has `try_` and `_timeout` forms**, which work whatever the
//!   descriptor's blocking mode (`RWF_NOWAIT` reads and writes, `poll` for the waits).
//!   An end watched by a `Selector` or an `Async` gets an `O_NONBLOCK` open file
//!   description of its own, so that its calls are plain `read` and `write` and copies of
//!   the end held elsewhere (a child's stdin) keep their mode.
//! - **FIFOs open without deadlocks**: [`Fifo::open_reader`] never blocks, and
//!   [`Fifo::open_writer_timeout`] waits for a reader with a deadline. Paths that are
//!   symbolic links, not FIFOs, or owned by another user are refused.
//! - **Messages are whole or not at all**: [`FramedReader`] never returns part of a message,
//!   checks lengths against a maximum before allocating, and reports a writer that died
//!   mid-frame as a peer-gone error. [`FramedWriter::atomic`] keeps frames within
//!   `PIPE_BUF` (4096 bytes), which the kernel never interleaves, for many writers on one
//!   FIFO.
//! - **Zero copy where it pays**: [`splice`] and [`tee`] move data inside the kernel, and
//!   [`VmspliceWriter`] sends buffers without copying them, keeping each buffer until the
//!   reader has consumed it.
//!
//! # Limits
//!
//! - A pipe holds 64 KiB by default; [`PipeWriter::set_capacity`] raises it up to
//!   `/proc/sys/fs/pipe-max-size` (1 MiB by default).
//! - Writes of at most `PIPE_BUF` (4096) bytes are atomic; larger ones may interleave with
//!   other writers' data.
//!
//! # Safety
//!
//! The unsafe code (vectored reads and writes with flags, `FIONREAD`, and the descriptor
//! set-up in a child between `fork` and `exec`) lives in one private module, each block
//! with its reasoning.

#![deny(unsafe_code)]

mod child;
mod duplex;
mod end;
mod fifo;
mod pipe;
mod stale;
#[allow(unsafe_code)]
mod sys;
mod zerocopy;

pub use child::ChildFds;
pub use duplex::{Duplex, duplex};
pub use fifo::{Fifo, FifoOptions};
pub use pipe::{PipeReader, PipeWriter, pipe};
pub use stale::{remove_stale_fifos, stale_fifos};
pub use zerocopy::{VmspliceWriter, splice, splice_timeout, tee, tee_timeout, try_splice, try_tee};

#[cfg(feature = "tokio")]
pub use ipc_core::Async;
pub use ipc_core::{
    Access, Cancel, CreationMode, Deadline, Error, FramedReader, FramedWriter, Interest, IpcName,
    Key, MessageReceiver, MessageSender, PIPE_BUF, Permissions, ReadReady, Result, Selector,
    Source, WriteReady,
};
