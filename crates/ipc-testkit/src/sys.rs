//! The test kit's only unsafe code: the hook that runs in a peer between `fork` and `exec`,
//! and the signal handler of the signal storm.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The descriptor number at which a peer finds its control pipe to the parent.
pub(crate) const CONTROL_FD: RawFd = 3;

/// A tmpfs to mount over a directory in a peer's own mount namespace: the directory and the
/// mount options (such as `size=256k`).
pub(crate) type PrivateTmpfs = (std::ffi::CString, std::ffi::CString);

/// Arranges for the spawned peer to find `control` at [`CONTROL_FD`], to be killed when
/// the thread that spawns it exits, and, if asked, to see a small tmpfs of its own.
pub(crate) fn configure_peer(cmd: &mut Command, control: RawFd, tmpfs: Option<PrivateTmpfs>) {
    let hook = move || -> io::Result<()> {
        // Only async-signal-safe calls below: this runs in the child after `fork`, where
        // another thread of the parent may have held a lock (of the allocator, say) that
        // no one will ever release in the child.
        if control == CONTROL_FD {
            // `dup2` onto itself would keep the close-on-exec flag; clear it instead.
            // SAFETY: `fcntl` with `F_SETFD` on a descriptor we own has no memory effects.
            if unsafe { libc::fcntl(control, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        // SAFETY: `dup2` only manipulates the descriptor table; `control` is open (the
        // parent keeps it open across the spawn) and `CONTROL_FD` is ours to replace.
        } else if unsafe { libc::dup2(control, CONTROL_FD) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` takes plain integers and affects only this
        // process. The parent thread is blocked in `spawn` until `exec`, so it cannot have
        // died before the request took effect.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        if let Some((dir, options)) = &tmpfs {
            // The child is single-threaded here, as `unshare(CLONE_NEWNS)` requires.
            // SAFETY: `unshare` takes a flag word and touches no memory of ours.
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } == -1 {
                return Err(io::Error::last_os_error());
            }
            let root = c"/";
            let tmpfs_type = c"tmpfs";
            // SAFETY: every pointer is a valid NUL-terminated string prepared before the
            // fork (or null where `mount` allows it); making the tree private keeps our
            // mount from propagating to the parent's namespace.
            let private = unsafe {
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            if private == -1 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: as above; `options` is the NUL-terminated data string of the mount.
            let mounted = unsafe {
                libc::mount(
                    tmpfs_type.as_ptr(),
                    dir.as_ptr(),
                    tmpfs_type.as_ptr(),
                    0,
                    options.as_ptr().cast(),
                )
            };
            if mounted == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook above calls only async-signal-safe functions (`fcntl`, `dup2`,
    // `prctl`) and does not allocate, as `pre_exec` requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// How many storm signals this process has received.
pub(crate) static STORM_RECEIVED: AtomicU64 = AtomicU64::new(0);

extern "C" fn storm_handler(_signal: libc::c_int) {
    // An atomic increment is async-signal-safe; nothing else happens here.
    STORM_RECEIVED.fetch_add(1, Ordering::Relaxed);
}

/// Installs the storm handler for `signal` without `SA_RESTART`, so that blocking calls in
/// the signalled thread fail with `EINTR` instead of being restarted by the kernel.
pub(crate) fn install_storm_handler(signal: libc::c_int) -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let signal = Signal::try_from(signal).map_err(io::Error::from)?;
    let action = SigAction::new(
        SigHandler::Handler(storm_handler),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only performs an atomic increment, which is async-signal-safe,
    // and the storm signal is reserved for the test kit, so no other handler is replaced.
    unsafe { sigaction(signal, &action) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Takes ownership of the control pipe that the parent placed at [`CONTROL_FD`].
///
/// Returns `None` if the descriptor is not open, which means this process was not started
/// by [`Peer`](crate::Peer). Call it at most once per process.
pub(crate) fn take_control_fd() -> Option<OwnedFd> {
    // SAFETY: `fcntl(F_GETFD)` only queries the descriptor table.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: the parent's `configure_peer` put the control pipe at `CONTROL_FD` for this
    // process, nothing else in the process knows about it, and the caller takes it once
    // (the peer entry point runs once per process).
    Some(unsafe { OwnedFd::from_raw_fd(CONTROL_FD) })
}
