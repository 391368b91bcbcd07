//! The scenarios of the design, each between separate processes through the public APIs.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use ipc_core::{FramedReader, FramedWriter, IpcName, MessageReceiver};
use ipc_integration::{Tally, encode};
use ipc_mq::{Direction, QueueOptions};
use ipc_pipe::{Fifo, PipeReader, PipeWriter};
use ipc_sem::{MutexOptions, RobustMutex, SemaphoreOptions};
use ipc_shm::{ChannelOptions, MemfdOptions, ReceiveOptions, SharedMemory, ShmOptions};
use ipc_signal::{Process, ShutdownOptions, Signal};
use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, SignalStorm, test_timeout};

const MILLION: u64 = 1_000_000;

fn channel() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(1 << 20)
        .max_message_size(256)
        .timeout(test_timeout())
}

/// Sends arg 1 workload messages through the shm channel named arg 0.
pub fn channel_producer_role(ctx: &mut PeerContext) -> PeerResult {
    let mut producer = channel().open_producer(&IpcName::new(ctx.arg(0)?)?)?;
    let count: u64 = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    let mut buf = Vec::new();
    for seq in 0..count {
        encode(1, seq, 256, &mut buf);
        producer.send_timeout(&buf, test_timeout())?;
    }
    Ok(())
}

/// Scenario 1, the channel: a million checksummed messages from another process, none
/// lost, duplicated or reordered, through a storm of signals.
#[test]
fn a_million_messages_through_the_shm_channel() {
    let guard = LeakGuard::new();
    let name = guard.name("million");
    let mut consumer = channel().create_consumer(&name).unwrap();
    let mut producer = Peer::spawn("channel-producer", &[name.as_str(), &MILLION.to_string()]);
    let storm = SignalStorm::start();
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 256];
    for _ in 0..MILLION {
        let n = consumer.recv_timeout(&mut buf, test_timeout()).unwrap();
        tally.record(&buf[..n]).unwrap();
    }
    drop(storm);
    producer.wait_success().unwrap();
    assert_eq!(tally.received(), MILLION);
    assert!(
        consumer
            .recv_timeout(&mut buf, test_timeout())
            .unwrap_err()
            .is_peer_gone()
    );
}

/// The bounded buffer: 64 slots of 32 bytes, `empty` and `full` semaphores and a robust
/// mutex over the two positions, in segment arg 0.
struct Buffer<'a> {
    segment: &'a SharedMemory,
    empty: ipc_sem::Semaphore<&'a SharedMemory>,
    full: ipc_sem::Semaphore<&'a SharedMemory>,
    positions: RobustMutex<&'a SharedMemory, [u64; 2]>,
}

const SLOTS: u32 = 64;
const SLOT: usize = 32;
const SLOTS_AT: usize = 512;

