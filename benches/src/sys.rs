//! The benchmark's unsafe code: atomics in a shared mapping, raw pipe I/O, the `memcpy`
//! floors, and the raw semaphore and mutex calls the `ipc-sem` rows are compared with.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ipc_core::{Error, Result};
use memmap2::MmapMut;

/// Bytes between two words, so that each sits on a cache line (and prefetch pair) of its own.
pub(crate) const WORD_STRIDE: usize = 128;

/// Returns word `index` of a shared mapping as an atomic.
///
/// # Errors
///
/// `InvalidInput` if the word lies outside the mapping.
pub(crate) fn shared_word(map: &MmapMut, index: usize) -> Result<&AtomicU64> {
    let offset = index
        .checked_mul(WORD_STRIDE)
        .filter(|&o| o + std::mem::size_of::<AtomicU64>() <= map.len())
        .ok_or_else(|| {
            Error::new(
                "shared_word",
                std::io::ErrorKind::InvalidInput,
                "word outside the mapping",
            )
        })?;
    // SAFETY: the pointer is in bounds (checked above) and 8-byte aligned (the mapping is
    // page-aligned and the offset a multiple of 128). `AtomicU64` has no invalid bit
    // patterns and is only accessed atomically, so the other process writing the same
    // word concurrently is not a data race. The reference borrows `map`, so it cannot
    // outlive the mapping.
    Ok(unsafe { &*map.as_ptr().add(offset).cast::<AtomicU64>() })
}

/// `write(2)` of the whole buffer, as a C program would: the raw floor of pipe I/O.
///
/// # Errors
///
/// The `write` error, or `WriteZero` if the pipe accepts nothing.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes and `fd` is open for the
        // duration of the borrow.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(0) => {
                return Err(Error::new(
                    "write",
                    std::io::ErrorKind::WriteZero,
                    "wrote nothing",
                ));
            }
            Ok(n) => buf = &buf[n..],
            Err(_) => {
                let err = Error::last_os_error("write");
                if !err.is_interrupted() {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// `read(2)` until the buffer is full. Returns `false` at end of file before any byte.
///
/// # Errors
///
/// The `read` error, or `UnexpectedEof` if the stream ends inside the buffer.
pub(crate) fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes and `fd` is open for the
        // duration of the borrow.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(Error::new(
                    "read",
                    std::io::ErrorKind::UnexpectedEof,
                    "stream ended",
                ));
            }
            Ok(n) => filled += n,
            Err(_) => {
                let err = Error::last_os_error("read");
                if !err.is_interrupted() {
                    return Err(err);
                }
            }
        }
    }
    Ok(true)
}

/// Maps `len` bytes of the shared-memory object `fd` read-write and shared.
///
/// # Errors
///
/// The `mmap` error.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<MmapMut> {
    // SAFETY: memmap2 requires that the file is not resized or modified in ways that break
    // Rust's aliasing rules while mapped. The object belongs to this benchmark alone, has a
    // fixed size set before mapping, and its bytes are only ever accessed through
    // `shared_word`'s atomics, never through references to plain data.
    unsafe { memmap2::MmapOptions::new().len(len).map_mut(fd.as_raw_fd()) }
        .map_err(|e| Error::from(e).with_op("mmap"))
}

/// `memcpy` of `src` into the region at `base` (`len` bytes) at `offset`: the floor of every
/// copy into shared memory. Returns false, copying nothing, if it does not fit.
pub(crate) fn memcpy_to(base: *mut u8, len: usize, offset: usize, src: &[u8]) -> bool {
    if offset.checked_add(src.len()).is_none_or(|end| end > len) {
        return false;
    }
    // SAFETY: the caller passes a mapping of `len` bytes at `base`; the range fits (checked
    // above) and `src` is private memory, distinct from the mapping.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(offset), src.len()) };
    true
}

/// `memcpy` out of the region at `base` (`len` bytes) at `offset` into `dst`. Returns false,
/// copying nothing, if it does not fit.
pub(crate) fn memcpy_from(base: *const u8, len: usize, offset: usize, dst: &mut [u8]) -> bool {
    if offset.checked_add(dst.len()).is_none_or(|end| end > len) {
        return false;
    }
    // SAFETY: as for `memcpy_to`.
    unsafe { std::ptr::copy_nonoverlapping(base.add(offset), dst.as_mut_ptr(), dst.len()) };
    true
}

