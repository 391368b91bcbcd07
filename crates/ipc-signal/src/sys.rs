//! The crate's only unsafe code: signal masks, `signalfd`, `kill`/`sigqueue`,
//! `pidfd_send_signal`, `waitid` on a pidfd, `sigaction` for saved dispositions, and the
//! async-signal-safe handler registered through signal-hook.
//!
//! Every function returns an error naming its call; callers add the signal or process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use ipc_core::internal::cvt;
use ipc_core::{Error, Result};

/// A `sigset_t`.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    pub(crate) fn empty() -> SigSet {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `sigemptyset` initialises the whole set.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            SigSet(set.assume_init())
        }
    }

    /// Adds `signal` (a valid signal number, checked by the caller).
    pub(crate) fn add(&mut self, signal: libc::c_int) -> Result<()> {
        // SAFETY: an initialised set; an invalid number is reported as EINVAL.
        cvt("sigaddset", unsafe { libc::sigaddset(&mut self.0, signal) }).map(drop)
    }

    pub(crate) fn contains(&self, signal: libc::c_int) -> bool {
        // SAFETY: an initialised set.
        unsafe { libc::sigismember(&self.0, signal) == 1 }
    }

    /// `pthread_sigmask(how, self)`, returning the previous mask.
    pub(crate) fn apply(&self, how: libc::c_int) -> Result<SigSet> {
        let mut old = SigSet::empty();
        // SAFETY: valid sets for reading and writing.
        let ret = unsafe { libc::pthread_sigmask(how, &self.0, &mut old.0) };
        if ret == 0 {
            Ok(old)
        } else {
            // pthread calls return the error number instead of setting errno.
            Err(Error::from_raw_os_error("pthread_sigmask", ret))
        }
    }

    /// The calling thread's mask.
    pub(crate) fn current() -> Result<SigSet> {
        let mut old = SigSet::empty();
        // SAFETY: a null new set only reads the mask into `old`.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old.0) };
        if ret == 0 {
            Ok(old)
        } else {
            Err(Error::from_raw_os_error("pthread_sigmask", ret))
        }
    }

    /// A `signalfd` for the set (close-on-exec, non-blocking).
    pub(crate) fn signalfd(&self) -> Result<OwnedFd> {
        // SAFETY: a valid set; -1 asks for a new descriptor.
        let fd = cvt("signalfd", unsafe {
            libc::signalfd(-1, &self.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        })?;
        // SAFETY: a new descriptor that nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// What a signalfd read returns: (signal, code, sender pid, sender uid, integer payload).
pub(crate) type RawInfo = (u32, i32, u32, u32, i32);

/// Reads one `signalfd_siginfo`, or `None` if none is pending (`EAGAIN`).
pub(crate) fn read_siginfo(fd: BorrowedFd<'_>) -> Result<Option<RawInfo>> {
    const OP: &str = "read(signalfd)";
    let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::zeroed();
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is writable for `size` bytes.
    let n = match cvt(OP, unsafe {
        libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), size)
    }) {
        Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
        other => other?,
    };
    if usize::try_from(n).ok() != Some(size) {
        return Err(Error::new(
            OP,
            io::ErrorKind::InvalidData,
            "a short signalfd read",
        ));
    }
    // SAFETY: zero-initialised, then filled in whole by the kernel; plain integers.
    let info = unsafe { info.assume_init() };
    Ok(Some((
        info.ssi_signo,
        info.ssi_code,
        info.ssi_pid,
        info.ssi_uid,
        info.ssi_int,
    )))
}

/// `kill(pid, signal)`.
pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> Result<()> {
    // SAFETY: integer arguments only.
    cvt("kill", unsafe { libc::kill(pid, signal) }).map(drop)
}

/// `sigqueue(pid, signal, value)`.
pub(crate) fn sigqueue(pid: libc::pid_t, signal: libc::c_int, value: i32) -> Result<()> {
    // The payload travels in the pointer-sized union; an integer sent this way is read
    // back as `ssi_int` / `si_int`.
    let value = libc::sigval {
        sival_ptr: value as isize as *mut libc::c_void,
    };
    // SAFETY: integer arguments and a plain union.
    cvt("sigqueue", unsafe { libc::sigqueue(pid, signal, value) }).map(drop)
}

/// `pidfd_send_signal(pidfd, signal, NULL, 0)`: like `kill`, to the very process the pidfd
/// names.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> Result<()> {
    // SAFETY: an open pidfd, a signal number, no siginfo, no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt("pidfd_send_signal", ret).map(drop)
}