impl<'a> Buffer<'a> {
    fn create(segment: &'a SharedMemory) -> Buffer<'a> {
        Buffer {
            segment,
            empty: SemaphoreOptions::new()
                .initial(64)
                .init_in(segment, 0)
                .unwrap(),
            full: SemaphoreOptions::new().init_in(segment, 64).unwrap(),
            positions: MutexOptions::new().init_in(segment, 128, [0, 0]).unwrap(),
        }
    }

    fn open(segment: &'a SharedMemory) -> ipc_core::Result<Buffer<'a>> {
        Ok(Buffer {
            segment,
            empty: SemaphoreOptions::new().open_in(segment, 0)?,
            full: SemaphoreOptions::new().open_in(segment, 64)?,
            positions: MutexOptions::new().open_in(segment, 128)?,
        })
    }

    fn slot(&self, which: usize) -> ipc_core::Result<usize> {
        let guard = self.positions.lock_timeout(test_timeout())?.clean()?;
        let mut positions = guard.get();
        let slot = positions[which] % u64::from(SLOTS);
        positions[which] += 1;
        guard.set(positions);
        Ok(SLOTS_AT + usize::try_from(slot).unwrap_or(0) * SLOT)
    }

    fn put(&self, msg: &[u8]) -> ipc_core::Result<()> {
        self.empty.wait_timeout(test_timeout())?;
        let at = self.slot(0)?;
        self.segment
            .write_at(at, &[u8::try_from(msg.len()).unwrap_or(0)])?;
        self.segment.write_at(at + 1, msg)?;
        self.full.post()
    }

    fn take(&self, buf: &mut [u8]) -> ipc_core::Result<usize> {
        self.full.wait_timeout(test_timeout())?;
        let at = self.slot(1)?;
        let mut len = [0u8];
        self.segment.read_at(at, &mut len)?;
        let len = usize::from(len[0]).min(SLOT - 1);
        self.segment.read_at(at + 1, &mut buf[..len])?;
        self.empty.post()?;
        Ok(len)
    }
}

/// Puts arg 1 workload messages into the bounded buffer in segment arg 0.
pub fn buffer_producer_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let buffer = Buffer::open(&segment)?;
    let count: u64 = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    let mut buf = Vec::new();
    for seq in 0..count {
        encode(2, seq, SLOT - 1, &mut buf);
        buffer.put(&buf)?;
    }
    Ok(())
}

/// Scenario 1, the classic way: a million messages through a bounded buffer in shared
/// memory guarded by two counting semaphores and a robust mutex.
#[test]
fn a_million_messages_through_a_semaphore_guarded_buffer() {
    let guard = LeakGuard::new();
    let name = guard.name("buffer");
    let segment = ShmOptions::new()
        .size(SLOTS_AT + SLOTS as usize * SLOT)
        .create(&name)
        .unwrap();
    let buffer = Buffer::create(&segment);
    let mut producer = Peer::spawn("buffer-producer", &[name.as_str(), &MILLION.to_string()]);
    let mut tally = Tally::default();
    let mut buf = [0u8; SLOT];
    for _ in 0..MILLION {
        let n = buffer.take(&mut buf).unwrap();
        tally.record(&buf[..n]).unwrap();
    }
    producer.wait_success().unwrap();
    assert_eq!(tally.received(), MILLION);
}

/// Connects to the seqpacket server at arg 0 as client arg 1 and makes arg 2 requests.
pub fn seqpacket_client_role(ctx: &mut PeerContext) -> PeerResult {
    let socket = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    let me: u32 = ctx.arg(1)?.parse()?;
    let count: u64 = ctx.arg(2)?.parse()?;
    ctx.ready()?;
    let mut msg = Vec::new();
    let mut reply = vec![0u8; 1024];
    for seq in 0..count {
        encode(me, seq, 200, &mut msg);
        socket.send_timeout(&msg, test_timeout())?;
        let n = socket.recv_timeout(&mut reply, test_timeout())?;
        // The server answers with the request, reversed.
        let mut expected = msg.clone();
        expected.reverse();
        if reply[..n] != expected[..] {
            return Err(format!("client {me}: a wrong reply to request {seq}").into());
        }
    }
    Ok(())
}

/// Scenario 2: a seqpacket server with 8 concurrent client processes, each checked by its
/// credentials, request-reply.
#[test]
fn a_seqpacket_server_with_eight_clients() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("server.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let clients: Vec<Peer> = (0..8)
        .map(|i| {
            Peer::spawn(
                "seqpacket-client",
                &[path.to_str().unwrap(), &i.to_string(), "500"],
            )
        })
        .collect();
    let pids: BTreeSet<u32> = clients.iter().map(Peer::pid).collect();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (socket, peer) = listener.accept_timeout(test_timeout()).unwrap();
            // Only the clients this test started, running as this user.
            assert!(pids.contains(&peer.pid), "an unexpected client {peer:?}");
            assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
            scope.spawn(move || {
                let mut tally = Tally::default();
                let mut buf = vec![0u8; 1024];
                loop {
                    match socket.recv_timeout(&mut buf, test_timeout()) {
                        Ok(n) => {
                            tally.record(&buf[..n]).unwrap();
                            let mut reply = buf[..n].to_vec();
                            reply.reverse();
                            socket.send_timeout(&reply, test_timeout()).unwrap();
                        }
                        Err(e) if e.is_peer_gone() => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                assert_eq!(tally.received(), 500);
            });
        }
    });
    for mut client in clients {
        client.wait_success().unwrap();
    }
}

/// Opens `path` (a pipe end of another process, through `/proc`) for reading or writing.
fn open_proc_fd(path: &str, write: bool) -> std::io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

