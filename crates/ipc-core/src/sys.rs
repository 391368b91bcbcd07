//! ipc-core's only unsafe code: `sigtimedwait`, `pidfd_open`, `futex` and `gettid`, which nix
//! does not wrap, the `eventfd` of a cancellation token (written from signal handlers), and
//! the fork handler that keeps thread identities right in a child, and adding a descriptor
//! to a [`Selector`](crate::Selector)'s poller.

/// Takes a pending `SIGPIPE` off the calling thread, if there is one, without waiting.
pub(crate) fn take_pending_sigpipe() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGPIPE);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` is a valid signal set, `zero` a valid timespec, and a null `siginfo`
    // pointer is allowed. With a zero timeout the call never blocks; `EAGAIN` (nothing
    // pending, for example because SIGPIPE is ignored) is the expected failure.
    unsafe {
        libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero);
    }
}

/// `pidfd_open(pid, 0)` (Linux 5.3): a descriptor that becomes readable when the process
/// exits and, unlike the pid, can never come to refer to another process.
pub(crate) fn pidfd_open(pid: u32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `pidfd_open` takes a pid and flags and returns a new descriptor or -1; it
    // touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = std::os::fd::RawFd::try_from(ret)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor (close-on-exec) that nothing
    // else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `futex(FUTEX_WAIT)` on a word in shared memory (no `FUTEX_PRIVATE_FLAG`: the waker is
/// another process): sleeps while `*word == expected`, at most `timeout`. Returns early on a
/// wake, a changed value, a signal or the timeout; callers re-check their condition.
pub(crate) fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: Option<std::time::Duration>,
) {
    let spec = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let spec_ptr = spec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call (it is
    // borrowed), `spec_ptr` is null or points to a live timespec, and FUTEX_WAIT reads only
    // the word. Every outcome (woken, EAGAIN, EINTR, ETIMEDOUT) is handled by the caller's
    // re-check, so the result is not needed.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            spec_ptr,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// `futex(FUTEX_WAKE)`: wakes up to `count` processes waiting on `word`.
pub(crate) fn futex_wake(word: &std::sync::atomic::AtomicU32, count: i32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not access memory
    // beyond identifying the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// `gettid()`: the calling thread's id.
pub(crate) fn gettid() -> u32 {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

/// Runs `child` in the child process after every `fork` of this process (`pthread_atfork`).
pub(crate) fn at_fork_in_child(child: extern "C" fn()) {
    // SAFETY: registering a handler with no prepare or parent step; `child` is a plain
    // function that only stores to an atomic, which is allowed after fork.
    unsafe {
        libc::pthread_atfork(None, None, Some(child));
    }
}

/// A close-on-exec, non-blocking `eventfd` starting at 0.
pub(crate) fn eventfd() -> crate::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: `eventfd` takes a value and flags and returns a new descriptor or -1.
    let fd = crate::error::cvt("eventfd", unsafe {
        libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)
    })?;
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to the `eventfd` `fd`, making it readable. Only `write(2)`: async-signal-safe. A
/// counter at its maximum (`EAGAIN`) is readable already, so a failure changes nothing.
pub(crate) fn eventfd_signal(fd: std::os::fd::RawFd) {
    let one: u64 = 1;
    // SAFETY: `one` is 8 readable bytes, as an eventfd write takes; `fd` is an eventfd
    // that the caller keeps open.
    unsafe { libc::write(fd, std::ptr::from_ref(&one).cast(), 8) };
}

/// Adds `fd` to `poller` (`epoll_ctl(EPOLL_CTL_ADD)`).
pub(crate) fn poller_add(
    poller: &polling::Poller,
    fd: std::os::fd::BorrowedFd<'_>,
    event: polling::Event,
    mode: polling::PollMode,
) -> std::io::Result<()> {
    // SAFETY: `Poller::add` requires that the descriptor is deleted from the poller before
    // it is closed. Every caller passes a descriptor it owns for as long as it is added
    // (a `Selector` entry's duplicate, or a cancellation token it keeps a clone of) and
    // deletes it before dropping it; a descriptor closed while still added would at worst
    // leave a stale epoll entry, which the kernel removes with the file.
    unsafe { poller.add_with_mode(std::os::fd::AsRawFd::as_raw_fd(&fd), event, mode) }
}

/// One entry of a `futex_waitv` set: a 32-bit word at `addr`, keyed as shared between
/// processes (as `futex_wait` and `futex_wake` key theirs).
pub(crate) struct WaitvEntry {
    pub(crate) addr: usize,
    pub(crate) expected: u32,
}

/// `futex_waitv` (Linux 5.16): sleeps until one of the words is woken, one no longer holds
/// its expected value (`EAGAIN`), or the `CLOCK_MONOTONIC` deadline passes (`ETIMEDOUT`).
/// Returns the index of the woken word.
///
/// The words are given by address: the kernel reads them and fails with `EFAULT` if one
/// is no longer mapped, and nothing in this process reads them, so an address that went
/// stale is an error, never undefined behaviour.
pub(crate) fn futex_waitv(
    entries: &[WaitvEntry],
    deadline: Option<std::time::Instant>,
) -> std::result::Result<usize, nix::errno::Errno> {
    let waiters: Vec<libc::futex_waitv> = entries
        .iter()
        .map(|entry| {
            // SAFETY: all-zero is a valid `futex_waitv` (its reserved field must be 0).
            let mut waiter: libc::futex_waitv = unsafe { std::mem::zeroed() };
            waiter.val = u64::from(entry.expected);
            waiter.uaddr = entry.addr as u64;
            waiter.flags = u32::try_from(libc::FUTEX2_SIZE_U32).unwrap_or(2);
            waiter
        })
        .collect();
    let spec = deadline.map(|at| {
        // The deadline on CLOCK_MONOTONIC, which `Instant` reads.
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(std::time::Duration::from)
            .unwrap_or_default();
        let at = now + at.saturating_duration_since(std::time::Instant::now());
        libc::timespec {
            tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(at.subsec_nanos()),
        }
    });
    let spec_ptr = spec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    let count = u32::try_from(waiters.len()).unwrap_or(u32::MAX);
    // SAFETY: `waiters` holds `count` initialised entries for the duration of the call,
    // `spec_ptr` is null or points to a live timespec; the kernel only reads the words the
    // entries name (see above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            count,
            0u32,
            spec_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if ret < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(usize::try_from(ret).unwrap_or(0))
    }
}

/// `FUTEX_WAKE` of one sleeper on the shared word at `addr`, given by address: the kernel
/// only identifies the word (`EFAULT` if it is no longer mapped, which is ignored).
pub(crate) fn futex_wake_addr(addr: usize) {
    // SAFETY: FUTEX_WAKE reads no memory of ours; a stale address fails with EFAULT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr as *const u32,
            libc::FUTEX_WAKE,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// Registers `fd` with the current tokio runtime's reactor.
#[cfg(feature = "tokio")]
pub(crate) fn async_fd(
    fd: std::os::fd::OwnedFd,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: `AsyncFd` requires that the descriptor stays open and the same for as long as
    // it is registered: an `OwnedFd` moved into the `AsyncFd` is owned by it alone, closed
    // only when it is dropped, and always returns the same number.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(|e| e.into_parts().1)
}
