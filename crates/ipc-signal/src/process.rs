//! Processes named by a pidfd: signalled without ever reaching a stranger, waited for with a
//! deadline, stopped, resumed, terminated gracefully.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ipc_core::internal::Wait;
use ipc_core::{Deadline, Error, Result};
use nix::poll::PollFlags;

use crate::{Signal, sys};

/// A process held by a pidfd (Linux 5.3): unlike its pid, the handle can never come to
/// name another process, so a signal sent through it reaches that process or fails.
///
/// ```no_run
/// use std::time::Duration;
/// use ipc_signal::{Process, Termination};
///
/// let child = std::process::Command::new("sleep").arg("60").spawn()?;
/// let process = Process::open(child.id())?;
/// // SIGTERM, then SIGKILL if it is still there after two seconds.
/// let how = process.terminate(Duration::from_secs(2))?;
/// assert_eq!(how, Termination::Graceful);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Process {
    pid: u32,
    pidfd: OwnedFd,
}

/// How [`Process::terminate`] ended a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// It exited within the grace period after `SIGTERM` (or had exited already).
    Graceful,
    /// It was still there after the grace period and was killed with `SIGKILL`.
    Killed,
}

/// How a child ended, as [`Process::wait_child`] reaps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Killed(Signal),
    /// A signal killed it and it dumped core.
    Dumped(Signal),
}

impl Process {
    /// Opens a pidfd for `pid`.
    ///
    /// # Errors
    ///
    /// `NotFound` if there is no such process (or it has been reaped).
    pub fn open(pid: u32) -> Result<Process> {
        let pidfd = ipc_core::internal::pidfd_open(pid)
            .map_err(|e| crate::send::gone_is_not_found(e, "pidfd_open", format!("pid {pid}")))?;
        Ok(Process { pid, pidfd })
    }

    /// The process's pid (for messages; signal through the handle).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to this very process (`pidfd_send_signal`).
    ///
    /// # Errors
    ///
    /// `NotFound` (`ESRCH`) if it has exited, even if its pid now belongs to another
    /// process; `PermissionDenied` if this process may not signal it.
    pub fn send(&self, signal: Signal) -> Result<()> {
        // An exited, unreaped process still takes signals that reach nobody.
        if self.has_exited()? {
            return Err(Error::new(
                "pidfd_send_signal",
                std::io::ErrorKind::NotFound,
                "the process has exited",
            )
            .with_subject(format!("{signal} to pid {}", self.pid)));
        }
        sys::pidfd_send_signal(self.pidfd.as_fd(), signal.number()).map_err(|e| {
            let subject = format!("{signal} to pid {}", self.pid);
            match e.raw_os_error() {
                Some(libc::ESRCH) => Error::new(
                    "pidfd_send_signal",
                    std::io::ErrorKind::NotFound,
                    "the process has exited",
                )
                .with_subject(subject),
                _ => e.with_subject(subject),
            }
        })
    }

    /// Stops the process (`SIGSTOP`). The signal is delivered asynchronously:
    /// [`wait_stopped`](Process::wait_stopped) waits until the process has stopped.
    ///
    /// # Errors
    ///
    /// As [`send`](Process::send).
    pub fn stop(&self) -> Result<()> {
        self.send(Signal::STOP)
    }

    /// Whether the process is stopped now (by `SIGSTOP`, `SIGTSTP`..., or a tracer), as
    /// `/proc/<pid>/stat` says; the never-waiting form of
    /// [`wait_stopped`](Process::wait_stopped).
    ///
    /// # Errors
    ///
    /// `NotFound` if it has exited.
    pub fn is_stopped(&self) -> Result<bool> {
        let state = ipc_core::internal::process_state(self.pid);
        // The pid names this process only while it has not exited: checked after the read,
        // a live process means the state read was its own.
        if state.is_none() || self.has_exited()? {
            return Err(Error::new(
                "/proc/<pid>/stat",
                std::io::ErrorKind::NotFound,
                "the process has exited",
            )
            .with_subject(format!("pid {}", self.pid)));
        }
        Ok(matches!(state, Some('T' | 't')))
    }

    /// Waits until the process has stopped, as long as it takes.
    ///
    /// The kernel tells a stop only to the parent, so this looks at the process's state in
    /// slices growing from 1 ms to 20 ms: it notices a stop up to 20 ms late, and an exit
    /// at once (through the pidfd).
    ///
    /// # Errors
    ///
    /// `NotFound` if the process exits before it stops.
    pub fn wait_stopped(&self) -> Result<()> {
        self.wait_stopped_deadline(Deadline::NEVER)
    }