/// A minimal single-producer single-consumer byte ring in shared memory, busy polling: the
/// floor the channel of `ipc-shm` is measured against. No validation, no liveness, no
/// futex: what a trusting C program would write.
///
/// Layout: the producer's position at byte 0, the consumer's at byte 128, the ring from
/// byte 4096; records are an 8-byte length and the payload rounded up to 8 bytes; a length
/// of `u64::MAX` pads to the end of the ring.
#[derive(Debug)]
pub(crate) struct RawRing {
    base: *mut u8,
    capacity: u64,
    position: u64,
    cached: u64,
}

// SAFETY: the ring is used by one thread of each process; the raw pointer is only a view of
// a mapping that the owner keeps alive, and moving the struct between threads is harmless.
unsafe impl Send for RawRing {}

const RAW_DATA: usize = 4096;

// The floor is deliberately minimal: its indices are below the ring's capacity, which
// fits in `usize`, and checked conversions would make it slower than the C it stands for.
#[allow(clippy::cast_possible_truncation)]
impl RawRing {
    /// A view of the ring in `segment`, whose first `RAW_DATA + capacity` bytes it uses.
    pub(crate) fn new(segment: &ipc_shm::SharedMemory) -> RawRing {
        let capacity = segment.len().saturating_sub(RAW_DATA) as u64;
        assert!(
            capacity.is_power_of_two(),
            "the ring after the first 4 KiB must be a power of two"
        );
        RawRing {
            base: segment.as_ptr(),
            capacity,
            position: 0,
            cached: 0,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: offsets 0 and 128 are inside the mapping (it has at least 4096 bytes),
        // 8-byte aligned, and only accessed atomically by both processes.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    /// Sends a message of `len` bytes: the whole of `payload` if given (a copy), or only
    /// the 8-byte `stamp` written in place (zero copy).
    pub(crate) fn send(&mut self, len: usize, stamp: u64, payload: Option<&[u8]>) {
        let size = 8 + len.div_ceil(8) as u64 * 8;
        let mut index = self.position & (self.capacity - 1);
        let contiguous = self.capacity - index;
        let needed = if size > contiguous {
            contiguous + size
        } else {
            size
        };
        while self.capacity - self.position.wrapping_sub(self.cached) < needed {
            std::hint::spin_loop();
            self.cached = self.word(128).load(Ordering::Acquire);
        }
        if size > contiguous {
            // SAFETY: `index + 8 <= capacity`; the record header lies inside the ring.
            unsafe {
                self.base
                    .add(RAW_DATA + index as usize)
                    .cast::<u64>()
                    .write(u64::MAX)
            };
            self.position = self.position.wrapping_add(contiguous);
            index = 0;
        }
        let at = RAW_DATA + index as usize;
        // SAFETY: the record (`size <= contiguous` bytes from `index`) lies inside the ring,
        // in space the consumer has released.
        unsafe {
            self.base.add(at).cast::<u64>().write(len as u64);
            match payload {
                Some(data) => {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(at + 8), len)
                }
                None => self.base.add(at + 8).cast::<u64>().write_unaligned(stamp),
            }
        }
        self.position = self.position.wrapping_add(size);
        self.word(0).store(self.position, Ordering::Release);
    }

    /// Receives the next message into `buf` (a copy), or reads only its 8-byte stamp into
    /// `buf[..8]` (zero copy); returns its length.
    pub(crate) fn recv(&mut self, buf: &mut [u8], copy: bool) -> usize {
        loop {
            while self.cached == self.position {
                std::hint::spin_loop();
                self.cached = self.word(0).load(Ordering::Acquire);
            }
            let index = self.position & (self.capacity - 1);
            let at = RAW_DATA + index as usize;
            // SAFETY: the producer published this record; its header lies inside the ring.
            let len = unsafe { self.base.add(at).cast::<u64>().read() };
            if len == u64::MAX {
                self.position = self.position.wrapping_add(self.capacity - index);
                continue;
            }
            let len = len as usize;
            // SAFETY: the published record lies inside the ring and `buf` holds it (the
            // benchmark sizes it to the message).
            unsafe {
                if copy {
                    std::ptr::copy_nonoverlapping(
                        self.base.add(at + 8),
                        buf.as_mut_ptr(),
                        len.min(buf.len()),
                    );
                } else {
                    let stamp = self.base.add(at + 8).cast::<u64>().read_unaligned();
                    buf[..8].copy_from_slice(&stamp.to_ne_bytes());
                }
            }
            self.position = self.position.wrapping_add(8 + len.div_ceil(8) as u64 * 8);
            self.word(128).store(self.position, Ordering::Release);
            return len;
        }
    }
}

/// A raw futex ping-pong word pair in shared memory: the floor of waking a sleeping peer.
#[derive(Debug)]
pub(crate) struct RawFutex {
    base: *mut u8,
    send_at: usize,
    recv_at: usize,
    last: u32,
}

// SAFETY: as for `RawRing`.
unsafe impl Send for RawFutex {}

impl RawFutex {
    /// Words at `send_at` (ours to bump) and `recv_at` (the peer's), inside `segment`.
    pub(crate) fn new(segment: &ipc_shm::SharedMemory, send_at: usize, recv_at: usize) -> RawFutex {
        assert!(send_at.max(recv_at) + 4 <= segment.len() && send_at % 4 == 0 && recv_at % 4 == 0);
        RawFutex {
            base: segment.as_ptr(),
            send_at,
            recv_at,
            last: 0,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: checked in `new`: inside the mapping, aligned, atomics only.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }

    /// Bumps our word and wakes the peer.
    pub(crate) fn send(&mut self) {
        let word = self.word(self.send_at);
        word.fetch_add(1, Ordering::Release);
        // SAFETY: a valid aligned futex word; FUTEX_WAKE only identifies it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                1,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0,
            )
        };
    }