/// A stage of a pipeline: reads frames from arg 0 (a path: a FIFO, or a pipe end in
/// `/proc/<pid>/fd`) unless it is "-", writes to arg 1 unless "-"; the first stage makes arg
/// 2 workload messages, the others keep every other one (by number) and pass it on; the
/// last reports how many it got.
pub fn stage_role(ctx: &mut PeerContext) -> PeerResult {
    let input = ctx.arg(0)?.to_owned();
    let output = ctx.arg(1)?.to_owned();
    let count: u64 = ctx.arg(2)?.parse()?;
    let mut writer = if output == "-" {
        None
    } else {
        let end = if output.starts_with("/proc/") {
            PipeWriter::from(open_proc_fd(&output, true)?)
        } else {
            Fifo::open(&output)?.open_writer_timeout(test_timeout())?
        };
        Some(FramedWriter::new(end))
    };
    let reader = if input == "-" {
        None
    } else if input.starts_with("/proc/") {
        Some(PipeReader::from(open_proc_fd(&input, false)?))
    } else {
        Some(Fifo::open(&input)?.open_reader()?)
    };
    ctx.ready()?;
    let mut buf = Vec::new();
    match reader {
        None => {
            let writer = writer.as_mut().ok_or("a stage with neither end")?;
            for seq in 0..count {
                encode(3, seq, 512, &mut buf);
                writer.send(&buf)?;
            }
        }
        Some(reader) => {
            let mut reader = FramedReader::new(reader);
            let mut passed = 0u64;
            let mut msg = vec![0u8; reader.max_message_size()];
            loop {
                let n = match reader.recv_timeout(&mut msg, test_timeout()) {
                    Ok(n) => n,
                    Err(e) if e.is_peer_gone() => break,
                    Err(e) => return Err(e.into()),
                };
                let (_, seq) = ipc_integration::decode(&msg[..n])?;
                if let Some(writer) = writer.as_mut() {
                    if seq % 2 == 0 {
                        writer.send(&msg[..n])?;
                    }
                }
                passed += 1;
            }
            ctx.send(&passed.to_string())?;
        }
    }
    Ok(())
}

fn pipeline(first: (&str, &str), second: (&str, &str), third: (&str, &str)) -> u64 {
    // Readers first: a FIFO's writer waits for its reader.
    let mut last = Peer::spawn("stage", &[third.0, third.1, "0"]);
    let mut middle = Peer::spawn("stage", &[second.0, second.1, "0"]);
    let mut first = Peer::spawn("stage", &[first.0, first.1, "20000"]);
    first.wait_success().unwrap();
    assert_eq!(middle.recv().unwrap(), "20000");
    let count: u64 = last.recv().unwrap().parse().unwrap();
    middle.wait_success().unwrap();
    last.wait_success().unwrap();
    count
}

/// Scenario 3: three processes connected by pipes, then by FIFOs.
#[test]
fn a_three_process_pipeline_by_pipes_then_by_fifos() {
    // Anonymous pipes made here; each stage opens its ends through /proc and this process
    // closes its own copies once the stages hold them.
    let (a_read, a_write) = ipc_pipe::pipe().unwrap();
    let (b_read, b_write) = ipc_pipe::pipe().unwrap();
    let me = std::process::id();
    let path = |fd: i32| format!("/proc/{me}/fd/{fd}");
    let (a_r, a_w, b_r, b_w) = (
        path(a_read.as_raw_fd()),
        path(a_write.as_raw_fd()),
        path(b_read.as_raw_fd()),
        path(b_write.as_raw_fd()),
    );
    let mut stages = [
        Peer::spawn("stage", &["-", &a_w, "20000"]),
        Peer::spawn("stage", &[&a_r, &b_w, "0"]),
        Peer::spawn("stage", &[&b_r, "-", "0"]),
    ];
    drop((a_read, a_write, b_read, b_write));
    stages[0].wait_success().unwrap();
    assert_eq!(stages[1].recv().unwrap(), "20000");
    assert_eq!(stages[2].recv().unwrap(), "10000");
    for stage in &mut stages[1..] {
        stage.wait_success().unwrap();
    }

    let guard = LeakGuard::new();
    let fifo_a = Fifo::create(guard.dir().join("a")).unwrap();
    let fifo_b = Fifo::create(guard.dir().join("b")).unwrap();
    let (a, b) = (
        fifo_a.path().to_str().unwrap().to_owned(),
        fifo_b.path().to_str().unwrap().to_owned(),
    );
    assert_eq!(pipeline(("-", &a), (&a, &b), (&b, "-")), 10_000);
}