    /// [`wait_stopped`](Process::wait_stopped), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running; otherwise as
    /// [`wait_stopped`](Process::wait_stopped).
    pub fn wait_stopped_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_stopped_deadline(Deadline::after(timeout))
    }

    /// [`wait_stopped`](Process::wait_stopped), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running; otherwise as
    /// [`wait_stopped`](Process::wait_stopped).
    pub fn wait_stopped_deadline(&self, deadline: Deadline) -> Result<()> {
        const LONGEST_SLICE: Duration = Duration::from_millis(20);
        let mut slice = Duration::from_millis(1);
        while !self.is_stopped()? {
            if deadline.has_expired() {
                return Err(
                    Error::timed_out("wait_stopped").with_subject(format!("pid {}", self.pid))
                );
            }
            let left = deadline.remaining().map_or(slice, |left| left.min(slice));
            // Readable means exited: the next look reports it.
            match ipc_core::internal::poll_fd(
                &self.pidfd,
                PollFlags::POLLIN,
                Deadline::after(left),
                "poll",
            ) {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e.with_subject(format!("pid {}", self.pid))),
            }
            slice = (slice * 2).min(LONGEST_SLICE);
        }
        Ok(())
    }

    /// Lets a stopped process continue (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// As [`send`](Process::send).
    pub fn resume(&self) -> Result<()> {
        self.send(Signal::CONT)
    }

    /// Whether the process has exited (a zombie has).
    ///
    /// # Errors
    ///
    /// The error of `poll` (none for a pidfd).
    pub fn has_exited(&self) -> Result<bool> {
        Ok(
            ipc_core::internal::poll_now(&self.pidfd, PollFlags::POLLIN, "poll")?
                .contains(PollFlags::POLLIN),
        )
    }

    fn wait_exit_with(&self, wait: Wait) -> Result<()> {
        let subject = || format!("pid {}", self.pid);
        let deadline = wait
            .deadline()
            .unwrap_or_else(|| Deadline::after(Duration::ZERO));
        match ipc_core::internal::poll_fd(&self.pidfd, PollFlags::POLLIN, deadline, "poll") {
            Ok(_) => Ok(()),
            Err(e) if e.is_timeout() && wait == Wait::Try => {
                Err(Error::would_block("poll").with_subject(subject()))
            }
            Err(e) => Err(e.with_subject(subject())),
        }
    }

    /// Waits until the process exits, as long as it takes. It is not reaped: for a child of
    /// this process, [`wait_child`](Process::wait_child) does both.
    ///
    /// # Errors
    ///
    /// The `poll` error (none for an open pidfd).
    pub fn wait_exit(&self) -> Result<()> {
        self.wait_exit_with(Wait::Block)
    }

    /// Whether the process has exited, as an error if not.
    ///
    /// # Errors
    ///
    /// `WouldBlock` while it runs.
    pub fn try_wait_exit(&self) -> Result<()> {
        self.wait_exit_with(Wait::Try)
    }

    /// Waits until the process exits, at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running then.
    pub fn wait_exit_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_exit_with(Wait::after(timeout))
    }

    /// Waits until the process exits, at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running at the deadline.
    pub fn wait_exit_deadline(&self, deadline: Deadline) -> Result<()> {
        self.wait_exit_with(Wait::Until(deadline))
    }

    /// Asks the process to terminate (`SIGTERM`), waits up to `grace` for it to exit, and
    /// kills it (`SIGKILL`) if it has not. Returns once it has exited; it is not reaped.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` if this process may not signal it; `TimedOut` if even `SIGKILL`
    /// did not end it within a second (a process stuck in the kernel).
    pub fn terminate(&self, grace: Duration) -> Result<Termination> {
        match self.send(Signal::TERM) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Termination::Graceful),
            other => other?,
        }
        // A stopped process cannot act on SIGTERM until it continues.
        let _ = self.send(Signal::CONT);
        match self.wait_exit_timeout(grace) {
            Ok(()) => return Ok(Termination::Graceful),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
        match self.send(Signal::KILL) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Termination::Graceful),
            other => other?,
        }
        self.wait_exit_timeout(Duration::from_secs(1))?;
        Ok(Termination::Killed)
    }

    /// For a child of this process: waits until it exits, as long as it takes, reaps it and
    /// says how it ended.
    ///
    /// # Errors
    ///
    /// `ECHILD` if it is not a child of this process (or was reaped already).
    pub fn wait_child(&self) -> Result<ChildExit> {
        self.wait_child_with(Wait::Block)
    }

    /// [`wait_child`](Process::wait_child) if the child has exited already.
    ///
    /// # Errors
    ///
    /// `WouldBlock` while it runs; otherwise as [`wait_child`](Process::wait_child).
    pub fn try_wait_child(&self) -> Result<ChildExit> {
        self.wait_child_with(Wait::Try)
    }

    /// [`wait_child`](Process::wait_child), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running; otherwise as [`wait_child`](Process::wait_child).
    pub fn wait_child_timeout(&self, timeout: Duration) -> Result<ChildExit> {
        self.wait_child_with(Wait::after(timeout))
    }

    /// [`wait_child`](Process::wait_child), waiting at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if it is still running; otherwise as [`wait_child`](Process::wait_child).
    pub fn wait_child_deadline(&self, deadline: Deadline) -> Result<ChildExit> {
        self.wait_child_with(Wait::Until(deadline))
    }

    fn wait_child_with(&self, wait: Wait) -> Result<ChildExit> {
        self.wait_exit_with(wait)?;
        let reaped = ipc_core::internal::retry_eintr(|| {
            sys::waitid_pidfd(self.pidfd.as_fd(), 0)
                .map_err(|e| e.with_subject(format!("pid {}", self.pid)))
        })?;
        let (code, status) = reaped.ok_or_else(|| {
            Error::new(
                "waitid",
                std::io::ErrorKind::Other,
                "no exit status after the exit",
            )
        })?;
        Ok(match code {
            libc::CLD_EXITED => ChildExit::Exited(status),
            libc::CLD_DUMPED => ChildExit::Dumped(Signal::new(status)?),
            _ => ChildExit::Killed(Signal::new(status)?),
        })
    }
}

impl AsFd for Process {
    /// The pidfd: readable once the process has exited.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

impl AsRawFd for Process {
    fn as_raw_fd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }
}

impl ipc_core::Source for Process {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a process")
    }
}
