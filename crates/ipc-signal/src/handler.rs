//! Handling signals through signal-hook's handler table: a channel-like receiver, and
//! flags.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ipc_core::{Deadline, Error, Result};
use nix::fcntl::OFlag;
use nix::poll::PollFlags;

use crate::{Signal, sys};

/// Signals delivered to this process's handlers, received like messages from a channel:
/// blocking, non-blocking or with a timeout, as an iterator, or by polling its descriptor.
///
/// Each registered signal gets a handler in signal-hook's table (so other signal-hook users
/// coexist: every handler of a signal runs) that only writes the signal's number to a
/// non-blocking pipe, which is async-signal-safe. Dropping the receiver unregisters.
///
/// **Standard signals coalesce**: one sent while another of its kind is pending is lost, so
/// a receiver promises at least one delivery after a signal is sent, not a count. Bursts
/// beyond the pipe's capacity (64 KiB of deliveries) are dropped the same way. For every
/// delivery with its payload, use real-time signals and a [`SignalFd`](crate::SignalFd).
///
/// Handlers are installed with `SA_RESTART` by signal-hook, but other code may install its
/// own without it: every blocking call in ipc-rs retries `EINTR`.
///
/// ```
/// use ipc_signal::{Signal, SignalReceiver};
/// use std::time::Duration;
///
/// let receiver = SignalReceiver::new(&[Signal::USR1])?;
/// ipc_signal::raise(Signal::USR1)?;
/// assert_eq!(receiver.recv_timeout(Duration::from_secs(5))?, Signal::USR1);
/// assert!(receiver.try_recv().unwrap_err().is_would_block());
/// # Ok::<(), ipc_signal::Error>(())
/// ```
#[derive(Debug)]
pub struct SignalReceiver {
    read: OwnedFd,
    // Kept open for the handlers; closed after they are unregistered.
    _write: OwnedFd,
    ids: Vec<signal_hook::SigId>,
}

impl SignalReceiver {
    /// Registers handlers for `signals`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `SIGKILL`, `SIGSTOP`, or a signal signal-hook refuses to handle
    /// (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`: handling them safely is impossible); the
    /// error of creating the pipe.
    pub fn new(signals: &[Signal]) -> Result<SignalReceiver> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| Error::from_errno("pipe2", e))?;
        let mut receiver = SignalReceiver {
            read,
            _write: write,
            ids: Vec::new(),
        };
        for &signal in signals {
            signal.catchable("signal handler")?;
            let id = sys::register_pipe_writer(signal.number(), receiver._write.as_raw_fd())
                .map_err(|e| e.with_subject(signal.to_string()))?;
            receiver.ids.push(id);
        }
        Ok(receiver)
    }

    fn read_one(&self) -> Result<Option<Signal>> {
        let mut byte = [0u8; 1];
        match nix::unistd::read(&self.read, &mut byte) {
            Ok(1) => Signal::new(i32::from(byte[0])).map(Some),
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(nix::errno::Errno::EINTR) => self.read_one(),
            Err(e) => Err(Error::from_errno("read", e)),
        }
    }

    fn recv_until(&self, deadline: Deadline, op: &'static str) -> Result<Signal> {
        loop {
            if let Some(signal) = self.read_one()? {
                return Ok(signal);
            }
            ipc_core::internal::poll_fd(&self.read, PollFlags::POLLIN, deadline, op)?;
        }
    }

    /// The next signal delivered, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// The errors of `poll` and `read` (none).
    pub fn recv(&self) -> Result<Signal> {
        self.recv_until(Deadline::NEVER, "signal recv")
    }

    /// A signal delivered and not received yet, if any.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if there is none.
    pub fn try_recv(&self) -> Result<Signal> {
        self.read_one()?
            .ok_or_else(|| Error::would_block("signal try_recv"))
    }

    /// The next signal delivered, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Signal> {
        self.recv_until(Deadline::after(timeout), "signal recv_timeout")
    }

    /// The signals already delivered, without waiting.
    pub fn pending(&self) -> impl Iterator<Item = Signal> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }
}

impl Iterator for &SignalReceiver {
    type Item = Signal;

    /// The next signal, waiting as long as it takes (`None` only if reading fails).
    fn next(&mut self) -> Option<Signal> {
        self.recv().ok()
    }
}

impl AsFd for SignalReceiver {
    /// Readable while signals wait to be received.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for SignalReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl Drop for SignalReceiver {
    fn drop(&mut self) {
        // Unregister before the pipe closes, so that no handler writes to a closed (or
        // reused) descriptor.
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// A flag set to `true` whenever `signal` is delivered (signal-hook's flag handler): for a
/// loop that checks it between units of work. Reset it yourself to see the next one.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use ipc_signal::Signal;
///
/// let (flag, _registration) = ipc_signal::flag(Signal::USR2)?;
/// ipc_signal::raise(Signal::USR2)?;
/// assert!(flag.load(Ordering::SeqCst));
/// # Ok::<(), ipc_signal::Error>(())
/// ```
///
/// # Errors
///
/// `InvalidInput` for signals that cannot or must not be handled.
pub fn flag(signal: Signal) -> Result<(Arc<AtomicBool>, Registration)> {
    signal.catchable("signal_hook::flag::register")?;
    let flag = Arc::new(AtomicBool::new(false));
    let id = signal_hook::flag::register(signal.number(), Arc::clone(&flag)).map_err(|e| {
        Error::from(e)
            .with_op("signal_hook::flag::register")
            .with_subject(signal.to_string())
    })?;
    Ok((flag, Registration(Some(id))))
}

/// A handler registered in signal-hook's table, unregistered when dropped.
#[derive(Debug)]
#[must_use = "the handler is unregistered as soon as this is dropped"]
pub struct Registration(Option<signal_hook::SigId>);

impl Registration {
    /// Keeps the handler for the life of the process.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl ipc_core::Source for SignalReceiver {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(
            std::os::fd::AsFd::as_fd(self),
            interest,
            "a signal receiver",
        )
    }
}

/// `Async<SignalReceiver>` is a `Stream` of the signals it receives.
#[cfg(feature = "tokio")]
impl ipc_core::TryNext for SignalReceiver {
    type Item = Signal;

    fn try_next(&mut self) -> Result<Signal> {
        self.try_recv()
    }
}
