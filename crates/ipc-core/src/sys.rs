//! ipc-core's only unsafe code: `sigtimedwait`, which nix does not wrap.

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
