//! Criterion benchmarks of what a look at an idle endpoint costs (issue 17, item 2): an
//! empty `Consumer::try_recv` of a shared-memory channel and an empty
//! `MessageQueue::try_recv`, next to their floors in the same run: reading the other side's
//! position (one atomic load) and the `poll` of a pidfd that every empty channel
//! `try_recv` used to make; `mq_receive` on an empty non-blocking queue.
//!
//! One process: an idle look involves no peer, only its liveness (here the process itself,
//! as alive as a peer gets). Also what a channel and a queue cost to create and remove,
//! next to the raw calls.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::Criterion;
use ipc_core::IpcName;
use ipc_mq::QueueOptions;
use ipc_shm::ChannelOptions;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A name of this run's own.
fn name(tag: &str) -> IpcName {
    IpcName::new(format!("/ipcrs-bench-idle-{tag}-{}", std::process::id())).expect("name")
}

fn idle(c: &mut Criterion) {
    let mut group = c.benchmark_group("idle_look");

    // The floor: the load of a position word (another process writes it; idle, the line
    // stays in this CPU's cache, as here).
    let position = AtomicU64::new(0);
    group.bench_function("floor: load of a position", |b| {
        b.iter(|| black_box(black_box(&position).load(Ordering::Acquire)));
    });

    // What each empty look cost before: a `poll` of the peer's pidfd.
    let pidfd = ipc_core::internal::pidfd_open(std::process::id()).expect("pidfd_open");
    group.bench_function("floor: poll of a pidfd", |b| {
        b.iter(|| {
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&pidfd),
                PollFlags::POLLIN,
            )];
            black_box(poll(&mut fds, PollTimeout::ZERO).expect("poll"))
        });
    });

    let channel = name("channel");
    let options = ChannelOptions::new()
        .capacity(64 * 1024)
        .max_message_size(4096);
    let mut consumer = options.create_consumer(&channel).expect("consumer");
    let producer = options.open_producer(&channel).expect("producer");
    let mut buf = vec![0u8; 4096];
    group.bench_function("shm Consumer::try_recv, empty", |b| {
        b.iter(|| {
            let empty = consumer.try_recv(&mut buf).expect_err("empty");
            assert!(empty.is_would_block());
        });
    });

    let queue_name = name("queue");
    let queue = QueueOptions::new()
        .capacity(10)
        .max_message_size(64)
        .create(&queue_name)
        .expect("queue");
    let mut small = [0u8; 64];
    // Its floor: `mq_receive` on an empty queue opened `O_NONBLOCK`.
    let raw_name = std::ffi::CString::new(name("raw-queue").as_str()).expect("name");
    let attr = nix::mqueue::MqAttr::new(0, 10, 64, 0);
    let flags = nix::mqueue::MQ_OFlag::O_CREAT
        | nix::mqueue::MQ_OFlag::O_EXCL
        | nix::mqueue::MQ_OFlag::O_RDWR
        | nix::mqueue::MQ_OFlag::O_NONBLOCK;
    let mode = nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR;
    let raw = nix::mqueue::mq_open(raw_name.as_c_str(), flags, mode, Some(&attr)).expect("mq_open");
    group.bench_function("floor: mq_receive, empty", |b| {
        b.iter(|| {
            let mut priority = 0;
            let empty = nix::mqueue::mq_receive(&raw, &mut small, &mut priority);
            assert_eq!(empty, Err(nix::errno::Errno::EAGAIN));
        });
    });
    let _ = nix::mqueue::mq_close(raw);
    nix::mqueue::mq_unlink(raw_name.as_c_str()).expect("mq_unlink");
    group.bench_function("MessageQueue::try_recv, empty", |b| {
        b.iter(|| {
            let empty = queue.try_recv(&mut small).expect_err("empty");
            assert!(empty.is_would_block());
        });
    });
    // The same on a non-blocking description, as the floor's.
    queue.set_nonblocking(true).expect("set_nonblocking");
    group.bench_function("MessageQueue::try_recv, empty, non-blocking", |b| {
        b.iter(|| {
            let empty = queue.try_recv(&mut small).expect_err("empty");
            assert!(empty.is_would_block());
        });
    });
    group.finish();
    // The names are made anew below.
    drop((consumer, producer, queue));

    // What an object costs to make (and remove), next to the raw calls it makes.
    let mut create = c.benchmark_group("create_and_remove");
    let segment = name("segment");
    for (floor, reserve) in [
        (
            "floor: shm_open, ftruncate, mmap, munmap, shm_unlink",
            false,
        ),
        ("floor: the same with posix_fallocate, as a channel", true),
    ] {
        create.bench_function(floor, |b| {
            b.iter(|| {
                ipc_bench::shm::raw_segment_create_and_remove(&segment, 64 * 1024 + 4096, reserve)
                    .expect("segment")
            });
        });
    }
    create.bench_function("channel: create_consumer + drop", |b| {
        b.iter(|| black_box(options.create_consumer(&channel).expect("consumer")));
    });
    create.bench_function("floor: mq_open + mq_close + mq_unlink", |b| {
        b.iter(|| {
            let raw = nix::mqueue::mq_open(raw_name.as_c_str(), flags, mode, Some(&attr))
                .expect("mq_open");
            let _ = nix::mqueue::mq_close(raw);
            nix::mqueue::mq_unlink(raw_name.as_c_str()).expect("mq_unlink");
        });
    });
    let queue_options = QueueOptions::new().capacity(10).max_message_size(64);
    create.bench_function("MessageQueue: create + drop", |b| {
        b.iter(|| black_box(queue_options.create(&queue_name).expect("queue")));
    });
    create.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    idle(&mut c);
    c.final_summary();
}
