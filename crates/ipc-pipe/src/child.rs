//! Handing descriptors to a child process at chosen numbers.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::process::Command;

use ipc_core::{Error, Result};

use crate::sys;

/// Descriptors to hand to a child process at chosen numbers, such as a pipe end at
/// descriptor 3.
///
/// Everything this toolkit opens is close-on-exec, so a child started with
/// `std::process::Command` receives only its stdin, stdout, stderr and the descriptors
/// given here.
///
/// ```no_run
/// use std::process::Command;
/// use ipc_pipe::{ChildFds, pipe};
///
/// let (reader, writer) = pipe()?;
/// let mut cmd = Command::new("my-worker");
/// ChildFds::new().insert(writer, 3)?.apply(&mut cmd);
/// let child = cmd.spawn()?;
/// drop(cmd); // closes the parent's copy of the writer, so `reader` sees end of file
/// # let _ = (reader, child);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ChildFds {
    fds: Vec<(OwnedFd, RawFd)>,
}

impl ChildFds {
    /// No descriptors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands `fd` to the child at number `child_fd`, replacing an earlier entry for the
    /// same number.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `child_fd` is 0, 1 or 2 (use `Command::stdin`, `stdout` and
    /// `stderr` with `Stdio::from` for those) or negative.
    pub fn insert(&mut self, fd: impl Into<OwnedFd>, child_fd: RawFd) -> Result<&mut Self> {
        if child_fd < 3 {
            return Err(Error::new(
                "ChildFds::insert",
                io::ErrorKind::InvalidInput,
                format!(
                    "descriptor {child_fd} is stdio or invalid; give stdio through Command::stdin/stdout/stderr"
                ),
            ));
        }
        self.fds.retain(|&(_, target)| target != child_fd);
        self.fds.push((fd.into(), child_fd));
        Ok(self)
    }

    /// Arranges for `cmd` to pass the descriptors. They move into `cmd` and are closed in
    /// this process when `cmd` is dropped; drop it after `spawn` so that, for example, a
    /// reader sees end of file when the child's writer closes.
    pub fn apply(&mut self, cmd: &mut Command) {
        sys::map_child_fds(cmd, std::mem::take(&mut self.fds));
    }
}
