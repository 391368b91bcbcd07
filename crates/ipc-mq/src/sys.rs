//! The crate's only unsafe code: the POSIX message queue calls, made on the queue's
//! descriptor (on Linux an `mqd_t` is a file descriptor), and the raw `mq_notify` system
//! call with a netlink socket (glibc's wrapper would start a thread instead).
//!
//! Every function returns an error naming its call; callers add the queue's name.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use ipc_core::Result;
use ipc_core::internal::cvt;

/// `mq_open(name, flags, mode, attr)`; `shape` (capacity, largest message) only matters with
/// `O_CREAT`, and `None` leaves both to the kernel's defaults.
pub(crate) fn mq_open(
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    shape: Option<(usize, usize)>,
) -> Result<OwnedFd> {
    let wide = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let mut attr = shape.map(|(capacity, max_message)| {
        // SAFETY: an all-zero `mq_attr` is valid; the fields set are plain integers.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = wide(capacity);
        attr.mq_msgsize = wide(max_message);
        attr
    });
    let attr = attr
        .as_mut()
        .map_or(std::ptr::null_mut(), std::ptr::from_mut);
    // SAFETY: `name` is NUL-terminated, `attr` null or a valid `mq_attr` for the call; the
    // variadic mode and attribute pointer are passed as `mq_open` reads them.
    let mqd = unsafe {
        libc::mq_open(
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
            attr,
        )
    };
    let mqd = cvt("mq_open", mqd)?;
    // SAFETY: on Linux a queue descriptor is a file descriptor, new and owned by nobody
    // else; closing it is `mq_close`.
    Ok(unsafe { OwnedFd::from_raw_fd(mqd) })
}

/// `mq_unlink(name)`.
pub(crate) fn mq_unlink(name: &CStr) -> Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt("mq_unlink", unsafe { libc::mq_unlink(name.as_ptr()) }).map(drop)
}

/// A queue's attributes: (capacity, maximum message size, messages queued, flags).
pub(crate) fn mq_getattr(mqd: BorrowedFd<'_>) -> Result<(i64, i64, i64, i64)> {
    // SAFETY: an all-zero `mq_attr` is valid and the kernel fills it in.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `mqd` is an open queue descriptor for the call; `attr` is writable.
    cvt("mq_getattr", unsafe {
        libc::mq_getattr(mqd.as_raw_fd(), &mut attr)
    })?;
    Ok((
        attr.mq_maxmsg,
        attr.mq_msgsize,
        attr.mq_curmsgs,
        attr.mq_flags,
    ))
}

/// Sets or clears `O_NONBLOCK` on the queue description.
pub(crate) fn mq_set_nonblocking(mqd: BorrowedFd<'_>, nonblocking: bool) -> Result<()> {
    // SAFETY: an all-zero `mq_attr` is valid; only `mq_flags` is read by `mq_setattr`.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    attr.mq_flags = if nonblocking {
        i64::from(libc::O_NONBLOCK)
    } else {
        0
    };
    // SAFETY: an open descriptor; `attr` valid for reading, the old attributes not asked.
    cvt("mq_setattr", unsafe {
        libc::mq_setattr(mqd.as_raw_fd(), &attr, std::ptr::null_mut())
    })
    .map(drop)
}

/// `mq_timedsend` (or `mq_send` without a time): `EINTR`, `EAGAIN`, `ETIMEDOUT` returned.
pub(crate) fn mq_send(
    mqd: BorrowedFd<'_>,
    msg: &[u8],
    priority: u32,
    at: Option<&libc::timespec>,
) -> Result<()> {
    let fd = mqd.as_raw_fd();
    let op = if at.is_some() {
        "mq_timedsend"
    } else {
        "mq_send"
    };
    // SAFETY: an open descriptor; `msg` is valid for `msg.len()` bytes and `at` for reading.
    cvt(op, unsafe {
        match at {
            Some(at) => libc::mq_timedsend(fd, msg.as_ptr().cast(), msg.len(), priority, at),
            None => libc::mq_send(fd, msg.as_ptr().cast(), msg.len(), priority),
        }
    })
    .map(drop)
}

