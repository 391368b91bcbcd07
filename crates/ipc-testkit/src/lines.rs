//! Line-oriented reading from a pipe with a deadline.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use ipc_core::Deadline;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Reads `\n`-terminated lines from a pipe, waiting at most until a deadline for each.
#[derive(Debug)]
pub(crate) struct LineReader {
    file: File,
    buf: Vec<u8>,
    eof: bool,
}

impl LineReader {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        LineReader {
            file: File::from(fd),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The next line without its `\n`; `Ok(None)` at end of file. A last line without a
    /// newline is returned as a line. Fails with `TimedOut` at the deadline.
    pub(crate) fn read_line(&mut self, deadline: Deadline) -> io::Result<Option<String>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..end]).into_owned()));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            wait_readable(&self.file, deadline)?;
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

/// Waits until `fd` is readable (or at end of file, or hung up), or fails with `TimedOut`.
pub(crate) fn wait_readable(fd: impl AsFd, deadline: Deadline) -> io::Result<()> {
    loop {
        let timeout = PollTimeout::try_from(deadline.poll_timeout_ms()).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed")),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {
                if deadline.has_expired() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}
