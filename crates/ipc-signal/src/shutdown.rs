//! Graceful shutdown on SIGTERM and SIGINT: a flag to check, a descriptor to poll, a wait
//! with a deadline, and an optional forced exit on the second signal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use ipc_core::internal::Wait;
use ipc_core::{Cancel, Deadline, Error, Result};
use nix::fcntl::OFlag;
use nix::poll::PollFlags;

use crate::Signal;
use crate::sys::{self, ShutdownState};

/// Options for [`Shutdown`]: which signals ask for it, and whether a second one forces the
/// process out.
#[derive(Clone, Debug)]
pub struct ShutdownOptions {
    signals: Vec<Signal>,
    force_exit: Option<i32>,
    cancel_waits: bool,
}

impl Default for ShutdownOptions {
    /// `SIGTERM` and `SIGINT`, no forced exit, waits cancelled.
    fn default() -> Self {
        ShutdownOptions {
            signals: vec![Signal::TERM, Signal::INT],
            force_exit: None,
            cancel_waits: true,
        }
    }
}

impl ShutdownOptions {
    /// `SIGTERM` and `SIGINT`, no forced exit, waits cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signals that ask for a shutdown.
    #[must_use]
    pub fn signals(mut self, signals: &[Signal]) -> Self {
        self.signals = signals.to_vec();
        self
    }

    /// On the second shutdown signal, leave at once with `code` (`_exit`: no destructors,
    /// so named objects stay behind): for a user who presses Ctrl-C twice.
    #[must_use]
    pub fn force_exit_on_second(mut self, code: i32) -> Self {
        self.force_exit = Some(code);
        self
    }

    /// Whether a shutdown signal also cancels the [process token](Cancel::process), ending
    /// every wait that watches it with a cancelled error (the default): a worker blocked in
    /// a receive then returns (a wait on a descriptor at once, one without within its 20 ms
    /// slice) instead of being killed after the grace period, and can remove its objects.
    /// Calls that need not wait still work, so what is queued can be drained.
    #[must_use]
    pub fn cancel_waits(mut self, cancel: bool) -> Self {
        self.cancel_waits = cancel;
        self
    }

    /// Installs the handlers (alongside any other signal-hook handlers of these signals).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal that cannot be handled; the error of creating the pipe
    /// or the process token.
    pub fn install(&self) -> Result<Shutdown> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| Error::from_errno("pipe2", e))?;
        // Made here, not in the handler, which may not allocate.
        let cancel = if self.cancel_waits {
            Some(Cancel::process()?.clone())
        } else {
            None
        };
        let state = Arc::new(ShutdownState {
            cancel,
            requested: AtomicBool::new(false),
            count: AtomicUsize::new(0),
            signal: AtomicI32::new(0),
            force_exit: self.force_exit,
            write,
        });
        let mut shutdown = Shutdown {
            state: Arc::clone(&state),
            read,
            ids: Vec::new(),
        };
        for &signal in &self.signals {
            signal.catchable("shutdown handler")?;
            let id = sys::register_shutdown(signal.number(), Arc::clone(&state))
                .map_err(|e| e.with_subject(signal.to_string()))?;
            shutdown.ids.push(id);
        }
        Ok(shutdown)
    }
}

/// A request to shut down, made by `SIGTERM` or `SIGINT` (or the signals configured):
/// check [`is_requested`](Shutdown::is_requested) between units of work, hand
/// [`token`](Shutdown::token)s to other threads, poll the descriptor ([`AsFd`]) next to
/// other work, or [`wait`](Shutdown::wait) for it.
///
/// ```
/// use ipc_signal::{ShutdownOptions, Signal};
/// use std::time::Duration;
///
/// let shutdown = ShutdownOptions::new().signals(&[Signal::USR2]).install()?;
/// assert!(!shutdown.is_requested());
/// ipc_signal::raise(Signal::USR2)?;
/// assert_eq!(shutdown.wait_timeout(Duration::from_secs(5))?, Signal::USR2);
/// assert!(shutdown.token().is_requested());
/// # Ok::<(), ipc_signal::Error>(())
/// ```
#[derive(Debug)]
pub struct Shutdown {
    state: Arc<ShutdownState>,
    read: OwnedFd,
    ids: Vec<signal_hook::SigId>,
}

impl Shutdown {
    /// Whether a shutdown signal has arrived.
    pub fn is_requested(&self) -> bool {
        self.state.requested.load(Ordering::SeqCst)
    }

    /// The last shutdown signal that arrived, if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::new(self.state.signal.load(Ordering::SeqCst)).ok()
    }

    /// A cheap handle for other threads to check the request with.
    pub fn token(&self) -> ShutdownToken {
        ShutdownToken(Arc::clone(&self.state))
    }

    /// Waits until a shutdown signal arrives (or has arrived), as long as it takes, and
    /// says which.
    ///
    /// # Errors
    ///
    /// The `poll` error (none for a live shutdown).
    pub fn wait(&self) -> Result<Signal> {
        self.wait_with(Wait::Block)
    }

    /// The shutdown signal, if one has arrived.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none has.
    pub fn try_wait(&self) -> Result<Signal> {
        self.wait_with(Wait::Try)
    }

    /// Waits at most `timeout` for a shutdown signal.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Signal> {
        self.wait_with(Wait::after(timeout))
    }

    /// Waits until a shutdown signal arrives (or has arrived), at most until `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came.
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<Signal> {
        self.wait_with(Wait::Until(deadline))
    }

    /// Waits on the current tokio runtime until a shutdown signal arrives (or has
    /// arrived), and says which: the future a task selects on beside its work. Any number
    /// of tasks may await it at once (share the `Shutdown` in an `Arc`).
    ///
    /// Cancellation-safe: it takes nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> ipc_signal::Result<()> {
    /// use ipc_signal::{ShutdownOptions, Signal};
    ///
    /// let shutdown = ShutdownOptions::new().signals(&[Signal::USR2]).install()?;
    /// ipc_signal::raise(Signal::USR2)?;
    /// assert_eq!(shutdown.requested().await?, Signal::USR2);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Outside a runtime with I/O enabled; the registration's.
    #[cfg(feature = "tokio")]
    pub async fn requested(&self) -> Result<Signal> {
        ipc_core::Async::new(self).read_with(|s| s.try_wait()).await
    }

    fn wait_with(&self, wait: Wait) -> Result<Signal> {
        const OP: &str = "shutdown wait";
        let deadline = wait
            .deadline()
            .unwrap_or_else(|| Deadline::after(Duration::ZERO));
        while !self.is_requested() {
            match ipc_core::internal::poll_fd_unwatched(&self.read, PollFlags::POLLIN, deadline, OP)
            {
                Err(e) if e.is_timeout() && wait == Wait::Try => {
                    return Err(Error::would_block(OP));
                }
                other => other?,
            };
            let mut bytes = [0u8; 64];
            let _ = nix::unistd::read(&self.read, &mut bytes);
        }
        self.signal().ok_or_else(|| {
            Error::new(
                "shutdown wait",
                std::io::ErrorKind::Other,
                "no signal recorded",
            )
        })
    }
}

impl AsFd for Shutdown {
    /// Readable once a shutdown signal has arrived.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for Shutdown {
    /// See [`as_fd`](Shutdown::as_fd).
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// A handle on a [`Shutdown`] request, for other threads.
#[derive(Clone, Debug)]
pub struct ShutdownToken(Arc<ShutdownState>);

impl ShutdownToken {
    /// Whether a shutdown signal has arrived.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

impl ipc_core::Source for Shutdown {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a shutdown")
    }
}