    /// Sleeps until the peer's word moves on.
    pub(crate) fn recv(&mut self) {
        loop {
            let now = self.word(self.recv_at).load(Ordering::Acquire);
            if now != self.last {
                self.last = now;
                return;
            }
            // SAFETY: as above; FUTEX_WAIT reads the word and sleeps while it equals `now`.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word(self.recv_at).as_ptr(),
                    libc::FUTEX_WAIT,
                    now,
                    std::ptr::null::<libc::timespec>(),
                    std::ptr::null::<u32>(),
                    0,
                )
            };
        }
    }
}

/// A POSIX semaphore driven with raw libc calls: the floor of `ipc-sem`'s semaphores.
/// Either opened with `sem_open` (closed on drop) or placed in a mapping its owner keeps.
#[derive(Debug)]
pub(crate) struct RawPosixSem {
    sem: *mut libc::sem_t,
    named: bool,
}

// SAFETY: POSIX semaphore calls are thread-safe; the pointer is only passed to them.
unsafe impl Send for RawPosixSem {}

impl RawPosixSem {
    /// `sem_open(name)`, creating it (value 0, owner-only) if `create`.
    pub(crate) fn open(name: &std::ffi::CStr, create: bool) -> Result<Self> {
        let flags = if create {
            libc::O_CREAT | libc::O_EXCL
        } else {
            0
        };
        // SAFETY: `name` is NUL-terminated; mode and value are passed as `sem_open` reads
        // them.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                flags,
                0o600 as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(Error::last_os_error("sem_open"));
        }
        Ok(RawPosixSem { sem, named: true })
    }

    /// The semaphore at `offset` of `segment`, initialised with `sem_init(pshared)` if
    /// `init`. The caller keeps `segment` mapped while the result lives.
    pub(crate) fn at(segment: &ipc_shm::SharedMemory, offset: usize, init: bool) -> Result<Self> {
        assert!(offset % 16 == 0 && offset + std::mem::size_of::<libc::sem_t>() <= segment.len());
        // SAFETY: inside the mapping and aligned (checked above).
        let sem = unsafe { segment.as_ptr().add(offset) }.cast::<libc::sem_t>();
        // SAFETY: a writable, aligned place for a `sem_t` that nobody uses yet.
        if init && unsafe { libc::sem_init(sem, 1, 0) } != 0 {
            return Err(Error::last_os_error("sem_init"));
        }
        Ok(RawPosixSem { sem, named: false })
    }

    pub(crate) fn post(&self) {
        // SAFETY: a live semaphore (constructors).
        unsafe { libc::sem_post(self.sem) };
    }

    pub(crate) fn wait(&self) {
        // SAFETY: as for `post`; interrupted waits are retried.
        while unsafe { libc::sem_wait(self.sem) } != 0 {}
    }
}

impl Drop for RawPosixSem {
    fn drop(&mut self) {
        if self.named {
            // SAFETY: opened with `sem_open`, closed once.
            unsafe { libc::sem_close(self.sem) };
        }
    }
}