/// `mq_timedreceive` (or `mq_receive` without a time) into `buf`: (length, priority).
pub(crate) fn mq_receive(
    mqd: BorrowedFd<'_>,
    buf: &mut [u8],
    at: Option<&libc::timespec>,
) -> Result<(usize, u32)> {
    let fd = mqd.as_raw_fd();
    let mut priority = 0;
    // SAFETY: an open descriptor; `buf` is writable for `buf.len()` bytes, `priority` is a
    // valid out-pointer and `at` valid for reading.
    let n = unsafe {
        match at {
            Some(at) => {
                libc::mq_timedreceive(fd, buf.as_mut_ptr().cast(), buf.len(), &mut priority, at)
            }
            None => libc::mq_receive(fd, buf.as_mut_ptr().cast(), buf.len(), &mut priority),
        }
    };
    let op = if at.is_some() {
        "mq_timedreceive"
    } else {
        "mq_receive"
    };
    let n = cvt(op, n)?;
    Ok((usize::try_from(n).unwrap_or(0), priority))
}

/// The length of the cookie the kernel sends through the netlink socket
/// (`NOTIFY_COOKIE_LEN`); its last byte says why.
pub(crate) const COOKIE_LEN: usize = 32;

/// Registers `socket` (a netlink socket) for the queue's notification with the raw
/// `mq_notify` system call: the kernel sends `cookie` through the socket when a message
/// arrives on the empty queue. `None` unregisters.
pub(crate) fn mq_notify(
    mqd: BorrowedFd<'_>,
    socket: Option<(BorrowedFd<'_>, &[u8; COOKIE_LEN])>,
) -> Result<()> {
    // SAFETY: an all-zero `sigevent` is valid; the fields set are plain values.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    let event_ptr = match socket {
        Some((socket, cookie)) => {
            // SIGEV_THREAD with a socket in `sigev_signo` and the cookie's address in the
            // value is the kernel's netlink notification (the one glibc builds its
            // notification threads on).
            event.sigev_notify = libc::SIGEV_THREAD;
            event.sigev_signo = socket.as_raw_fd();
            event.sigev_value = libc::sigval {
                sival_ptr: cookie.as_ptr().cast_mut().cast(),
            };
            std::ptr::from_ref(&event)
        }
        None => std::ptr::null(),
    };
    // SAFETY: the raw system call (not glibc's wrapper, which would replace the socket with
    // its own thread); `event_ptr` is null or a valid `sigevent` whose cookie pointer is
    // valid for `COOKIE_LEN` bytes, which the kernel copies during the call.
    let ret = unsafe { libc::syscall(libc::SYS_mq_notify, mqd.as_raw_fd(), event_ptr) };
    cvt("mq_notify", ret).map(drop)
}

/// A netlink socket to receive queue notifications on (close-on-exec).
pub(crate) fn notification_socket() -> Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    let fd = cvt("socket(AF_NETLINK)", fd)?;
    // SAFETY: a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `getrlimit(RLIMIT_MSGQUEUE)`: the soft limit in bytes.
pub(crate) fn rlimit_msgqueue() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer.
    cvt("getrlimit(RLIMIT_MSGQUEUE)", unsafe {
        libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut limit)
    })?;
    Ok(limit.rlim_cur)
}

/// `mq_timedsend` of the bytes of `value` (or `mq_send` without a time). The kernel reads
/// them, padding included; no Rust code reads `T` as bytes.
pub(crate) fn mq_send_value<T: ipc_core::ShmSafe>(
    mqd: BorrowedFd<'_>,
    value: &T,
    priority: u32,
    at: Option<&libc::timespec>,
) -> Result<()> {
    let fd = mqd.as_raw_fd();
    let ptr = std::ptr::from_ref(value).cast::<libc::c_char>();
    let len = std::mem::size_of::<T>();
    let op = if at.is_some() {
        "mq_timedsend"
    } else {
        "mq_send"
    };
    // SAFETY: an open descriptor; `ptr` is valid for `len` bytes (one `T`), `at` for reading.
    cvt(op, unsafe {
        match at {
            Some(at) => libc::mq_timedsend(fd, ptr, len, priority, at),
            None => libc::mq_send(fd, ptr, len, priority),
        }
    })
    .map(drop)
}

/// The `T` in `bytes`, if it has exactly the size of one.
pub(crate) fn value_from_bytes<T: ipc_core::ShmSafe>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds `size_of::<T>()` initialised bytes (checked above), read
    // unaligned; `T: ShmSafe` makes every bit pattern a valid `T`.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}