/// Makes arg 2 requests to the server queue arg 0 as client arg 1, half of them urgent,
/// and checks every reply on its own queue.
pub fn mq_client_role(ctx: &mut PeerContext) -> PeerResult {
    let server = QueueOptions::new().open(&IpcName::new(ctx.arg(0)?)?, Direction::Send)?;
    let me: u32 = ctx.arg(1)?.parse()?;
    let count: u64 = ctx.arg(2)?.parse()?;
    let replies = QueueOptions::new()
        .capacity(4)
        .max_message_size(64)
        .create(&IpcName::new(format!("{}-{me}", ctx.arg(0)?))?)?;
    ctx.ready()?;
    let mut msg = Vec::new();
    for seq in 0..count {
        encode(me, seq, 48, &mut msg);
        let priority = if seq % 2 == 0 { 10 } else { 1 };
        server.send_priority_timeout(&msg, priority, test_timeout())?;
        let reply = replies.recv_message_timeout(test_timeout())?;
        if reply.data != msg || reply.priority != priority {
            return Err(format!("client {me}: a wrong reply to request {seq}").into());
        }
    }
    Ok(())
}

/// Scenario 4: request-reply over message queues, four clients, two priorities; the
/// server echoes each request on the client's queue with its priority.
#[test]
fn request_reply_over_message_queues() {
    let guard = LeakGuard::new();
    let name = guard.name("server");
    let server = QueueOptions::new()
        .capacity(10)
        .max_message_size(64)
        .create(&name)
        .unwrap();
    let mut clients: Vec<Peer> = (0..4)
        .map(|i| {
            guard.track(&IpcName::new(format!("{}-{i}", name.as_str())).unwrap());
            Peer::spawn("mq-client", &[name.as_str(), &i.to_string(), "300"])
        })
        .collect();
    let mut reply_queues = std::collections::HashMap::new();
    let mut tally = Tally::default();
    for _ in 0..4 * 300 {
        let request = server.recv_message_timeout(test_timeout()).unwrap();
        let (client, _) = tally.record(&request.data).unwrap();
        let queue = reply_queues.entry(client).or_insert_with(|| {
            QueueOptions::new()
                .open(
                    &IpcName::new(format!("{}-{client}", name.as_str())).unwrap(),
                    Direction::Send,
                )
                .unwrap()
        });
        ipc_mq::MessageQueue::send_priority_timeout(
            queue,
            &request.data,
            request.priority,
            test_timeout(),
        )
        .unwrap();
    }
    for client in &mut clients {
        client.wait_success().unwrap();
    }
}

/// Receives a descriptor over the seqpacket socket at arg 0, maps it (read-only unless
/// arg 1 says "any"), and reports what it read or the error kind.
pub fn fd_receiver_role(ctx: &mut PeerContext) -> PeerResult {
    let socket = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    ctx.ready()?;
    let mut buf = [0u8; 16];
    let (_, mut fds) = socket.recv_with_fds(&mut buf, 1)?;
    let fd = fds.pop().ok_or("no descriptor")?;
    match ReceiveOptions::new().read_only(true).map(fd) {
        Ok(segment) => {
            let mut text = [0u8; 5];
            segment.read_at(0, &mut text)?;
            ctx.send(&format!(
                "{} writable {}",
                String::from_utf8_lossy(&text),
                segment.is_writable()
            ))?;
        }
        Err(e) => ctx.send(&format!("{:?}", e.kind()))?,
    }
    Ok(())
}

/// Scenario 5: a sealed memfd made here, sent over a socket, mapped read-only by another
/// process; an unsealed one refused.
#[test]
fn a_sealed_memfd_passes_an_unsealed_one_does_not() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("fds.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();

    let sealed = MemfdOptions::new(4096).create().unwrap();
    sealed.write_at(0, b"hello").unwrap();
    let mut peer = Peer::spawn("fd-receiver", &[path.to_str().unwrap()]);
    let (socket, _) = listener.accept_timeout(test_timeout()).unwrap();
    socket.send_with_fds(b"memfd", &[sealed.as_fd()]).unwrap();
    assert_eq!(peer.recv().unwrap(), "hello writable false");
    peer.wait_success().unwrap();

    // A plain shared file descriptor with no seals: the receiver refuses it.
    let unsealed =
        nix::sys::memfd::memfd_create(c"unsealed", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&unsealed, 4096).unwrap();
    let mut peer = Peer::spawn("fd-receiver", &[path.to_str().unwrap()]);
    let (socket, _) = listener.accept_timeout(test_timeout()).unwrap();
    socket.send_with_fds(b"memfd", &[unsealed.as_fd()]).unwrap();
    let refused = peer.recv().unwrap();
    assert_ne!(refused, "hello writable false");
    assert!(
        refused.contains("PermissionDenied") || refused.contains("InvalidInput"),
        "{refused}"
    );
    peer.wait_success().unwrap();
}

