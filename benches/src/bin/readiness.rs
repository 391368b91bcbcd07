//! Measures the candidate designs for making a futex-based endpoint (the shared-memory
//! channel, the semaphores, the robust mutex) ready in a poller, before one is chosen
//! (issue 16, item 1). Two processes pinned to different CPUs make round trips; the peer
//! always waits on a plain futex, and the measuring process waits for the reply in one of
//! these ways, batches interleaved:
//!
//! - `futex`: a plain `FUTEX_WAIT` (what a blocking endpoint does: the baseline);
//! - `waitv-thread`: a per-process waiter thread in `futex_waitv` on the word, which
//!   writes an eventfd that the measuring thread polls with epoll;
//! - `wake-socket`: the peer sends a byte to an abstract Unix datagram socket bound by the
//!   waiter (a descriptor the other side can reach by a name), polled with epoll;
//! - `wake-socket-nested`: the same socket inside a per-endpoint epoll set (beside the
//!   peer's pidfd, as an endpoint that also watches its peer needs), polled from an outer
//!   epoll as a selector would;
//! - `wake-fifo`: the peer writes a byte to a FIFO the waiter made (reachable by a path);
//! - `wake-eventfd`: the peer writes the waiter's own eventfd, taken once with
//!   `pidfd_getfd` (reachable only with ptrace rights over the waiter: the floor of a
//!   descriptor the other side can reach).
//!
//! `cargo run --release -p ipc-bench --bin ipc-bench-readiness [round trips per batch]`
//! prints the medians and p99s of the round trips and their ratios to `futex`.

// The candidates are raw system calls (futex_waitv, pidfd_getfd, epoll) measured bare.
#![allow(unsafe_code)]
// Every cast here is of a small constant, a descriptor or a candidate index.
#![allow(clippy::cast_possible_truncation)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_bench::affinity;
use ipc_bench::stats::Summary;

const CANDIDATES: [&str; 6] = [
    "futex",
    "waitv-thread",
    "wake-socket",
    "wake-socket-nested",
    "wake-fifo",
    "wake-eventfd",
];
/// Words of the shared page: the ping the peer waits on, the pong it answers with, the
/// candidate (an index into `CANDIDATES`) the pong is announced by, and a stop flag.
const PING: usize = 0;
const PONG: usize = 1;
const MODE: usize = 2;
const STOP: usize = 3;
/// Bumped (and woken) by the peer in `waitv-thread` only, so that the waiter thread sleeps
/// through the other candidates' batches.
const NOTE: usize = 4;
const ROUNDS: usize = 7;

struct Page(*mut AtomicU32);

// SAFETY: the page holds atomics only and is never unmapped.
unsafe impl Sync for Page {}
// SAFETY: as above.
unsafe impl Send for Page {}

impl Page {
    fn new() -> Page {
        // SAFETY: a fresh anonymous shared mapping of one page; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        Page(ptr.cast())
    }

    fn word(&self, index: usize) -> &AtomicU32 {
        assert!(index < 1024);
        // SAFETY: inside the page mapped for the life of the process, aligned, atomics only.
        unsafe { &*self.0.add(index) }
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    ipc_core::internal::futex_wait(word, expected, None);
}

fn futex_wake(word: &AtomicU32) {
    ipc_core::internal::futex_wake(word, i32::MAX);
}

/// `futex_waitv` on one shared 32-bit word.
fn futex_waitv(word: &AtomicU32, expected: u32) {
    // SAFETY: all-zero is a valid futex_waitv (its reserved field must be zero).
    let mut waiter: libc::futex_waitv = unsafe { std::mem::zeroed() };
    waiter.val = u64::from(expected);
    waiter.uaddr = word.as_ptr() as u64;
    waiter.flags = libc::FUTEX2_SIZE_U32 as u32;
    // SAFETY: one valid entry naming a live, aligned word; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            &waiter as *const libc::futex_waitv,
            1u32,
            0u32,
            std::ptr::null::<libc::timespec>(),
            libc::CLOCK_MONOTONIC,
        )
    };
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
    ret
}

fn owned(fd: libc::c_int, what: &str) -> OwnedFd {
    // SAFETY: a descriptor just returned to us and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(check(fd, what)) }
}

fn abstract_address(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, byte) in addr.sun_path[1..].iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    (addr, len as libc::socklen_t)
}

