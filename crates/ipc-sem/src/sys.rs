//! The crate's only unsafe code: calls into the C library's named POSIX semaphores, the
//! System V semaphore system calls, and the view of a block of a shared region that the
//! unnamed semaphore and the robust mutex keep their words in.
//!
//! Every function returns an error naming its call (`cvt`); callers add the object.

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;

use ipc_core::internal::cvt;
use ipc_core::{Clock, Error, Result};

/// `sem_clockwait(sem, clock, abstime)` (glibc 2.30 and later, not declared by the libc
/// crate for Linux): a timed wait against a clock of the caller's choice.
type SemClockwait =
    unsafe extern "C" fn(*mut libc::sem_t, libc::clockid_t, *const libc::timespec) -> libc::c_int;

/// The C library's `sem_clockwait`, looked up once at run time (as std does for calls newer
/// than its oldest supported glibc), so that binaries still run on an older C library or
/// one without it (musl), on the wall clock.
fn sem_clockwait() -> Option<SemClockwait> {
    static WAIT: OnceLock<Option<SemClockwait>> = OnceLock::new();
    *WAIT.get_or_init(|| {
        // SAFETY: `dlsym` with the default handle and a NUL-terminated name only reads.
        let sem = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sem_clockwait".as_ptr()) };
        if sem.is_null() {
            return None;
        }
        // SAFETY: a non-null address of the C library's function of this name, whose
        // signature is `SemClockwait` (sem_clockwait(3)).
        Some(unsafe { std::mem::transmute::<*mut libc::c_void, SemClockwait>(sem) })
    })
}

/// The clock that absolute times for [`RawSem::timed_wait`] are measured against:
/// `CLOCK_MONOTONIC` where the C library can wait on it, so that setting the wall clock
/// moves no deadline, `CLOCK_REALTIME` where it cannot.
pub(crate) fn wait_clock() -> Clock {
    if sem_clockwait().is_some() {
        Clock::Monotonic
    } else {
        Clock::Realtime
    }
}

/// A POSIX semaphore: a pointer to a `sem_t` that stays valid for `'a` (its owner keeps the
/// memory mapped).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSem<'a>(NonNull<libc::sem_t>, std::marker::PhantomData<&'a ()>);

impl RawSem<'_> {
    /// `sem_post`.
    #[inline]
    pub(crate) fn post(&self) -> Result<()> {
        // SAFETY: `self.0` points to a `sem_t` mapped for the lifetime of `self`.
        cvt("sem_post", unsafe { libc::sem_post(self.0.as_ptr()) }).map(drop)
    }

    /// `sem_wait`: `EINTR` is returned, not retried.
    #[inline]
    pub(crate) fn wait(&self) -> Result<()> {
        // SAFETY: as for `post`.
        cvt("sem_wait", unsafe { libc::sem_wait(self.0.as_ptr()) }).map(drop)
    }

    /// `sem_trywait`: `EAGAIN` when the value is zero.
    pub(crate) fn try_wait(&self) -> Result<()> {
        // SAFETY: as for `post`.
        cvt("sem_trywait", unsafe { libc::sem_trywait(self.0.as_ptr()) }).map(drop)
    }

    /// Waits until the absolute time `at` on [`wait_clock`]: `sem_clockwait` on the
    /// monotonic clock, or `sem_timedwait` on the wall clock.
    pub(crate) fn timed_wait(&self, at: &libc::timespec) -> Result<()> {
        let sem = self.0.as_ptr();
        let (op, ret) = if let Some(clockwait) = sem_clockwait() {
            // SAFETY: as for `post`; `at` is a valid timespec for the duration of the call;
            // `clockwait` is `sem_clockwait`.
            ("sem_clockwait", unsafe {
                clockwait(sem, libc::CLOCK_MONOTONIC, at)
            })
        } else {
            // SAFETY: as above.
            ("sem_timedwait", unsafe { libc::sem_timedwait(sem, at) })
        };
        cvt(op, ret).map(drop)
    }

    /// `sem_getvalue` (0 while processes wait, on Linux).
    pub(crate) fn value(&self) -> Result<libc::c_int> {
        let mut value = 0;
        // SAFETY: as for `post`; `value` is a valid out-pointer.
        cvt("sem_getvalue", unsafe {
            libc::sem_getvalue(self.0.as_ptr(), &mut value)
        })?;
        Ok(value)
    }
}

