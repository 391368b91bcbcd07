//! Reading signals as data: `signalfd`, with the sender and the `sigqueue` payload.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ipc_core::{Deadline, Error, Result};
use nix::poll::PollFlags;

use crate::{MaskGuard, Signal, SignalSet, sys};

/// A signal read from a [`SignalFd`]: which, why, from whom, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalInfo {
    /// The signal.
    pub signal: Signal,
    /// Why it was sent (`si_code`): `SI_USER` (0) for `kill`, `SI_QUEUE` (-1) for
    /// `sigqueue`, `SI_TKILL`, or a kernel code.
    pub code: i32,
    /// The sender's pid (for signals sent by a process).
    pub pid: u32,
    /// The sender's real uid.
    pub uid: u32,
    /// The integer payload of a queued signal (0 otherwise).
    pub value: i32,
}

impl SignalInfo {
    /// Whether it was sent with `sigqueue` (and so carries a payload).
    pub fn is_queued(&self) -> bool {
        self.code == libc::SI_QUEUE
    }
}

/// Signals read as data from a descriptor (`signalfd`): pollable ([`AsFd`]), with blocking,
/// non-blocking and timed reads. Real-time signals are queued by the kernel and read one
/// by one, in order, with their payloads; a standard signal sent several times before it
/// is read arrives once (the kernel keeps one pending).
///
/// The signals must be blocked, or their default action (or a handler) takes them first:
/// [`SignalFd::new`] blocks them in the calling thread and keeps them blocked. A signal
/// sent to the process goes to any thread that does not block it, so block them in every
/// thread: create the `SignalFd` (or call [`SignalSet::block`]) in the main thread before
/// spawning others, which inherit the mask.
///
/// ```
/// use ipc_signal::{Signal, SignalFd};
/// use std::time::Duration;
///
/// let rt = Signal::realtime(1)?;
/// let fd = SignalFd::new(&[rt])?;
/// // A thread-directed signal, so that no other thread of this test binary takes it.
/// ipc_signal::raise(rt)?;
/// let info = fd.recv_timeout(Duration::from_secs(5))?;
/// assert_eq!(info.signal, rt);
/// assert_eq!(info.pid, std::process::id());
/// # Ok::<(), ipc_signal::Error>(())
/// ```
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
    set: SignalSet,
}

impl SignalFd {
    /// Blocks `signals` in the calling thread (for good) and opens a descriptor that
    /// reads them (close-on-exec).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `SIGKILL` or `SIGSTOP`; the error of `signalfd`.
    pub fn new(signals: &[Signal]) -> Result<SignalFd> {
        let set = SignalSet::of(signals)?;
        let guard: MaskGuard = set.block()?;
        guard.keep();
        let fd = set.set.signalfd()?;
        Ok(SignalFd { fd, set })
    }

    /// The signals it reads.
    pub fn signals(&self) -> &SignalSet {
        &self.set
    }

    fn read(&self) -> Result<Option<SignalInfo>> {
        let Some((signo, code, pid, uid, value)) =
            ipc_core::internal::retry_eintr(|| sys::read_siginfo(self.fd.as_fd()))?
        else {
            return Ok(None);
        };
        Ok(Some(SignalInfo {
            signal: Signal::new(i32::try_from(signo).unwrap_or(0))?,
            code,
            pid,
            uid,
            value,
        }))
    }

    fn recv_until(&self, deadline: Deadline, op: &'static str) -> Result<SignalInfo> {
        loop {
            if let Some(info) = self.read()? {
                return Ok(info);
            }
            ipc_core::internal::poll_fd(&self.fd, PollFlags::POLLIN, deadline, op)?;
        }
    }

    /// Reads the next signal, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// The errors of `poll` and `read` (none for a valid descriptor).
    pub fn recv(&self) -> Result<SignalInfo> {
        // Wait in `poll` only when nothing is pending: one system call for a signal that
        // is there, two more to sleep for one that is not.
        self.recv_until(Deadline::NEVER, "signalfd recv")
    }

    /// Reads a pending signal, if there is one.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is pending.
    pub fn try_recv(&self) -> Result<SignalInfo> {
        self.read()?
            .ok_or_else(|| Error::would_block("signalfd try_recv"))
    }

    /// Reads the next signal, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<SignalInfo> {
        self.recv_until(Deadline::after(timeout), "signalfd recv_timeout")
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<SignalFd> for OwnedFd {
    /// The descriptor; the signals stay blocked in the threads that blocked them.
    fn from(signalfd: SignalFd) -> OwnedFd {
        signalfd.fd
    }
}

impl ipc_core::Source for SignalFd {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a signalfd")
    }
}

/// `Async<SignalFd>` is a `Stream` of the signals it reads.
#[cfg(feature = "tokio")]
impl ipc_core::TryNext for SignalFd {
    type Item = SignalInfo;

    fn try_next(&mut self) -> Result<SignalInfo> {
        self.try_recv()
    }
}