fn datagram_socket() -> OwnedFd {
    // SAFETY: plain socket creation.
    owned(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) },
        "socket",
    )
}

fn epoll_with(fds: &[BorrowedFd<'_>]) -> OwnedFd {
    // SAFETY: plain epoll creation.
    let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }, "epoll");
    for fd in fds {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both descriptors are open; `event` is valid for the call.
        check(
            unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd.as_raw_fd(),
                    &mut event,
                )
            },
            "epoll_ctl",
        );
    }
    epoll
}

fn epoll_wait(epoll: BorrowedFd<'_>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
    loop {
        // SAFETY: `events` is writable for four entries.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 4, -1) };
        if n > 0 {
            return;
        }
    }
}

/// Reads what is queued on a non-blocking descriptor, to re-arm its readiness.
fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is writable for its length.
    while unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    } > 0
    {}
}

/// Reads what a non-blocking pipe or eventfd holds, to re-arm its readiness.
fn read_all(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is writable for its length.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// The peer: waits on the ping word, bumps the pong word and announces it as the current
/// candidate says.
fn peer(page: &Page, name: &str, fifo: &std::path::Path, eventfd: i32, cpu: Option<usize>) -> ! {
    if let Some(cpu) = cpu {
        affinity::pin_to(cpu).expect("pin the peer");
    }
    let socket = datagram_socket();
    let (addr, len) = abstract_address(name);
    // SAFETY: `addr` is a valid address of `len` bytes.
    check(
        unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        },
        "connect",
    );
    let fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open the FIFO");
    let parent = owned(
        // SAFETY: plain descriptor creation for our parent.
        unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getppid(), 0) } as libc::c_int,
        "pidfd_open",
    );
    let eventfd = owned(
        // SAFETY: takes a copy of the parent's eventfd.
        unsafe { libc::syscall(libc::SYS_pidfd_getfd, parent.as_raw_fd(), eventfd, 0) }
            as libc::c_int,
        "pidfd_getfd",
    );
    let mut last = 0;
    loop {
        let ping = loop {
            let now = page.word(PING).load(Ordering::Acquire);
            if now != last {
                break now;
            }
            if page.word(STOP).load(Ordering::Acquire) != 0 {
                std::process::exit(0);
            }
            futex_wait(page.word(PING), now);
        };
        last = ping;
        page.word(PONG).store(ping, Ordering::Release);
        match page.word(MODE).load(Ordering::Relaxed) {
            0 => futex_wake(page.word(PONG)),
            1 => {
                page.word(NOTE).fetch_add(1, Ordering::Release);
                futex_wake(page.word(NOTE));
            }
            2 | 3 => {
                // SAFETY: one readable byte.
                unsafe { libc::send(socket.as_raw_fd(), b"w".as_ptr().cast(), 1, 0) };
            }
            4 => {
                // SAFETY: one readable byte.
                unsafe { libc::write(fifo.as_raw_fd(), b"w".as_ptr().cast(), 1) };
            }
            _ => {
                let one = 1u64;
                // SAFETY: eight readable bytes.
                unsafe { libc::write(eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// The waiter thread of `waitv-thread`: turns each change of the note word into an
/// eventfd write.
fn waiter_thread(page: &'static Page, eventfd: OwnedFd) {
    let mut last = page.word(NOTE).load(Ordering::Acquire);
    loop {
        let now = page.word(NOTE).load(Ordering::Acquire);
        if now == last {
            if page.word(STOP).load(Ordering::Acquire) != 0 {
                return;
            }
            futex_waitv(page.word(NOTE), now);
            continue;
        }
        last = now;
        let one = 1u64;
        // SAFETY: eight readable bytes.
        unsafe { libc::write(eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

fn main() {
    let per_batch: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let page: &'static Page = Box::leak(Box::new(Page::new()));
    let name = format!("ipc-rs-bench-readiness-{}", std::process::id());
    let listener = datagram_socket();
    let (addr, len) = abstract_address(&name);
    // SAFETY: `addr` is a valid address of `len` bytes.
    check(
        unsafe {
            libc::bind(
                listener.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        },
        "bind",
    );
    let fifo = std::env::temp_dir().join(&name);
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("a path");
    // SAFETY: a valid path.
    check(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, "mkfifo");
    let fifo_read = owned(
        // SAFETY: a valid path; non-blocking, so the open needs no writer yet.
        unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        },
        "open",
    );
    // SAFETY: plain descriptor creation.
    let peer_eventfd = owned(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        "eventfd",
    );
    let cpus = affinity::cpu_pair().expect("the allowed CPUs");
    // SAFETY: no other thread exists yet, so the child may run anything.
    let child = check(unsafe { libc::fork() }, "fork");
    if child == 0 {
        peer(
            page,
            &name,
            &fifo,
            peer_eventfd.as_raw_fd(),
            cpus.map(|(_, b)| b),
        );
    }
    if let Some((a, _)) = cpus {
        affinity::pin_to(a).expect("pin");
    }
    // SAFETY: plain descriptor creation.
    let eventfd = owned(
        unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
        "eventfd",
    );
    let pidfd = owned(
        // SAFETY: plain descriptor creation for our child.
        unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as libc::c_int,
        "pidfd_open",
    );
    let thread_end = eventfd.try_clone().expect("dup");
    std::thread::spawn(move || waiter_thread(page, thread_end));
    let on_eventfd = epoll_with(&[eventfd.as_fd()]);
    let on_socket = epoll_with(&[listener.as_fd()]);
    let inner = epoll_with(&[listener.as_fd(), pidfd.as_fd()]);
    let outer = epoll_with(&[inner.as_fd()]);
    let on_fifo = epoll_with(&[fifo_read.as_fd()]);
    let on_peer_eventfd = epoll_with(&[peer_eventfd.as_fd()]);

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); CANDIDATES.len()];
    let mut seq = 0u32;
    for round in 0..=ROUNDS {
        for (mode, candidate) in samples.iter_mut().enumerate() {
            page.word(MODE).store(mode as u32, Ordering::Relaxed);
            for _ in 0..per_batch {
                seq = seq.wrapping_add(1);
                let start = Instant::now();
                page.word(PING).store(seq, Ordering::Release);
                futex_wake(page.word(PING));
                while page.word(PONG).load(Ordering::Acquire) != seq {
                    match mode {
                        0 => futex_wait(page.word(PONG), seq.wrapping_sub(1)),
                        1 => {
                            epoll_wait(on_eventfd.as_fd());
                            let mut count = 0u64;
                            // SAFETY: eight writable bytes.
                            unsafe {
                                libc::read(eventfd.as_raw_fd(), (&mut count as *mut u64).cast(), 8)
                            };
                        }
                        2 => {
                            epoll_wait(on_socket.as_fd());
                            drain(listener.as_fd());
                        }
                        3 => {
                            epoll_wait(outer.as_fd());
                            drain(listener.as_fd());
                        }
                        4 => {
                            epoll_wait(on_fifo.as_fd());
                            read_all(fifo_read.as_fd());
                        }
                        _ => {
                            epoll_wait(on_peer_eventfd.as_fd());
                            read_all(peer_eventfd.as_fd());
                        }
                    }
                }
                // The first round warms up.
                if round > 0 {
                    candidate.push(start.elapsed());
                }
            }
        }
    }
    page.word(STOP).store(1, Ordering::Release);
    seq = seq.wrapping_add(1);
    page.word(PING).store(seq, Ordering::Release);
    futex_wake(page.word(PING));
    page.word(NOTE).fetch_add(1, Ordering::Release);
    futex_wake(page.word(NOTE));
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    // SAFETY: a valid path.
    unsafe { libc::unlink(path.as_ptr()) };

    let summaries: Vec<Summary> = samples
        .iter_mut()
        .map(|s| Summary::of(s).expect("samples"))
        .collect();
    let base = summaries[0];
    println!(
        "round trips, {ROUNDS} interleaved batches of {per_batch}, cpus {cpus:?}\n\
         {:<20} {:>10} {:>10} {:>8} {:>8}",
        "candidate", "median", "p99", "×median", "×p99"
    );
    for (candidate, s) in CANDIDATES.iter().zip(&summaries) {
        println!(
            "{candidate:<20} {:>10.2?} {:>10.2?} {:>8.2} {:>8.2}",
            s.median,
            s.p99,
            s.median.as_secs_f64() / base.median.as_secs_f64(),
            s.p99.as_secs_f64() / base.p99.as_secs_f64()
        );
    }
}