/// A semaphore opened with `sem_open`, closed on drop.
#[derive(Debug)]
pub(crate) struct NamedSem(NonNull<libc::sem_t>);

// SAFETY: POSIX semaphore operations are thread-safe; the pointer is only passed to them
// and to `sem_close`, once.
unsafe impl Send for NamedSem {}
// SAFETY: as above.
unsafe impl Sync for NamedSem {}

impl NamedSem {
    /// `sem_open(name, flags, mode, value)`; `flags` is `O_CREAT | O_EXCL` or 0.
    pub(crate) fn open(
        name: &CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
        value: u32,
    ) -> Result<NamedSem> {
        // SAFETY: `name` is NUL-terminated; the variadic mode and value are passed as the
        // promoted types `sem_open` reads (`mode_t` as `c_uint`, `unsigned int`).
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                flags,
                libc::c_uint::from(mode),
                libc::c_uint::from(value),
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(Error::last_os_error("sem_open"));
        }
        NonNull::new(sem).map(NamedSem).ok_or_else(|| {
            Error::new(
                "sem_open",
                io::ErrorKind::Other,
                "sem_open returned a null semaphore",
            )
        })
    }

    /// The semaphore, mapped until `sem_close` in `drop`.
    #[inline]
    pub(crate) fn raw(&self) -> RawSem<'_> {
        RawSem(self.0, std::marker::PhantomData)
    }

    /// The address of the `sem_t`, to find its file in `/proc/self/maps`.
    pub(crate) fn address(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `sem_open` and is closed exactly once. Failure
        // (EINVAL for a bad pointer) cannot happen and could not be handled in a drop.
        unsafe { libc::sem_close(self.0.as_ptr()) };
    }
}

/// The bytes of a process-shared `sem_t` holding `value`, as `sem_init` makes them: what
/// a named semaphore's file starts with (the C library writes its files the same way, from
/// a `sem_t` in its own memory).
pub(crate) fn shared_sem_bytes(value: u32) -> Result<Vec<u8>> {
    let mut sem = std::mem::MaybeUninit::<libc::sem_t>::zeroed();
    // SAFETY: `sem` is writable and as large as a `sem_t`; pshared 1 makes it usable from
    // any mapping of the file it is copied into.
    cvt("sem_init", unsafe {
        libc::sem_init(sem.as_mut_ptr(), 1, value)
    })?;
    // SAFETY: every byte is initialised (zeroed, then written by `sem_init`), and the bytes
    // are only copied. A process-shared `sem_t` holds no other resource, so this copy
    // needs no `sem_destroy`.
    let bytes =
        unsafe { std::slice::from_raw_parts(sem.as_ptr().cast::<u8>(), size_of::<libc::sem_t>()) };
    Ok(bytes.to_vec())
}

/// `linkat` of the open file `fd` (one made with `O_TMPFILE`) to `path`, through
/// `/proc/self/fd`, which needs no privilege: the file appears at `path` complete, or not at
/// all.
pub(crate) fn link_open_file(fd: std::os::fd::BorrowedFd<'_>, path: &CStr) -> Result<()> {
    use std::os::fd::AsRawFd;
    let source = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| Error::new("linkat", io::ErrorKind::InvalidInput, "a NUL in a path"))?;
    // SAFETY: both paths are NUL-terminated; `linkat` only reads them.
    cvt("linkat", unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// `sem_unlink`.
pub(crate) fn sem_unlink(name: &CStr) -> Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt("sem_unlink", unsafe { libc::sem_unlink(name.as_ptr()) }).map(drop)
}

/// `flock(fd, operation)`: `LOCK_EX` or `LOCK_UN`; `EINTR` is returned, not retried.
pub(crate) fn flock(fd: std::os::fd::BorrowedFd<'_>, operation: libc::c_int) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is an open descriptor for the duration of the call; `flock` only locks.
    cvt("flock", unsafe { libc::flock(fd.as_raw_fd(), operation) }).map(drop)
}

