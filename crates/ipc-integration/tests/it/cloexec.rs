//! Every descriptor any of the crates opens is close-on-exec, so that a child started by
//! `exec` (a shell command, a helper program) inherits nothing it was not handed on purpose.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use ipc_mq::QueueOptions;
use ipc_pipe::{Fifo, VmspliceWriter};
use ipc_sem::SemaphoreOptions;
use ipc_shm::{ChannelOptions, MemfdOptions, ShmOptions};
use ipc_signal::{Process, ShutdownOptions, Signal, SignalFd, SignalReceiver};
use ipc_socket::{
    Datagram, Seqpacket, SeqpacketListener, StreamListener, TcpOptions, UdpOptions, UnixAddr,
    UnixSocketExt, connect_stream,
};
use ipc_testkit::{LeakGuard, test_timeout};

/// This process's descriptors above stdio, with whether each is close-on-exec (the
/// `O_CLOEXEC` bit that `/proc/self/fdinfo` shows in its octal flags) and what it refers to.
fn descriptors() -> Vec<(RawFd, bool, String)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
            // The listing's own descriptor is closed by now: what is gone is skipped.
            let target = std::fs::read_link(entry.path()).ok()?;
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
            let flags = info
                .lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|octal| i32::from_str_radix(octal.trim(), 8).ok())?;
            let cloexec = flags & libc::O_CLOEXEC != 0;
            (fd > 2).then(|| (fd, cloexec, target.display().to_string()))
        })
        .collect()
}

#[test]
fn every_descriptor_the_crates_open_is_close_on_exec() {
    let guard = LeakGuard::new();
    // What the test runner passed down (a jobserver pipe, say) is not ours to judge.
    let inherited = ipc_testkit::inherited_fds();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();

    // ipc-pipe: anonymous pipes, duplex pairs, a FIFO's ends, the zero-copy writer.
    let (reader, writer) = ipc_pipe::pipe().unwrap();
    keep.push(Box::new(reader));
    keep.push(Box::new(VmspliceWriter::new(writer)));
    keep.push(Box::new(ipc_pipe::duplex().unwrap()));
    let fifo = Fifo::create(guard.dir().join("fifo")).unwrap();
    keep.push(Box::new(fifo.open_reader().unwrap()));
    keep.push(Box::new(fifo.open_writer_timeout(test_timeout()).unwrap()));
    keep.push(Box::new(fifo));

    // ipc-socket: each kind, accepted connections, and descriptors received in a message.
    let stream_addr = UnixAddr::path(guard.dir().join("stream.sock"));
    let listener = StreamListener::bind(&stream_addr).unwrap();
    keep.push(Box::new(connect_stream(&stream_addr).unwrap()));
    keep.push(Box::new(listener.accept_timeout(test_timeout()).unwrap()));
    keep.push(Box::new(listener));
    let packet_addr = UnixAddr::path(guard.dir().join("packet.sock"));
    let listener = SeqpacketListener::bind(&packet_addr).unwrap();
    keep.push(Box::new(Seqpacket::connect(&packet_addr).unwrap()));
    keep.push(Box::new(listener.accept_timeout(test_timeout()).unwrap()));
    keep.push(Box::new(listener));
    keep.push(Box::new(Datagram::pair().unwrap()));
    let (a, b) = Seqpacket::pair().unwrap();
    let (pipe_reader, _) = ipc_pipe::pipe().unwrap();
    a.send_with_fds(b"fd", &[pipe_reader.as_fd()]).unwrap();
    let (_, received) = b.recv_with_fds(&mut [0u8; 8], 1).unwrap();
    assert_eq!(received.len(), 1);
    keep.push(Box::new(received));
    keep.push(Box::new(a.peer_pidfd().unwrap()));
    keep.push(Box::new((a, b, pipe_reader)));
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let acceptor = TcpOptions::new().listen(loopback).unwrap();
    let tcp_addr = acceptor.local_addr().unwrap();
    keep.push(Box::new(TcpOptions::new().connect(tcp_addr).unwrap()));
    keep.push(Box::new(acceptor.accept_timeout(test_timeout()).unwrap()));
    keep.push(Box::new(acceptor));
    keep.push(Box::new(UdpOptions::new().bind(loopback).unwrap()));

    // ipc-shm: named and memfd segments, a channel's two ends.
    keep.push(Box::new(
        ShmOptions::new()
            .size(4096)
            .create(&guard.name("segment"))
            .unwrap(),
    ));
    keep.push(Box::new(MemfdOptions::new(4096).create().unwrap()));
    let channel = ChannelOptions::new()
        .capacity(1 << 16)
        .timeout(test_timeout());
    let channel_name = guard.name("channel");
    keep.push(Box::new(channel.create_producer(&channel_name).unwrap()));
    keep.push(Box::new(channel.open_consumer(&channel_name).unwrap()));

    // ipc-sem and ipc-mq: a named semaphore, a queue and its notification socket.
    keep.push(Box::new(
        SemaphoreOptions::new().create(&guard.name("sem")).unwrap(),
    ));
    let queue = QueueOptions::new()
        .capacity(1)
        .max_message_size(64)
        .create(&guard.name("queue"))
        .unwrap();
    // The notification borrows the queue: check while both are open.
    let notification = queue.notify().unwrap();

    // ipc-signal: a signalfd, a handler's pipe, the shutdown pipe, a pidfd. WINCH is
    // ignored by default, so blocking it in this thread alone is harmless.
    let signalfd = SignalFd::new(&[Signal::WINCH]).unwrap();
    let receiver = SignalReceiver::new(&[Signal::WINCH]).unwrap();
    let shutdown = ShutdownOptions::new().install().unwrap();
    let process = Process::open(std::process::id()).unwrap();

    let ours: Vec<_> = descriptors()
        .into_iter()
        .filter(|(fd, _, _)| !inherited.contains(fd))
        .collect();
    // Proof that the listing sees what was opened: one of every kind checked here.
    for fd in [
        notification.as_raw_fd(),
        signalfd.as_raw_fd(),
        receiver.as_raw_fd(),
        shutdown.as_fd().as_raw_fd(),
        process.as_raw_fd(),
    ] {
        assert!(
            ours.iter().any(|(seen, _, _)| *seen == fd),
            "{fd} not listed"
        );
    }
    assert!(
        ours.len() >= 30,
        "only {} descriptors: {ours:?}",
        ours.len()
    );
    let leaking: Vec<_> = ours.iter().filter(|(_, cloexec, _)| !cloexec).collect();
    assert!(leaking.is_empty(), "not close-on-exec: {leaking:?}");
    drop(notification);
}
