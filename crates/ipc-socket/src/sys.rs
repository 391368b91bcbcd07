//! The crate's only unsafe code: taking ownership of descriptors the kernel hands over
//! (`accept4`, and `recvmsg`, whose control messages are walked here even when truncated),
//! `SO_PEERPIDFD`, which neither nix nor socket2 wraps, `recvmmsg`/`sendmmsg` over plain
//! buffers (nix's wrappers allocate per call and carry addresses and control messages the
//! batches do not use), and adding descriptors to the message server's `epoll` sets.

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

/// What one `recvmsg` delivered, with every descriptor the kernel installed already owned.
#[derive(Debug)]
pub(crate) struct RawReceived {
    /// The byte count `recvmsg` returned (the message's real length with `MSG_TRUNC`).
    pub(crate) bytes: usize,
    /// The message flags (`MSG_TRUNC`, `MSG_CTRUNC`).
    pub(crate) flags: libc::c_int,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) credentials: Option<libc::ucred>,
}

/// `recvmsg` into `buf` with `control` bytes of control-message space and `flags`
/// (`MSG_CMSG_CLOEXEC` is always added).
///
/// nix's control-message iterator refuses to walk a buffer the kernel truncated
/// (`MSG_CTRUNC`), which would leave the descriptors that did arrive open and unowned. This
/// walks the headers the kernel wrote, however many, and owns every descriptor in them.
pub(crate) fn recvmsg(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    control: usize,
    flags: libc::c_int,
) -> io::Result<RawReceived> {
    // `u64` elements keep the buffer aligned for `cmsghdr`.
    let mut cmsg = vec![0u64; control.div_ceil(8).max(1)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed `msghdr` is a valid "no name, no data, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len() * 8;
    // SAFETY: `msg` points at `iov` (which covers `buf`, writable for its length) and at
    // `cmsg` (writable for `msg_controllen` bytes); all outlive the call.
    let ret =
        unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
    let Ok(bytes) = usize::try_from(ret) else {
        return Err(io::Error::last_os_error());
    };
    let mut fds = Vec::new();
    let mut credentials = None;
    // SAFETY: `msg` is the header the kernel just filled in: `msg_control` and the
    // `msg_controllen` it set describe the control messages it wrote, which the CMSG macros
    // walk without leaving that range (CMSG_NXTHDR checks each header against the end).
    let mut header = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !header.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return only headers that lie within the buffer.
        let (level, kind, len) = unsafe {
            (
                (*header).cmsg_level,
                (*header).cmsg_type,
                (*header).cmsg_len,
            )
        };
        // SAFETY: as above; CMSG_DATA points just past the header.
        let data = unsafe { libc::CMSG_DATA(header) };
        // SAFETY: CMSG_LEN(0) is arithmetic on a constant.
        let payload = len.saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        let end = msg.msg_control as usize + msg.msg_controllen;
        // The kernel never writes past the buffer, but a truncated header may claim more
        // than it holds: stay within what was written.
        let payload = payload.min(end.saturating_sub(data as usize));
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            let count = payload / std::mem::size_of::<RawFd>();
            for i in 0..count {
                // SAFETY: `i` counts whole descriptors within the payload; unaligned reads
                // make no assumption about the payload's alignment.
                let fd = unsafe { data.cast::<RawFd>().add(i).read_unaligned() };
                // SAFETY: descriptors in SCM_RIGHTS were just installed for this process,
                // each once, and nothing else refers to them.
                fds.push(unsafe { owned(fd) });
            }
        } else if level == libc::SOL_SOCKET
            && kind == libc::SCM_CREDENTIALS
            && payload >= std::mem::size_of::<libc::ucred>()
        {
            // SAFETY: the payload holds a whole `ucred`, read without assuming alignment.
            credentials = Some(unsafe { data.cast::<libc::ucred>().read_unaligned() });
        }
        // SAFETY: `header` is a header within `msg`'s control buffer.
        header = unsafe { libc::CMSG_NXTHDR(&msg, header) };
    }
    Ok(RawReceived {
        bytes,
        flags: msg.msg_flags,
        fds,
        credentials,
    })
}

/// `recvmmsg` into consecutive slots of `slot` bytes of `data`, one message each, as many
/// as `lens` has room for: how many arrived, each one's length (its real length, with
/// `MSG_TRUNC` in `flags`) in `lens`.
pub(crate) fn recvmmsg(
    socket: BorrowedFd<'_>,
    data: &mut [u8],
    slot: usize,
    lens: &mut [usize],
    flags: libc::c_int,
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = data
        .chunks_exact_mut(slot.max(1))
        .take(lens.len())
        .map(|chunk| libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovs.iter_mut().map(mmsghdr).collect();
    let count = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: each header points at one `iovec` of `iovs`, which covers a slot of `data`
    // (writable for its length); `count` headers are valid; no timeout. All outlive the
    // call.
    let ret = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count,
            flags | libc::MSG_CMSG_CLOEXEC,
            std::ptr::null_mut(),
        )
    };
    let Ok(received) = usize::try_from(ret) else {
        return Err(io::Error::last_os_error());
    };
    for (len, header) in lens.iter_mut().zip(&headers[..received]) {
        *len = header.msg_len as usize;
    }
    Ok(received)
}

/// `sendmmsg` of `messages` in order, one message each: how many the kernel took.
pub(crate) fn sendmmsg(
    socket: BorrowedFd<'_>,
    messages: &[&[u8]],
    flags: libc::c_int,
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = messages
        .iter()
        .map(|msg| libc::iovec {
            // The kernel only reads through a sent message's `iovec`.
            iov_base: msg.as_ptr().cast_mut().cast(),
            iov_len: msg.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovs.iter_mut().map(mmsghdr).collect();
    let count = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: each header points at one `iovec` of `iovs`, which covers one of `messages`
    // (readable for its length); `count` headers are valid; all outlive the call.
    let ret = unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), count, flags) };
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// A message header with no name and no control data, over one `iovec`.
fn mmsghdr(iov: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: a zeroed `mmsghdr` is a valid "no name, no data, no control" header.
    let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
    header.msg_hdr.msg_iov = iov;
    header.msg_hdr.msg_iovlen = 1;
    header
}

/// A descriptor registered by number with tokio's reactor, owned elsewhere.
#[cfg(feature = "tokio")]
pub(crate) struct Registered(RawFd);

#[cfg(feature = "tokio")]
impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Registers `fd` itself (no duplicate) with the current tokio runtime's reactor, for
/// input.
#[cfg(feature = "tokio")]
pub(crate) fn async_fd(fd: BorrowedFd<'_>) -> io::Result<tokio::io::unix::AsyncFd<Registered>> {
    let interest = tokio::io::Interest::READABLE;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("not inside a tokio runtime"));
    }
    // SAFETY: `AsyncFd` requires the descriptor to stay open and the same for as long as
    // it is registered. The message server's tasks register their `epoll` sets, which the
    // server's shared state owns; each task holds that state in its worker, declared
    // before (so dropped after) the registration, and no set is ever replaced.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Registered(fd.as_raw_fd()), interest)
    }
    .map_err(|e| e.into_parts().1)
}