/// A block of a shared region that holds one of the crate's objects: the region (kept
/// mapped by owning it) and the block's address, checked once.
#[derive(Debug)]
pub(crate) struct Block<R> {
    region: R,
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the pointer is only a view of memory owned by `region`; access to it is through
// atomics and by-value copies.
unsafe impl<R: Send> Send for Block<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Block<R> {}

impl<R: ipc_core::SharedRegion> Block<R> {
    /// The `size` bytes at `offset` of `region`, which must be writable and 16-byte aligned.
    pub(crate) fn new(region: R, offset: usize, size: usize) -> std::result::Result<Self, String> {
        if !region.is_writable() {
            return Err("the region is mapped read-only".into());
        }
        if offset
            .checked_add(size)
            .is_none_or(|end| end > region.len())
        {
            return Err(format!(
                "{size} bytes at offset {offset} do not fit a region of {} bytes",
                region.len()
            ));
        }
        // SAFETY: `offset + size <= len`, so the pointer stays inside the region.
        let ptr = unsafe { region.as_ptr().add(offset) };
        if (ptr as usize) % 16 != 0 {
            return Err(format!("offset {offset} is not aligned to 16 bytes"));
        }
        let base = NonNull::new(ptr).ok_or("the region starts at address 0")?;
        Ok(Block { region, base, size })
    }

    /// The region.
    pub(crate) fn region(&self) -> &R {
        &self.region
    }

    /// The same block through a clone of the region (which may map it elsewhere).
    pub(crate) fn clone_view(&self) -> std::result::Result<Self, String>
    where
        R: Clone,
    {
        let offset = (self.base.as_ptr() as usize).wrapping_sub(self.region.as_ptr() as usize);
        Block::new(self.region.clone(), offset, self.size)
    }

    /// The 32-bit atomic at `offset` of the block (a multiple of 4, inside it).
    #[inline]
    pub(crate) fn word(&self, offset: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.size,
            "word {offset} outside the block"
        );
        // SAFETY: inside the block (checked above), aligned (the block is 16-byte aligned),
        // in writable shared memory that `self.region` keeps mapped while `self` lives. An
        // atomic may be changed by other processes at any time.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    /// The 64-bit atomic at `offset` of the block (a multiple of 8, inside it).
    #[inline]
    pub(crate) fn word64(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(
            offset % 8 == 0 && offset + 8 <= self.size,
            "word {offset} outside the block"
        );
        // SAFETY: as for `word`, with 8-byte alignment (the block is 16-byte aligned).
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(offset)
                .cast::<std::sync::atomic::AtomicU64>()
        }
    }
}

impl<R: ipc_core::SharedRegion> Block<R> {
    /// Reads the `T` at `offset` of the block, by value.
    pub(crate) fn read<T: ipc_core::ShmSafe>(&self, offset: usize) -> T {
        assert!(
            offset + std::mem::size_of::<T>() <= self.size,
            "value at {offset} outside the block"
        );
        // SAFETY: inside the block (checked above) and mapped while `self` lives; read
        // unaligned through a raw pointer, never a reference, and `T: ShmSafe` makes any
        // bytes a peer wrote a valid value.
        unsafe { self.base.add(offset).cast::<T>().read_unaligned() }
    }

    /// Writes `value` at `offset` of the block.
    pub(crate) fn write<T: ipc_core::ShmSafe>(&self, offset: usize, value: T) {
        assert!(
            offset + std::mem::size_of::<T>() <= self.size,
            "value at {offset} outside the block"
        );
        // SAFETY: inside the writable block (checked above and at construction) and mapped
        // while `self` lives; written through a raw pointer.
        unsafe { self.base.add(offset).cast::<T>().write_unaligned(value) }
    }

    /// The address of `offset` in the block, for callers that need a raw pointer.
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.size, "offset {offset} outside the block");
        // SAFETY: inside the block or one past it (checked above).
        unsafe { self.base.as_ptr().add(offset) }
    }
}

/// `semget(key, nsems, flags)`: the id of a System V semaphore set.
pub(crate) fn semget(
    key: libc::key_t,
    nsems: libc::c_int,
    flags: libc::c_int,
) -> Result<libc::c_int> {
    // SAFETY: plain integer arguments; no memory is passed.
    cvt("semget", unsafe { libc::semget(key, nsems, flags) })
}