/// `waitid(P_PIDFD, pidfd, WEXITED | options)` for a child: `Some((code, status))` once it
/// has exited (reaped), `None` with `WNOHANG` while it runs.
pub(crate) fn waitid_pidfd(
    pidfd: BorrowedFd<'_>,
    options: libc::c_int,
) -> Result<Option<(i32, i32)>> {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let id = libc::id_t::try_from(pidfd.as_raw_fd())
        .map_err(|_| Error::new("waitid", io::ErrorKind::InvalidInput, "a negative pidfd"))?;
    // SAFETY: `info` is a writable siginfo; integer arguments otherwise.
    cvt("waitid", unsafe {
        libc::waitid(
            libc::P_PIDFD,
            id,
            info.as_mut_ptr(),
            libc::WEXITED | options,
        )
    })?;
    // SAFETY: zero-initialised and filled in by the kernel if a child changed state.
    let info = unsafe { info.assume_init() };
    // SAFETY: the pid and status fields are valid for a SIGCHLD siginfo, and read as 0 when
    // nothing changed (WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some((info.si_code, status)))
}

/// A signal's disposition as `sigaction` keeps it, saved to be put back.
pub(crate) struct SavedAction(libc::sigaction);

/// Sets `signal` to the default action (`ignore` false) or to ignored, returning the
/// previous action.
pub(crate) fn set_disposition(signal: libc::c_int, ignore: bool) -> Result<SavedAction> {
    // SAFETY: an all-zero `sigaction` is valid (empty mask, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid actions for reading and writing.
    cvt("sigaction", unsafe {
        libc::sigaction(signal, &action, &mut old)
    })?;
    Ok(SavedAction(old))
}

/// Puts a saved action back.
pub(crate) fn restore_disposition(signal: libc::c_int, saved: &SavedAction) -> Result<()> {
    // SAFETY: an action `sigaction` itself returned, so whatever handler it names was
    // installed before and is still valid.
    cvt("sigaction", unsafe {
        libc::sigaction(signal, &saved.0, std::ptr::null_mut())
    })
    .map(drop)
}

/// Registers, through signal-hook, a handler that writes the signal's number as one byte to
/// `fd` (a non-blocking pipe): only `write(2)`, which is async-signal-safe, and a full pipe
/// just drops the byte.
pub(crate) fn register_pipe_writer(signal: libc::c_int, fd: RawFd) -> Result<signal_hook::SigId> {
    let byte = u8::try_from(signal).map_err(|_| {
        Error::new(
            "signal_hook::register",
            io::ErrorKind::InvalidInput,
            "not a signal number",
        )
    })?;
    let action = move || {
        // SAFETY: `write` is async-signal-safe; the pipe stays open while the registration
        // exists (its owner unregisters before closing it); errno is preserved by
        // signal-hook around the handler.
        unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
    };
    // SAFETY: the action does only async-signal-safe work (one `write`), allocates nothing
    // and takes no lock.
    unsafe { signal_hook::low_level::register(signal, action) }
        .map_err(|e| Error::from(e).with_op("signal_hook::register"))
}

/// `_exit(code)`: async-signal-safe process exit, for a handler.
pub(crate) fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// What the shutdown handlers share with the program: only atomics and a descriptor, so that the
/// handlers stay async-signal-safe.
#[derive(Debug)]
pub(crate) struct ShutdownState {
    /// The process token to cancel, if the shutdown cancels waits.
    pub(crate) cancel: Option<ipc_core::Cancel>,
    pub(crate) requested: AtomicBool,
    pub(crate) count: AtomicUsize,
    pub(crate) signal: AtomicI32,
    pub(crate) force_exit: Option<i32>,
    pub(crate) write: OwnedFd,
}

impl ShutdownState {
    /// Records a delivery of `signal`; returns how many there have been.
    pub(crate) fn record(&self, signal: libc::c_int) -> usize {
        self.signal.store(signal, Ordering::SeqCst);
        self.requested.store(true, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The descriptor the handler writes a byte to.
    pub(crate) fn wake_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// The exit code to leave with on a second signal, if configured.
    pub(crate) fn force_exit(&self) -> Option<i32> {
        self.force_exit
    }
}

/// Registers, through signal-hook, a handler that stores `true` into `flag`, writes one
/// byte to `fd`, and on the second delivery exits the process with `force_exit` if given.
pub(crate) fn register_shutdown(
    signal: libc::c_int,
    state: std::sync::Arc<ShutdownState>,
) -> Result<signal_hook::SigId> {
    let action = move || {
        // Only atomics, `write` and `_exit`: all async-signal-safe.
        let count = state.record(signal);
        // SAFETY: as in `register_pipe_writer`.
        unsafe { libc::write(state.wake_fd(), [1u8].as_ptr().cast(), 1) };
        // After the pipe, so that a `Shutdown::wait` sees the request, not a cancellation.
        if let Some(cancel) = &state.cancel {
            // An atomic store and a `write`.
            cancel.cancel();
        }
        if count >= 2 {
            if let Some(code) = state.force_exit() {
                exit_now(code);
            }
        }
    };
    // SAFETY: the action does only async-signal-safe work (atomics, `write`, `_exit`).
    unsafe { signal_hook::low_level::register(signal, action) }
        .map_err(|e| Error::from(e).with_op("signal_hook::register"))
}

/// `raise(signal)`: sends the signal to the calling thread.
pub(crate) fn raise(signal: libc::c_int) -> Result<()> {
    // SAFETY: an integer argument.
    cvt("raise", unsafe { libc::raise(signal) }).map(drop)
}