/// One receive of a server, bounded by a short timeout.
type Receive = Box<dyn FnMut(&mut [u8]) -> ipc_core::Result<usize>>;

/// A server of mechanism arg 0 with its named object arg 1: blocks in receive until
/// SIGTERM, then finishes and returns (removing its object).
pub fn shutdown_server_role(ctx: &mut PeerContext) -> PeerResult {
    let shutdown = ShutdownOptions::new().install()?;
    let name = IpcName::new(ctx.arg(1)?)?;
    let path = ctx.arg(2)?.to_owned();
    let mut buf = vec![0u8; 1024];
    // Each server waits in its mechanism's receive, in slices, checking the request.
    let mut receive: Receive = match ctx.arg(0)? {
        "shm-channel" => {
            let mut consumer = channel().create_consumer(&name)?;
            Box::new(move |buf| consumer.recv_timeout(buf, Duration::from_millis(20)))
        }
        "mq" => {
            let queue = QueueOptions::new()
                .capacity(4)
                .max_message_size(64)
                .create(&name)?;
            Box::new(move |buf: &mut [u8]| {
                let mut big = vec![0u8; 64];
                queue
                    .recv_timeout(&mut big, Duration::from_millis(20))
                    .inspect(|&n| buf[..n].copy_from_slice(&big[..n]))
            })
        }
        "seqpacket" => {
            let listener = SeqpacketListener::bind(&UnixAddr::path(&path))?;
            Box::new(move |_buf| {
                listener
                    .accept_timeout(Duration::from_millis(20))
                    .map(|_| 0)
            })
        }
        "fifo" => {
            let fifo = Fifo::create(&path)?;
            let reader = fifo.open_reader()?;
            Box::new(move |buf| {
                let _keep = &fifo;
                reader.read_timeout(buf, Duration::from_millis(20))
            })
        }
        "semaphore" => {
            let sem = SemaphoreOptions::new().create(&name)?;
            Box::new(move |_buf| sem.wait_timeout(Duration::from_millis(20)).map(|()| 0))
        }
        other => return Err(format!("unknown server {other}").into()),
    };
    ctx.ready()?;
    while !shutdown.is_requested() {
        match receive(&mut buf) {
            Ok(_) => {}
            Err(e) if e.is_timeout() || e.is_would_block() || e.is_cancelled() => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.send("shutting down")?;
    Ok(())
}

/// Scenario 6: servers of each mechanism blocked in receive get SIGTERM, finish cleanly and
/// remove their named objects.
#[test]
fn servers_blocked_in_receive_shut_down_cleanly_on_sigterm() {
    let guard = LeakGuard::new();
    for mechanism in ["shm-channel", "mq", "seqpacket", "fifo", "semaphore"] {
        let name = guard.name(mechanism);
        let path = guard.dir().join(format!("{mechanism}.server"));
        let mut server = Peer::spawn(
            "shutdown-server",
            &[mechanism, name.as_str(), path.to_str().unwrap()],
        );
        let process = Process::open(server.pid()).unwrap();
        process.send(Signal::TERM).unwrap();
        assert_eq!(server.recv().unwrap(), "shutting down", "{mechanism}");
        server.wait_success().unwrap();
        assert!(!path.exists(), "{mechanism} left {}", path.display());
    }
    // The guard checks that no name is left.
    guard.check().unwrap();
}

/// Creates the object of mechanism arg 0 (named arg 1, or at path arg 2), says ready and
/// makes one blocking call without a timeout; a shutdown signal must end it with a
/// cancelled error. Reports "cancelled" (or what happened instead), then drops the objects.
pub fn blocked_server_role(ctx: &mut PeerContext) -> PeerResult {
    let _shutdown = ShutdownOptions::new().install()?;
    let name = IpcName::new(ctx.arg(1)?)?;
    let path = ctx.arg(2)?.to_owned();
    let mut buf = vec![0u8; 1024];
    let outcome: ipc_core::Result<()> = match ctx.arg(0)? {
        "shm-channel" => {
            let mut consumer = channel().create_consumer(&name)?;
            ctx.ready()?;
            consumer.recv(&mut buf).map(drop)
        }
        "mq" => {
            let queue = QueueOptions::new()
                .capacity(4)
                .max_message_size(64)
                .create(&name)?;
            ctx.ready()?;
            queue.recv(&mut buf).map(drop)
        }
        "mq-open" => {
            // A name nobody creates: the open waits for it as long as its timeout allows.
            ctx.ready()?;
            QueueOptions::new()
                .timeout(Duration::from_secs(600))
                .open(&name, Direction::Both)
                .map(drop)
        }
        "mq-send" => {
            let queue = QueueOptions::new()
                .capacity(1)
                .max_message_size(64)
                .create(&name)?;
            queue.send(b"fills it")?;
            ctx.ready()?;
            queue.send(b"waits for room").map(drop)
        }
        "fifo" => {
            let fifo = Fifo::create(&path)?;
            let mut reader = fifo.open_reader()?;
            ctx.ready()?;
            std::io::Read::read(&mut reader, &mut buf)
                .map(drop)
                .map_err(ipc_core::Error::from)
        }
        "pipe-read" => {
            let (mut reader, _writer) = ipc_pipe::pipe()?;
            ctx.ready()?;
            std::io::Read::read(&mut reader, &mut buf)
                .map(drop)
                .map_err(ipc_core::Error::from)
        }
        "pipe-write" => {
            let (_reader, mut writer) = ipc_pipe::pipe()?;
            let full = vec![0u8; writer.capacity()?];
            std::io::Write::write_all(&mut writer, &full)?;
            ctx.ready()?;
            std::io::Write::write(&mut writer, b"no room")
                .map(drop)
                .map_err(ipc_core::Error::from)
        }
        "semaphore" => {
            let sem = SemaphoreOptions::new().initial(0).create(&name)?;
            ctx.ready()?;
            sem.wait()
        }
        "undo-semaphore" => {
            let sem = SemaphoreOptions::new().initial(0).create_undo(&name)?;
            ctx.ready()?;
            sem.wait()
        }
        "seqpacket-accept" => {
            let listener = SeqpacketListener::bind(&UnixAddr::path(&path))?;
            ctx.ready()?;
            listener.accept().map(drop)
        }
        "seqpacket-recv" => {
            let (end, _other) = Seqpacket::pair()?;
            ctx.ready()?;
            end.recv(&mut buf).map(drop)
        }
        "datagram-recv" => {
            let (end, _other) = ipc_socket::Datagram::pair()?;
            ctx.ready()?;
            end.recv(&mut buf).map(drop)
        }
        "shared-semaphore" => {
            let segment = ShmOptions::new().size(4096).create(&name)?;
            let sem = SemaphoreOptions::new().initial(0).init_in(&segment, 0)?;
            ctx.ready()?;
            sem.wait()
        }
        "robust-mutex" => {
            let segment = ShmOptions::new().size(4096).create(&name)?;
            let mutex: RobustMutex<&SharedMemory, u64> =
                MutexOptions::new().init_in(&segment, 0, 0)?;
            let held = mutex.lock()?;
            // Another thread waits for the lock: the signal reaches whichever thread, and
            // the process token ends the waiting one.
            let waited = std::thread::scope(
                |scope| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    let waiter = scope.spawn(|| mutex.lock().map(drop));
                    ctx.ready()?;
                    Ok(waiter.join().map_err(|_| "the waiter panicked")?)
                },
            )?;
            drop(held);
            waited
        }
        other => return Err(format!("unknown server {other}").into()),
    };
    match outcome {
        Err(err) if err.is_cancelled() => ctx.send("cancelled")?,
        Err(err) => ctx.send(&format!("{err}"))?,
        Ok(()) => ctx.send("returned")?,
    }
    Ok(())
}

/// Scenario 6b: servers blocked in a call without a timeout get SIGTERM: the call returns a
/// cancelled error, the server removes its objects and exits cleanly.
#[test]
fn a_shutdown_signal_cancels_calls_blocked_without_a_timeout() {
    let guard = LeakGuard::new();
    for mechanism in [
        "shm-channel",
        "mq",
        "mq-open",
        "mq-send",
        "fifo",
        "pipe-read",
        "pipe-write",
        "semaphore",
        "undo-semaphore",
        "shared-semaphore",
        "robust-mutex",
        "seqpacket-accept",
        "seqpacket-recv",
        "datagram-recv",
    ] {
        let name = guard.name(mechanism);
        let path = guard.dir().join(format!("{mechanism}.server"));
        let mut server = Peer::spawn(
            "blocked-server",
            &[mechanism, name.as_str(), path.to_str().unwrap()],
        );
        Process::open(server.pid())
            .unwrap()
            .send(Signal::TERM)
            .unwrap();
        assert_eq!(server.recv().unwrap(), "cancelled", "{mechanism}");
        server.wait_success().unwrap();
        assert!(!path.exists(), "{mechanism} left {}", path.display());
    }
    guard.check().unwrap();
}