/// A System V semaphore driven with raw `semop` and `SEM_UNDO`: the floor of
/// `UndoSemaphore`.
#[derive(Debug)]
pub(crate) struct RawSysvSem {
    id: libc::c_int,
    owner: bool,
}

impl RawSysvSem {
    /// A new private set of one semaphore (removed on drop).
    pub(crate) fn create() -> Result<Self> {
        // SAFETY: integer arguments only.
        let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(Error::last_os_error("semget"));
        }
        Ok(RawSysvSem { id, owner: true })
    }

    /// The set `id` created by another process.
    pub(crate) fn open(id: libc::c_int) -> Self {
        RawSysvSem { id, owner: false }
    }

    pub(crate) fn id(&self) -> libc::c_int {
        self.id
    }

    fn op(&self, delta: i16) {
        let mut buf = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            // SEM_UNDO is 0x1000, which fits.
            sem_flg: i16::try_from(libc::SEM_UNDO).unwrap_or(0x1000),
        };
        // SAFETY: one valid `sembuf`; interrupted waits are retried.
        while unsafe { libc::semop(self.id, &mut buf, 1) } != 0 {}
    }

    pub(crate) fn post(&self) {
        self.op(1);
    }

    pub(crate) fn wait(&self) {
        self.op(-1);
    }
}

impl Drop for RawSysvSem {
    fn drop(&mut self) {
        if self.owner {
            // SAFETY: IPC_RMID takes no fourth argument.
            unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
        }
    }
}

/// A process-shared robust error-checking `pthread_mutex_t` at an offset of a mapping,
/// driven with raw calls: the floor of `RobustMutex`.
#[derive(Debug)]
pub(crate) struct RawPthreadMutex(*mut libc::pthread_mutex_t);

// SAFETY: pthread mutex calls are thread-safe; the pointer is only passed to them.
unsafe impl Send for RawPthreadMutex {}

impl RawPthreadMutex {
    /// The mutex at `offset` of `segment`, initialised if `init`. The caller keeps
    /// `segment` mapped while the result lives.
    pub(crate) fn at(segment: &ipc_shm::SharedMemory, offset: usize, init: bool) -> Result<Self> {
        assert!(
            offset % 16 == 0
                && offset + std::mem::size_of::<libc::pthread_mutex_t>() <= segment.len()
        );
        // SAFETY: inside the mapping and aligned (checked above).
        let mutex = unsafe { segment.as_ptr().add(offset) }.cast::<libc::pthread_mutex_t>();
        if init {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            // SAFETY: the attributes are initialised before use and destroyed after; the
            // mutex place is writable, aligned and unused.
            let ret = unsafe {
                libc::pthread_mutexattr_init(attr.as_mut_ptr());
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
                libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
                libc::pthread_mutexattr_settype(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ERRORCHECK);
                let ret = libc::pthread_mutex_init(mutex, attr.as_ptr());
                libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
                ret
            };
            if ret != 0 {
                return Err(Error::from_raw_os_error("pthread_mutex_init", ret));
            }
        }
        Ok(RawPthreadMutex(mutex))
    }

    pub(crate) fn lock(&self) {
        // SAFETY: an initialised mutex (constructor).
        unsafe { libc::pthread_mutex_lock(self.0) };
    }

    pub(crate) fn unlock(&self) {
        // SAFETY: as for `lock`, held by this thread.
        unsafe { libc::pthread_mutex_unlock(self.0) };
    }
}

/// Removes named POSIX semaphores when dropped (`sem_unlink`).
#[derive(Debug)]
pub(crate) struct SemNames(pub(crate) Vec<ipc_core::IpcName>);

impl Drop for SemNames {
    fn drop(&mut self) {
        for name in &self.0 {
            // SAFETY: a NUL-terminated name; a missing name is not an error worth reporting.
            unsafe { libc::sem_unlink(name.as_cstr().as_ptr()) };
        }
    }
}

/// A POSIX message queue driven with raw libc calls: the floor of `ipc-mq`.
#[derive(Debug)]
pub(crate) struct RawQueue {
    mqd: libc::mqd_t,
    name: Option<ipc_core::IpcName>,
}