/// One `semop` on semaphore `num` of set `id`: add `op` with `flags` (`SEM_UNDO`,
/// `IPC_NOWAIT`), waiting at most `timeout` (`semtimedop`) if given. `EINTR` is returned.
pub(crate) fn semop(
    id: libc::c_int,
    num: u16,
    op: i16,
    flags: libc::c_int,
    timeout: Option<&libc::timespec>,
) -> Result<()> {
    let name = if timeout.is_some() {
        "semtimedop"
    } else {
        "semop"
    };
    let mut buf = libc::sembuf {
        sem_num: num,
        sem_op: op,
        sem_flg: i16::try_from(flags)
            .map_err(|_| Error::new(name, io::ErrorKind::InvalidInput, "flags out of range"))?,
    };
    let timeout = timeout.map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `buf` is one valid `sembuf` for the call, `timeout` is null or a valid
    // timespec; `semtimedop` with a null timeout is `semop`.
    let ret = unsafe { libc::syscall(libc::SYS_semtimedop, id, &mut buf, 1usize, timeout) };
    cvt(name, ret).map(drop)
}

/// What [`sem_get`] reads of one semaphore: `semctl` commands that take no fourth argument.
#[derive(Clone, Copy)]
pub(crate) enum SemGet {
    /// `GETVAL`: the value.
    Value,
    /// `GETPID`: the pid of the last process to change it.
    LastPid,
    /// `GETNCNT`: how many processes wait for its value to grow.
    Waiting,
    /// `GETZCNT`: how many processes wait for its value to be zero.
    WaitingForZero,
}

/// `semctl(id, num, GETVAL, GETPID, GETNCNT or GETZCNT)`.
pub(crate) fn sem_get(id: libc::c_int, num: libc::c_int, what: SemGet) -> Result<libc::c_int> {
    let cmd = match what {
        SemGet::Value => libc::GETVAL,
        SemGet::LastPid => libc::GETPID,
        SemGet::Waiting => libc::GETNCNT,
        SemGet::WaitingForZero => libc::GETZCNT,
    };
    // SAFETY: GETVAL, GETPID, GETNCNT and GETZCNT take no fourth argument.
    cvt("semctl", unsafe { libc::semctl(id, num, cmd) })
}

/// `semctl(id, num, SETVAL, value)`.
pub(crate) fn sem_setval(id: libc::c_int, num: libc::c_int, value: libc::c_int) -> Result<()> {
    // SAFETY: SETVAL reads the `val` member of the `semun` argument, which an `int` passed
    // in its place provides on Linux's calling conventions (glibc's own callers do this).
    cvt("semctl(SETVAL)", unsafe {
        libc::semctl(id, num, libc::SETVAL, value)
    })
    .map(drop)
}

/// `semctl(id, 0, IPC_RMID)`.
pub(crate) fn sem_remove(id: libc::c_int) -> Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument.
    cvt("semctl(IPC_RMID)", unsafe {
        libc::semctl(id, 0, libc::IPC_RMID)
    })
    .map(drop)
}

/// `semctl(id, 0, IPC_STAT)`: the owner's uid and the permission bits.
pub(crate) fn sem_owner(id: libc::c_int) -> Result<(libc::uid_t, u32)> {
    let mut ds = std::mem::MaybeUninit::<libc::semid_ds>::zeroed();
    // SAFETY: IPC_STAT writes a `semid_ds` through the pointer passed as the `buf` member
    // of `semun`; `ds` is one, valid for writes.
    cvt("semctl(IPC_STAT)", unsafe {
        libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr())
    })?;
    // SAFETY: zero-initialised and filled in by the kernel above; every field is a plain
    // integer.
    let ds = unsafe { ds.assume_init() };
    Ok((ds.sem_perm.uid, u32::from(ds.sem_perm.mode) & 0o777))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every glibc since 2.30 (2019) has both calls; a fallback here would be a lookup bug.
    #[test]
    #[cfg(target_env = "gnu")]
    fn timed_waits_use_the_monotonic_clock_on_glibc() {
        assert_eq!(wait_clock(), Clock::Monotonic);
    }
}
