//! The crate's only unsafe code: taking ownership of descriptors the kernel hands over, and
//! `SO_PEERPIDFD`, which neither nix nor socket2 wraps.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `SO_PEERPIDFD` (Linux 6.5): the value in the generic socket ABI, which x86, ARM and
/// RISC-V use; MIPS, SPARC, PA-RISC and Alpha number it differently.
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
const SO_PEERPIDFD: libc::c_int = 77;

/// Takes ownership of a descriptor that the kernel just created for this process (from
/// `accept4` or an `SCM_RIGHTS` message).
///
/// # Safety
///
/// `fd` must be open and owned by nobody else in the process; the caller passes on that
/// ownership and must not use `fd` afterwards.
unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Takes ownership of every descriptor in `fds`, which the kernel just passed to this
/// process in one `SCM_RIGHTS` message.
pub(crate) fn own_received(fds: &[RawFd]) -> Vec<OwnedFd> {
    fds.iter()
        .map(|&fd| {
            // SAFETY: descriptors received with `SCM_RIGHTS` are new in this process and
            // referred to nowhere else; each appears once in the message.
            unsafe { owned(fd) }
        })
        .collect()
}

/// `accept4` on `listener`: a new connected socket, close-on-exec, owned.
pub(crate) fn accept4(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let fd = nix::sys::socket::accept4(
        listener.as_raw_fd(),
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )?;
    // SAFETY: `accept4` just created `fd` for this process; nothing else refers to it.
    Ok(unsafe { owned(fd) })
}

/// A pidfd for the process at the other end of a connected Unix socket (`SO_PEERPIDFD`).
pub(crate) fn peer_pidfd(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `fd` and `len` are valid for writes and `len` holds the size of `fd`; the
    // kernel writes at most `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            std::ptr::addr_of_mut!(fd).cast(),
            &mut len,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel installed a new pidfd (close-on-exec) for this process.
    Ok(unsafe { owned(fd) })
}

/// Views initialised bytes as `MaybeUninit` bytes, which socket2's receive calls take.
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the callee only writes
    // initialised bytes into the slice (socket2 never de-initialises memory), so the bytes
    // stay valid `u8`s when the borrow ends.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [std::mem::MaybeUninit<u8>]) }
}