impl RawQueue {
    /// `mq_open(name, O_RDWR | flags)`, creating it (10 messages of `size` bytes, owner-only)
    /// and removing the name on drop if `create`.
    pub(crate) fn open(
        name: &ipc_core::IpcName,
        create: bool,
        size: usize,
        nonblocking: bool,
    ) -> Result<Self> {
        // SAFETY: an all-zero `mq_attr` is valid; the fields set are integers.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        attr.mq_maxmsg = 10;
        attr.mq_msgsize = i64::try_from(size).unwrap_or(i64::MAX);
        let mut flags = libc::O_RDWR;
        if create {
            flags |= libc::O_CREAT | libc::O_EXCL;
        }
        if nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        // SAFETY: a NUL-terminated name and a valid attribute pointer, read only with
        // O_CREAT.
        let mqd = unsafe {
            libc::mq_open(
                name.as_cstr().as_ptr(),
                flags,
                0o600 as libc::c_uint,
                std::ptr::from_mut(&mut attr),
            )
        };
        if mqd < 0 {
            return Err(Error::last_os_error("mq_open"));
        }
        Ok(RawQueue {
            mqd,
            name: create.then(|| name.clone()),
        })
    }

    /// `mq_send`, spinning while the queue is full if it is non-blocking.
    pub(crate) fn send(&self, msg: &[u8]) -> Result<()> {
        loop {
            // SAFETY: an open queue; `msg` valid for its length.
            if unsafe { libc::mq_send(self.mqd, msg.as_ptr().cast(), msg.len(), 0) } == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                return Err(Error::from(err).with_op("mq_send"));
            }
            std::hint::spin_loop();
        }
    }

    /// `mq_receive` into `buf`, spinning while the queue is empty if it is non-blocking.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let mut priority = 0;
            // SAFETY: an open queue; `buf` writable for its length.
            let n = unsafe {
                libc::mq_receive(self.mqd, buf.as_mut_ptr().cast(), buf.len(), &mut priority)
            };
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
                return Err(Error::from(err).with_op("mq_receive"));
            }
            std::hint::spin_loop();
        }
    }
}

impl Drop for RawQueue {
    fn drop(&mut self) {
        // SAFETY: an open queue, closed once; the name, if ours, removed once.
        unsafe {
            libc::mq_close(self.mqd);
            if let Some(name) = &self.name {
                libc::mq_unlink(name.as_cstr().as_ptr());
            }
        }
    }
}

/// Raw signal calls: the floors of `ipc-signal`'s round trips.
pub(crate) mod signals {
    use ipc_core::{Error, Result};

    /// Blocks `signals` in the calling thread and returns their set.
    pub(crate) fn block(signals: &[libc::c_int]) -> libc::sigset_t {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: the set is initialised by `sigemptyset` before use; valid numbers.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &signal in signals {
                libc::sigaddset(set.as_mut_ptr(), signal);
            }
            let set = set.assume_init();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        }
    }

    /// `kill(pid, signal)`.
    pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> Result<()> {
        // SAFETY: integer arguments.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error("kill"))
        }
    }

    /// `sigwaitinfo(set)`: the next blocked signal of the set, retried after `EINTR`.
    pub(crate) fn sigwaitinfo(set: &libc::sigset_t) -> Result<libc::c_int> {
        loop {
            // SAFETY: a valid set; a null info pointer is allowed.
            let signal = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
            if signal > 0 {
                return Ok(signal);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::from(err).with_op("sigwaitinfo"));
            }
        }
    }

    /// `sigqueue(pid, signal, value)`.
    pub(crate) fn sigqueue(pid: libc::pid_t, signal: libc::c_int, value: i32) -> Result<()> {
        let value = libc::sigval {
            sival_ptr: value as isize as *mut libc::c_void,
        };
        // SAFETY: integer arguments and a plain union.
        if unsafe { libc::sigqueue(pid, signal, value) } == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error("sigqueue"))
        }
    }

    /// A blocking `signalfd` for `set`.
    pub(crate) fn signalfd(set: &libc::sigset_t) -> Result<std::os::fd::OwnedFd> {
        // SAFETY: a valid set; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::last_os_error("signalfd"));
        }
        // SAFETY: a new descriptor that nobody else owns.
        Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// One blocking read of a `signalfd`: the signal's payload.
    pub(crate) fn read_signalfd(fd: std::os::fd::BorrowedFd<'_>) -> Result<i32> {
        use std::os::fd::AsRawFd;
        let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is writable for `size` bytes.
            let n = unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if usize::try_from(n).ok() == Some(size) {
                // SAFETY: filled in by the kernel; plain integers.
                return Ok(unsafe { info.assume_init() }.ssi_int);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::from(err).with_op("read(signalfd)"));
            }
        }
    }
}
