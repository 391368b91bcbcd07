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
