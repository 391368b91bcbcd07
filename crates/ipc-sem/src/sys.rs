//! The crate's only unsafe code: calls into the C library's POSIX semaphores and
//! process-shared mutexes, and the System V semaphore system calls.
//!
//! The types here wrap a pointer to a `sem_t` or `pthread_mutex_t` whose memory some owner
//! keeps mapped (the C library for `sem_open`, a shared region otherwise); every function
//! returns the C library's error as an `io::Error` and leaves naming the object to callers.

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;

/// A POSIX semaphore: a pointer to a `sem_t` that stays valid for `'a` (its owner keeps the
/// memory mapped).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSem<'a>(NonNull<libc::sem_t>, std::marker::PhantomData<&'a ()>);

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl RawSem<'_> {
    /// `sem_post`.
    pub(crate) fn post(&self) -> io::Result<()> {
        // SAFETY: `self.0` points to a `sem_t` mapped for the lifetime of `self`.
        check(unsafe { libc::sem_post(self.0.as_ptr()) })
    }

    /// `sem_wait`: `EINTR` is returned, not retried.
    pub(crate) fn wait(&self) -> io::Result<()> {
        // SAFETY: as for `post`.
        check(unsafe { libc::sem_wait(self.0.as_ptr()) })
    }

    /// `sem_trywait`: `EAGAIN` when the value is zero.
    pub(crate) fn try_wait(&self) -> io::Result<()> {
        // SAFETY: as for `post`.
        check(unsafe { libc::sem_trywait(self.0.as_ptr()) })
    }

    /// `sem_timedwait` until the absolute `CLOCK_REALTIME` time `at`.
    pub(crate) fn timed_wait(&self, at: &libc::timespec) -> io::Result<()> {
        // SAFETY: as for `post`; `at` is a valid timespec for the duration of the call.
        check(unsafe { libc::sem_timedwait(self.0.as_ptr(), at) })
    }

    /// `sem_getvalue` (0 while processes wait, on Linux).
    pub(crate) fn value(&self) -> io::Result<libc::c_int> {
        let mut value = 0;
        // SAFETY: as for `post`; `value` is a valid out-pointer.
        check(unsafe { libc::sem_getvalue(self.0.as_ptr(), &mut value) })?;
        Ok(value)
    }

    /// `sem_init` with `pshared = 1`.
    pub(crate) fn init_shared(&self, value: u32) -> io::Result<()> {
        // SAFETY: the memory is a writable, aligned `sem_t`-sized place, mapped for the
        // lifetime of `self`, that no process uses before the caller publishes it.
        check(unsafe { libc::sem_init(self.0.as_ptr(), 1, value) })
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
    ) -> io::Result<NamedSem> {
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
            return Err(io::Error::last_os_error());
        }
        NonNull::new(sem)
            .map(NamedSem)
            .ok_or_else(|| io::Error::other("sem_open returned a null semaphore"))
    }

    /// The semaphore, mapped until `sem_close` in `drop`.
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

/// `sem_unlink`.
pub(crate) fn sem_unlink(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::sem_unlink(name.as_ptr()) })
}

/// `flock(fd, operation)`: `LOCK_EX` or `LOCK_UN`; `EINTR` is returned, not retried.
pub(crate) fn flock(fd: std::os::fd::BorrowedFd<'_>, operation: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is an open descriptor for the duration of the call; `flock` only locks.
    check(unsafe { libc::flock(fd.as_raw_fd(), operation) })
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
// atomics and the C library's thread-safe semaphore and mutex calls.
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

    /// The 32-bit atomic at `offset` of the block (a multiple of 4, inside it).
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

    /// The `sem_t` at `offset` of the block (8-aligned, with room for a `sem_t`).
    pub(crate) fn sem(&self, offset: usize) -> RawSem<'_> {
        assert!(
            offset % 8 == 0 && offset + std::mem::size_of::<libc::sem_t>() <= self.size,
            "semaphore {offset} outside the block"
        );
        // SAFETY: inside the block and aligned (checked above); mapped while `self` lives,
        // which the lifetime of the result ties it to.
        let ptr = unsafe { self.base.add(offset) }.cast::<libc::sem_t>();
        RawSem(ptr, std::marker::PhantomData)
    }
}
