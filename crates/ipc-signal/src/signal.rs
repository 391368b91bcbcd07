//! Signal numbers, including the real-time ones, and sets of them.

use std::fmt;

use ipc_core::{Error, Limit, Result};

use crate::sys;

/// A signal: a standard one (`SIGTERM`) or a real-time one (`SIGRTMIN + n`).
///
/// ```
/// use ipc_signal::Signal;
///
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// let rt = Signal::realtime(2)?;
/// assert!(rt.is_realtime());
/// assert_eq!(rt.to_string(), "SIGRTMIN+2");
/// # Ok::<(), ipc_signal::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(libc::c_int);

impl Signal {
    /// Hangup.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// Interrupt (Ctrl-C).
    pub const INT: Signal = Signal(libc::SIGINT);
    /// Quit.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// Abort.
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// Kill (cannot be caught, blocked or ignored).
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// User signal 1.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// User signal 2.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// Broken pipe.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// Alarm clock.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// Termination request.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// A child stopped or exited.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// Continue if stopped.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// Stop (cannot be caught, blocked or ignored).
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// Stop from the terminal.
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    /// Window size change.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);

    /// The signal with number `number`.
    ///
    /// # Errors
    ///
    /// A limit error outside 1 to `SIGRTMAX`.
    pub fn new(number: i32) -> Result<Signal> {
        let max = libc::SIGRTMAX();
        if !(1..=max).contains(&number) {
            return Err(Error::limit_exceeded(
                "Signal::new",
                "signal number",
                u64::try_from(number).unwrap_or(0),
                Limit::new("SIGRTMAX", u64::try_from(max).unwrap_or(0)),
            ));
        }
        Ok(Signal(number))
    }

    /// The real-time signal `SIGRTMIN + offset` (the C library reserves the first few
    /// real-time numbers, so `SIGRTMIN` is read at run time).
    ///
    /// # Errors
    ///
    /// A limit error past `SIGRTMAX`.
    pub fn realtime(offset: u32) -> Result<Signal> {
        let count = u32::try_from(libc::SIGRTMAX() - libc::SIGRTMIN()).unwrap_or(0);
        if offset > count {
            return Err(Error::limit_exceeded(
                "Signal::realtime",
                "real-time offset",
                u64::from(offset),
                Limit::new("SIGRTMAX - SIGRTMIN", u64::from(count)),
            ));
        }
        Signal::new(libc::SIGRTMIN() + i32::try_from(offset).unwrap_or(0))
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// Whether it is a real-time signal: queued with its payload, never coalesced.
    pub fn is_realtime(self) -> bool {
        self.0 >= libc::SIGRTMIN()
    }

    /// Whether a process can catch, block or ignore it (all but `SIGKILL` and `SIGSTOP`).
    pub fn is_catchable(self) -> bool {
        self != Signal::KILL && self != Signal::STOP
    }

    /// Fails for `SIGKILL` and `SIGSTOP`, which cannot be caught or blocked.
    pub(crate) fn catchable(self, op: &'static str) -> Result<Signal> {
        if self.is_catchable() {
            Ok(self)
        } else {
            Err(Error::new(
                op,
                std::io::ErrorKind::InvalidInput,
                format!("{self} cannot be caught, blocked or ignored"),
            ))
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rtmin = libc::SIGRTMIN();
        if self.0 >= rtmin {
            return write!(f, "SIGRTMIN+{}", self.0 - rtmin);
        }
        let name = match self.0 {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGTTIN => "SIGTTIN",
            libc::SIGTTOU => "SIGTTOU",
            libc::SIGURG => "SIGURG",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGVTALRM => "SIGVTALRM",
            libc::SIGPROF => "SIGPROF",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            libc::SIGPWR => "SIGPWR",
            libc::SIGSYS => "SIGSYS",
            other => return write!(f, "signal {other}"),
        };
        f.write_str(name)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({})", self.0)
    }
}

/// A set of signals, to block or to read through a [`SignalFd`](crate::SignalFd).
#[derive(Clone, Copy)]
pub struct SignalSet {
    pub(crate) set: sys::SigSet,
}

impl SignalSet {
    /// An empty set.
    pub fn new() -> Self {
        SignalSet {
            set: sys::SigSet::empty(),
        }
    }

    /// The set of `signals`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `SIGKILL` or `SIGSTOP`, which cannot be blocked.
    pub fn of(signals: &[Signal]) -> Result<Self> {
        let mut set = SignalSet::new();
        for &signal in signals {
            set.add(signal)?;
        }
        Ok(set)
    }

    /// Adds `signal`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `SIGKILL` or `SIGSTOP`.
    pub fn add(&mut self, signal: Signal) -> Result<()> {
        signal.catchable("sigaddset")?;
        self.set.add(signal.number())
    }

    /// Whether `signal` is in the set.
    pub fn contains(&self, signal: Signal) -> bool {
        self.set.contains(signal.number())
    }

    /// Blocks the set's signals in the calling thread and returns a guard that restores the
    /// thread's previous mask when dropped. Threads spawned meanwhile inherit the block, so
    /// to block a signal in every thread, block it in the main thread before spawning any.
    ///
    /// # Errors
    ///
    /// The error of `pthread_sigmask` (none for a valid set).
    pub fn block(&self) -> Result<MaskGuard> {
        let previous = self.set.apply(libc::SIG_BLOCK)?;
        Ok(MaskGuard {
            previous,
            _thread: std::marker::PhantomData,
        })
    }

    /// The signals blocked in the calling thread.
    ///
    /// # Errors
    ///
    /// The error of `pthread_sigmask` (none).
    pub fn blocked() -> Result<SignalSet> {
        Ok(SignalSet {
            set: sys::SigSet::current()?,
        })
    }
}

impl Default for SignalSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> = (1..=libc::SIGRTMAX())
            .filter(|&n| self.set.contains(n))
            .map(|n| Signal(n).to_string())
            .collect();
        f.debug_set().entries(members).finish()
    }
}

/// Restores the calling thread's signal mask when dropped (see [`SignalSet::block`]). Drop
/// it on the thread that made it.
#[must_use = "the signals are unblocked again when the guard is dropped"]
pub struct MaskGuard {
    previous: sys::SigSet,
    /// A mask belongs to a thread.
    _thread: std::marker::PhantomData<*const ()>,
}

impl MaskGuard {
    /// Keeps the signals blocked for good.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for MaskGuard {
    fn drop(&mut self) {
        // Setting a mask from a valid set does not fail.
        let _ = self.previous.apply(libc::SIG_SETMASK);
    }
}

impl fmt::Debug for MaskGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskGuard")
    }
}
