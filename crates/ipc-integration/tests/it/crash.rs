//! The crash matrix: processes killed with SIGKILL at random and at named points, over and
//! over, while the survivors check the invariants of ARCHITECTURE.md ("what nothing lost
//! means"): delivered messages intact; every acknowledged message delivered once and in
//! order; survivors progress or report the death in bounded time; nothing left behind.
//!
//! `IPC_CRASH_INJECTIONS` sets the kills per mechanism (200 by default; `cargo xtask stress
//! --injections N` for more), `IPC_TEST_SEED` repeats a run. Each test writes its report
//! line where `cargo xtask test` prints it.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ipc_core::{FramedWriter, IpcName};
use ipc_integration::mechanism::MAX_MESSAGE;
use ipc_integration::{CrashReport, Mechanism, Tally, encode, injections};
use ipc_sem::{Locked, MutexOptions, RobustMutex, SemaphoreOptions};
use ipc_shm::{Layout, SharedMemory, ShmOptions};
use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, Rng, test_timeout};

/// Where the report lines go: `cargo xtask test` prints this directory's files.
fn report_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ipc-crash-report")
}

fn finish(report: &CrashReport) {
    let _ = report.write_to(&report_dir());
    eprintln!("{}", report.line());
    assert!(report.is_clean(), "{}", report.line());
}

/// The shared word a producer acknowledges its sends in: the number of sends that
/// returned `Ok`.
fn ack_word(segment: &SharedMemory) -> &std::sync::atomic::AtomicU64 {
    segment.atomic_u64(0).expect("the ack word")
}

/// Producer of the crash matrix. Args: mechanism, address, producer id, ack segment, mode:
/// "stream" sends until killed, acknowledging each send; "mid-frame" sends 5 messages and
/// then half a frame; "loan" sends 5 messages and then holds a loan half written. In the
/// named modes it says "at point" and waits to be killed.
pub fn producer_role(ctx: &mut PeerContext) -> PeerResult {
    let mechanism = Mechanism::parse(ctx.arg(0)?).ok_or("unknown mechanism")?;
    let address = ctx.arg(1)?.to_owned();
    let producer: u32 = ctx.arg(2)?.parse()?;
    let acks = ShmOptions::new().open(&IpcName::new(ctx.arg(3)?)?)?;
    let ack = ack_word(&acks);
    let mode = ctx.arg(4)?.to_owned();
    let mut buf = Vec::new();
    match mode.as_str() {
        "stream" => {
            let mut sender = mechanism.connect(&address)?;
            ctx.ready()?;
            for seq in 0.. {
                encode(producer, seq, MAX_MESSAGE, &mut buf);
                sender.send_timeout(&buf, test_timeout())?;
                ack.store(seq + 1, Ordering::SeqCst);
            }
        }
        "mid-frame" => {
            // Whole frames first, then a header that promises more than is written.
            let mut raw: Box<dyn Write> = match mechanism {
                Mechanism::Pipe => {
                    Box::new(std::fs::OpenOptions::new().write(true).open(&address)?)
                }
                Mechanism::Fifo => {
                    Box::new(ipc_pipe::Fifo::open(&address)?.open_writer_timeout(test_timeout())?)
                }
                _ => Box::new(ipc_socket::connect_stream(&UnixAddr::path(&address))?),
            };
            let mut framed = FramedWriter::new(Vec::new());
            for seq in 0..5 {
                encode(producer, seq, MAX_MESSAGE, &mut buf);
                framed.send(&buf)?;
            }
            raw.write_all(framed.get_ref())?;
            ack.store(5, Ordering::SeqCst);
            encode(producer, 5, MAX_MESSAGE, &mut buf);
            let len = u32::try_from(buf.len())?;
            raw.write_all(&len.to_le_bytes())?;
            raw.write_all(&buf[..buf.len() / 2])?;
            raw.flush()?;
            ctx.ready_with("at point")?;
        }
        "loan" => {
            let name = IpcName::new(address.as_str())?;
            let mut producer_end = ipc_shm::ChannelOptions::new()
                .capacity(64 * 1024)
                .max_message_size(MAX_MESSAGE)
                .open_producer(&name)?;
            for seq in 0..5 {
                encode(producer, seq, MAX_MESSAGE, &mut buf);
                producer_end.send_timeout(&buf, test_timeout())?;
                ack.store(seq + 1, Ordering::SeqCst);
            }
            encode(producer, 5, MAX_MESSAGE, &mut buf);
            let mut loan = producer_end.loan_timeout(buf.len(), test_timeout())?;
            loan.write_at(0, &buf[..buf.len() / 2])?;
            ctx.ready_with("at point")?;
            loop {
                std::thread::park();
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    loop {
        std::thread::park();
    }
}

/// Kills producers of `mechanism` `injections()` times at random points (and, for
/// `named`, at that named point every fourth time), checking every invariant.
fn producer_kills(mechanism: Mechanism, named: Option<&str>) {
    let guard = LeakGuard::new();
    let label = match named {
        Some(point) => format!("{} producer ({point})", mechanism.name()),
        None => format!("{} producer", mechanism.name()),
    };
    let mut report = CrashReport::new(&label);
    let mut rng = Rng::new(0x5eed ^ mechanism.name().len() as u64);
    let ack_name = guard.name("acks");
    let acks = ShmOptions::new().size(4096).create(&ack_name).unwrap();
    let mut buf = vec![0u8; MAX_MESSAGE];
    for injection in 0..injections() {
        let at_point = named.filter(|_| injection % 4 == 3);
        ack_word(&acks).store(0, Ordering::SeqCst);
        let mut listening = mechanism
            .listen(guard.dir(), &guard.name(mechanism.name()))
            .unwrap();
        let producer = u32::try_from(injection).unwrap();
        let mut peer = Peer::spawn(
            "crash-producer",
            &[
                mechanism.name(),
                listening.address(),
                &producer.to_string(),
                ack_name.as_str(),
                at_point.unwrap_or("stream"),
            ],
        );
        let mut receiver = listening.accept(test_timeout()).unwrap();
        let mut tally = Tally::default();
        let mut record = |msg: &[u8], report: &mut CrashReport| {
            if let Err(e) = tally.record(msg) {
                if e.contains("torn") || e.contains("checksum") {
                    report.torn += 1;
                } else {
                    report.lost += 1;
                }
                eprintln!("{label} injection {injection}: {e}");
            }
        };
        if at_point.is_none() {
            // Take a few messages, wait a moment, then kill wherever the producer is.
            for _ in 0..rng.below(40) {
                match receiver.recv_timeout(&mut buf, test_timeout()) {
                    Ok(n) => record(&buf[..n], &mut report),
                    Err(e) => panic!("{label}: {e}"),
                }
            }
            ipc_testkit::pause(Duration::from_micros(rng.below(500)));
        }
        peer.kill().unwrap();
        report.injections += 1;
        let killed = Instant::now();
        let acked = ack_word(&acks).load(Ordering::SeqCst);
        // Drain what is left: everything acknowledged must come, then the end.
        let deadline = killed + Duration::from_secs(2);
        loop {
            let wait = if mechanism.reports_end() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::from_millis(30)
            };
            match receiver.recv_timeout(&mut buf, wait) {
                Ok(n) => record(&buf[..n], &mut report),
                Err(e) if e.is_timeout() => {
                    if mechanism.reports_end() {
                        report.deadlocks += 1;
                        eprintln!("{label} injection {injection}: the death was not reported");
                    }
                    break;
                }
                // The end of the stream (or a frame cut short): the death, reported.
                Err(e) if e.is_peer_gone() || e.is_corrupted() => {
                    report.detect.push(killed.elapsed());
                    break;
                }
                Err(e) => panic!("{label} injection {injection}: {e}"),
            }
        }
        let delivered = tally.next_of(producer);
        if delivered < acked {
            report.lost += acked - delivered;
            eprintln!(
                "{label} injection {injection}: {delivered} delivered of {acked} acknowledged"
            );
        }
        drop(receiver);
        drop(listening);
    }
    drop(acks);
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

#[test]
fn crash_shm_channel_producers() {
    producer_kills(Mechanism::ShmChannel, Some("loan"));
}

#[test]
fn crash_queue_producers() {
    producer_kills(Mechanism::Queue, None);
}

#[test]
fn crash_pipe_producers() {
    producer_kills(Mechanism::Pipe, Some("mid-frame"));
}

#[test]
fn crash_fifo_producers() {
    producer_kills(Mechanism::Fifo, Some("mid-frame"));
}

#[test]
fn crash_uds_stream_producers() {
    producer_kills(Mechanism::UdsStream, Some("mid-frame"));
}

/// Consumer of the crash matrix for mechanisms whose messages outlive their reader (a
/// shared-memory channel, a queue): receives and acknowledges each message (the number
/// taken, in the ack word) until killed. Args: mechanism, address, ack segment.
pub fn consumer_role(ctx: &mut PeerContext) -> PeerResult {
    let mechanism = Mechanism::parse(ctx.arg(0)?).ok_or("unknown mechanism")?;
    let acks = ShmOptions::new().open(&IpcName::new(ctx.arg(2)?)?)?;
    let ack = ack_word(&acks);
    let mut receiver: Box<dyn ipc_core::MessageReceiver> = match mechanism {
        Mechanism::ShmChannel => Box::new(
            ipc_shm::ChannelOptions::new()
                .capacity(64 * 1024)
                .max_message_size(MAX_MESSAGE)
                .timeout(test_timeout())
                .open_consumer(&IpcName::new(ctx.arg(1)?)?)?,
        ),
        _ => Box::new(
            ipc_mq::QueueOptions::new()
                .open(&IpcName::new(ctx.arg(1)?)?, ipc_mq::Direction::Receive)?,
        ),
    };
    ctx.ready()?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut taken = 0;
    loop {
        let n = receiver.recv_timeout(&mut buf, test_timeout())?;
        ipc_integration::decode(&buf[..n])?;
        taken += 1;
        ack.store(taken, Ordering::SeqCst);
    }
}

/// Kills consumers of a channel or queue that this process feeds; the next consumer takes
/// over. A dead consumer loses at most what it held (one message in flight); the producer
/// is never wedged.
fn consumer_kills(mechanism: Mechanism) {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new(&format!("{} consumer", mechanism.name()));
    let mut rng = Rng::new(0xc0ffee);
    let ack_name = guard.name("acks");
    let acks = ShmOptions::new().size(4096).create(&ack_name).unwrap();
    let name = guard.name(mechanism.name());
    let mut sender: Box<dyn ipc_core::MessageSender> = match mechanism {
        Mechanism::ShmChannel => Box::new(
            ipc_shm::ChannelOptions::new()
                .capacity(64 * 1024)
                .max_message_size(MAX_MESSAGE)
                .create_producer(&name)
                .unwrap(),
        ),
        _ => Box::new(
            ipc_mq::QueueOptions::new()
                .capacity(10)
                .max_message_size(MAX_MESSAGE)
                .create(&name)
                .unwrap(),
        ),
    };
    let mut msg = Vec::new();
    let mut sent = 0u64;
    let mut consumed = 0u64;
    for _ in 0..injections() {
        ack_word(&acks).store(0, Ordering::SeqCst);
        let mut peer = Peer::spawn(
            "crash-consumer",
            &[mechanism.name(), name.as_str(), ack_name.as_str()],
        );
        // Feed it a random number of messages, then kill it wherever it is.
        for _ in 0..rng.below(30) {
            encode(0, sent, MAX_MESSAGE, &mut msg);
            match sender.send_timeout(&msg, Duration::from_secs(2)) {
                Ok(()) => sent += 1,
                Err(e) => panic!("the producer was wedged: {e}"),
            }
        }
        ipc_testkit::pause(Duration::from_micros(rng.below(300)));
        peer.kill().unwrap();
        report.injections += 1;
        consumed += ack_word(&acks).load(Ordering::SeqCst);
    }
    // A last consumer drains: everything sent is either taken by a consumer that then
    // acknowledged it, lost with a killed one (at most one each), or still here.
    let mut left = 0u64;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut drain: Box<dyn ipc_core::MessageReceiver> = match mechanism {
        Mechanism::ShmChannel => Box::new(
            ipc_shm::ChannelOptions::new()
                .capacity(64 * 1024)
                .max_message_size(MAX_MESSAGE)
                .open_consumer(&name)
                .unwrap(),
        ),
        _ => Box::new(
            ipc_mq::QueueOptions::new()
                .open(&name, ipc_mq::Direction::Receive)
                .unwrap(),
        ),
    };
    // The sender (and owner of the name) leaves once the drain is attached.
    drop(sender);
    loop {
        match drain.recv_timeout(&mut buf, Duration::from_millis(50)) {
            Ok(n) => {
                if ipc_integration::decode(&buf[..n]).is_err() {
                    report.torn += 1;
                }
                left += 1;
            }
            Err(e) if e.is_timeout() || e.is_peer_gone() => break,
            Err(e) => panic!("{e}"),
        }
    }
    drop(drain);
    // Queues: a message taken is gone (at most once); channels: a message borrowed and not
    // released comes again (at least once). Either way at most one per killed consumer
    // is unaccounted for, and nothing beyond.
    let accounted = consumed + left;
    let slack = report.injections;
    if accounted + slack < sent {
        report.lost += sent - accounted - slack;
    }
    drop(acks);
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

#[test]
fn crash_shm_channel_consumers() {
    consumer_kills(Mechanism::ShmChannel);
}

#[test]
fn crash_queue_consumers() {
    consumer_kills(Mechanism::Queue);
}

/// Sends seqpacket messages that each carry a descriptor, until killed. Args: address.
pub fn fd_sender_role(ctx: &mut PeerContext) -> PeerResult {
    let socket = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    let file = std::fs::File::open("/dev/null")?;
    ctx.ready()?;
    let mut buf = Vec::new();
    for seq in 0.. {
        encode(0, seq, 256, &mut buf);
        socket.send_with_fds(&buf, &[file.as_fd()])?;
    }
    Ok(())
}

/// Seqpacket with a descriptor in every message: the sender killed at random; every
/// message that arrives is whole with its descriptor, and the receiver keeps none.
#[test]
fn crash_seqpacket_fd_senders() {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new("seqpacket+fds sender");
    let mut rng = Rng::new(0xfd);
    let path = guard.dir().join("fds.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let mut buf = vec![0u8; 512];
    for injection in 0..injections() {
        let mut peer = Peer::spawn("crash-fd-sender", &[path.to_str().unwrap()]);
        let (socket, _) = listener.accept_timeout(test_timeout()).unwrap();
        let mut tally = Tally::default();
        let take = rng.below(20);
        let mut killed = None;
        let mut taken = 0;
        loop {
            if taken == take && killed.is_none() {
                ipc_testkit::pause(Duration::from_micros(rng.below(300)));
                peer.kill().unwrap();
                report.injections += 1;
                killed = Some(Instant::now());
            }
            if ipc_core::internal::poll_fd(
                &socket,
                nix::poll::PollFlags::POLLIN,
                ipc_core::Deadline::after(Duration::from_secs(2)),
                "poll",
            )
            .is_err()
            {
                report.deadlocks += 1;
                break;
            }
            match socket.recv_with_fds(&mut buf, 1) {
                Ok((0, _)) => {
                    if let Some(at) = killed {
                        report.detect.push(at.elapsed());
                    }
                    break;
                }
                Ok((n, fds)) => {
                    if fds.len() != 1 || tally.record(&buf[..n]).is_err() {
                        report.torn += 1;
                        eprintln!("injection {injection}: {n} bytes with {} fds", fds.len());
                    }
                    taken += 1;
                }
                Err(e) if e.is_peer_gone() => {
                    if let Some(at) = killed {
                        report.detect.push(at.elapsed());
                    }
                    break;
                }
                Err(e) => panic!("injection {injection}: {e}"),
            }
        }
    }
    drop(listener);
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

type Pair<'a> = RobustMutex<&'a SharedMemory, [u64; 2]>;

/// Updates the pair at offset 0 of segment arg 0 under its mutex, both words to the same
/// number each time, until killed; with arg 1 "holding", stops half-way through an update
/// and says "at point".
pub fn lock_holder_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let pair: Pair<'_> = MutexOptions::new().open_in(&segment, 0)?;
    let holding = ctx.arg(1)? == "holding";
    ctx.ready()?;
    for n in 1u64.. {
        let guard = match pair.lock_timeout(test_timeout())? {
            Locked::Clean(guard) => guard,
            Locked::OwnerDied(recovery) => {
                let [a, _] = recovery.get();
                recovery.set([a, a]);
                recovery.mark_consistent()?
            }
        };
        guard.set([n, guard.get()[1]]);
        if holding {
            ctx.send("at point")?;
            loop {
                std::thread::park();
            }
        }
        guard.set([n, n]);
    }
    Ok(())
}

/// A robust mutex whose holder is killed at random and while holding it: the next locker
/// is told whenever the data may be half-updated, and never finds it so otherwise.
#[test]
fn crash_robust_mutex_holders() {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new("robust mutex holder");
    let mut rng = Rng::new(0x10c);
    let name = guard.name("pair");
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    let pair: Pair<'_> = MutexOptions::new().init_in(&segment, 0, [0, 0]).unwrap();
    for injection in 0..injections() {
        let holding = injection % 4 == 3;
        let mut peer = Peer::spawn(
            "crash-lock-holder",
            &[name.as_str(), if holding { "holding" } else { "random" }],
        );
        if holding {
            assert_eq!(peer.recv().unwrap(), "at point");
        } else {
            ipc_testkit::pause(Duration::from_micros(rng.below(2000)));
        }
        peer.kill().unwrap();
        report.injections += 1;
        let killed = Instant::now();
        match pair.lock_timeout(Duration::from_secs(2)) {
            Ok(Locked::Clean(guard)) => {
                let [a, b] = guard.get();
                if a != b || holding {
                    report.torn += 1;
                    eprintln!("injection {injection}: a clean lock found [{a}, {b}]");
                }
            }
            Ok(Locked::OwnerDied(recovery)) => {
                report.detect.push(killed.elapsed());
                let [a, _] = recovery.get();
                recovery.set([a, a]);
                drop(recovery.mark_consistent().unwrap());
            }
            Err(e) if e.is_timeout() => report.deadlocks += 1,
            Err(e) => panic!("injection {injection}: {e}"),
        }
    }
    drop(segment);
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

/// Takes permits of the undo semaphore arg 0 (up to 3, one at a time) and holds them until
/// killed.
pub fn permit_holder_role(ctx: &mut PeerContext) -> PeerResult {
    let sem = SemaphoreOptions::new().open_undo(&IpcName::new(ctx.arg(0)?)?)?;
    let count: u32 = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    for _ in 0..count {
        sem.acquire_timeout(test_timeout())?.forget();
    }
    loop {
        std::thread::park();
    }
}

/// A System V semaphore whose holders are killed with permits taken: every permit comes
/// back.
#[test]
fn crash_sysv_semaphore_holders() {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new("sysv semaphore holder");
    let mut rng = Rng::new(0x5e3);
    let name = guard.name("permits");
    let sem = SemaphoreOptions::new()
        .initial(3)
        .create_undo(&name)
        .unwrap();
    for injection in 0..injections() {
        let take = rng.below(4).to_string();
        let mut peer = Peer::spawn("crash-permit-holder", &[name.as_str(), &take]);
        ipc_testkit::pause(Duration::from_micros(rng.below(1000)));
        peer.kill().unwrap();
        report.injections += 1;
        let killed = Instant::now();
        // All three permits must be back.
        let mut permits = Vec::new();
        for _ in 0..3 {
            match sem.acquire_timeout(Duration::from_secs(2)) {
                Ok(permit) => permits.push(permit),
                Err(e) if e.is_timeout() => {
                    report.lost += 1;
                    eprintln!("injection {injection}: a permit did not come back");
                }
                Err(e) => panic!("injection {injection}: {e}"),
            }
        }
        report.detect.push(killed.elapsed());
        drop(permits);
    }
    drop(sem);
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

const CRASH_LAYOUT: Layout = Layout::new(u64::from_le_bytes(*b"CRASHLAY"), 1);

/// Creates segment arg 0 with a layout and dies in the middle of its initialisation.
pub fn mid_init_role(ctx: &mut PeerContext) -> PeerResult {
    ShmOptions::new()
        .size(4096)
        .layout(CRASH_LAYOUT)
        .create_with(&IpcName::new(ctx.arg(0)?)?, |segment| {
            segment.write_at(segment.data_offset(), b"half")?;
            ctx.ready_with("at point").map_err(ipc_core::Error::from)?;
            loop {
                std::thread::park();
            }
        })?;
    Ok(())
}

/// A creator killed mid-initialisation: openers get a timeout or peer-gone error, never
/// the half-made segment, and the name is reclaimed by the next creator.
#[test]
fn crash_shm_segment_mid_initialisation() {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new("shm segment creator (mid-init)");
    for injection in 0..injections() {
        let name = guard.name("mid-init");
        let mut peer = Peer::spawn("crash-mid-init", &[name.as_str()]);
        peer.kill().unwrap();
        report.injections += 1;
        let killed = Instant::now();
        match ShmOptions::new()
            .layout(CRASH_LAYOUT)
            .timeout(Duration::from_millis(20))
            .open(&name)
        {
            Ok(_) => {
                report.torn += 1;
                eprintln!("injection {injection}: a half-made segment was opened");
            }
            Err(e) if e.is_timeout() || e.is_peer_gone() => report.detect.push(killed.elapsed()),
            Err(e) => panic!("injection {injection}: {e}"),
        }
        let segment = ShmOptions::new()
            .size(4096)
            .layout(CRASH_LAYOUT)
            .creation_mode(ipc_core::CreationMode::PurgeAndCreate)
            .create(&name);
        if segment.is_err() {
            report.leaked += 1;
        }
    }
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

/// The channel options of the attach rows.
fn attach_options() -> ipc_shm::ChannelOptions {
    ipc_shm::ChannelOptions::new()
        .capacity(64 * 1024)
        .max_message_size(1024)
        .wait_strategy(ipc_shm::WaitStrategy::Blocking)
        .timeout(test_timeout())
}

/// Waits for "go", then attaches to channel arg 0 as the side arg 1 ("producer" or
/// "consumer") and waits to be killed, wherever the kill finds it. With arg 2 "mid-claim"
/// it stops where a process dying half-way through attaching stops: its claim written into
/// the side's state word (arg 3 is its offset), the attach not finished.
pub fn attacher_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let side = ctx.arg(1)?.to_owned();
    if ctx.arg(2)? == "mid-claim" {
        let segment = ShmOptions::new().open(&name)?;
        let state = segment.atomic_u64(ctx.arg(3)?.parse()?)?;
        let pid = std::process::id();
        let start = ipc_core::internal::process_start_time(pid).ok_or("no start time")?;
        // pid, phase 1 (claiming), generation 1, start time: see ipc-shm's channel docs.
        state.store(
            (start & 0xff_ffff) << 40 | 1 << 24 | 1 << 22 | u64::from(pid),
            Ordering::SeqCst,
        );
        ctx.ready_with("at point")?;
        loop {
            std::thread::park();
        }
    }
    ctx.ready()?;
    ctx.recv()?;
    let options = attach_options();
    let _end: Box<dyn std::any::Any> = if side == "producer" {
        Box::new(options.open_producer(&name)?)
    } else {
        Box::new(options.open_consumer(&name)?)
    };
    ctx.send("attached")?;
    loop {
        std::thread::park();
    }
}

/// A channel endpoint killed while it attaches (at random moments from before its claim to
/// after its attach, and every fourth time between claim and attach): a survivor waiting on that side reports the death once the side names
/// the dead process, within the liveness bound, and the side is always free again.
fn attach_kills(side: &str) {
    let guard = LeakGuard::new();
    let mut report = CrashReport::new(&format!("shm-channel {side} (attach)"));
    let mut rng = Rng::new(0xa77ac4 ^ side.len() as u64);
    // The side's state word (see the layout in ipc-shm's channel docs).
    let state_offset = if side == "producer" { 384 } else { 448 };
    let (mut claimed, mut mid_claim) = (0u64, 0u64);
    for injection in 0..injections() {
        let name = guard.name("attach");
        let options = attach_options();
        let (mut producer, mut consumer) = (None, None);
        if side == "producer" {
            consumer = Some(options.create_consumer(&name).unwrap());
        } else {
            producer = Some(options.create_producer(&name).unwrap());
            // A full ring, so that the producer waits on the consumer's side.
            let p = producer.as_mut().unwrap();
            while p.try_send(&[7u8; 1000]).is_ok() {}
        }
        let at_point = injection % 4 == 3;
        let mode = if at_point { "mid-claim" } else { "random" };
        let mut peer = Peer::spawn(
            "crash-attacher",
            &[name.as_str(), side, mode, &state_offset.to_string()],
        );
        if !at_point {
            peer.send("go").unwrap();
            ipc_testkit::pause(Duration::from_micros(rng.below(400)));
        }
        peer.kill().unwrap();
        report.injections += 1;
        let killed = Instant::now();
        let state = ShmOptions::new()
            .open(&name)
            .unwrap()
            .atomic_u64(state_offset)
            .unwrap()
            .load(Ordering::SeqCst);
        // Phase bits 22..24: 0 means the peer died before it claimed the side.
        let phase = (state >> 22) & 3;
        if phase == 1 {
            mid_claim += 1;
        }
        if phase != 0 {
            claimed += 1;
            let outcome = match (&mut producer, &mut consumer) {
                (_, Some(consumer)) => consumer
                    .recv_timeout(&mut [0u8; 1024], Duration::from_secs(2))
                    .map(drop),
                (Some(producer), _) => producer.send_timeout(&[8u8; 1000], Duration::from_secs(2)),
                _ => unreachable!(),
            };
            match outcome {
                Err(e) if e.is_peer_gone() => report.detect.push(killed.elapsed()),
                Err(e) if e.is_timeout() => {
                    report.deadlocks += 1;
                    eprintln!("injection {injection}: the dead {side} was not reported");
                }
                other => panic!("injection {injection}: {other:?}"),
            }
        }
        // Whatever the moment, the side can be taken again.
        let taken = if side == "producer" {
            options.open_producer(&name).map(drop)
        } else {
            options.open_consumer(&name).map(drop)
        };
        if let Err(e) = taken {
            report.deadlocks += 1;
            eprintln!("injection {injection}: the side stayed taken: {e}");
        }
    }
    eprintln!(
        "{side} attach: {claimed} of {} kills after the claim, {mid_claim} between claim and attach",
        report.injections
    );
    if guard.check().is_err() {
        report.leaked += 1;
    }
    finish(&report);
}

#[test]
fn crash_shm_channel_producers_during_attach() {
    attach_kills("producer");
}

#[test]
fn crash_shm_channel_consumers_during_attach() {
    attach_kills("consumer");
}
