//! Who owns a channel's side, and what a previous or hostile endpoint can leave in the
//! control block: claims abandoned by a dying process, several processes taking over one
//! dead side at once, impossible positions, and geometries where a maximal message would
//! never fit; ends handed to another process before it attaches.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use ipc_core::IpcName;
use ipc_shm::{ChannelOptions, ShmOptions, WaitStrategy};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};
use proptest::prelude::*;

/// The producer's and the consumer's state words (see the layout in the channel's docs).
const PRODUCER_STATE: usize = 384;
const CONSUMER_STATE: usize = 448;
const HEAD: usize = 128;
const TAIL: usize = 256;

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(64 * 1024)
        .max_message_size(4096)
        .wait_strategy(WaitStrategy::Blocking)
        .timeout(test_timeout())
}

/// A side's state word saying that process `pid` (started at `start`) is claiming it.
fn claiming(pid: u32, start: u64, generation: u64) -> u64 {
    (start & 0xff_ffff) << 40 | generation << 24 | 1 << 22 | u64::from(pid)
}

/// Marks the side whose state word is at arg 1 of channel arg 0 as being claimed by this
/// process, as a process does in the middle of attaching, reports ready and waits to be
/// killed there.
pub fn claim_and_hang_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let offset: usize = ctx.arg(1)?.parse()?;
    let pid = std::process::id();
    let start = ipc_core::internal::process_start_time(pid).ok_or("no start time")?;
    let state = segment.atomic_u64(offset)?;
    state.store(claiming(pid, start, (state.load(SeqCst) >> 24) + 1), SeqCst);
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Waits for "go", then tries to attach as the producer of channel arg 0 and says "won" or
/// "lost"; a winner waits to be killed holding its end.
pub fn take_over_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    ctx.ready()?;
    if ctx.recv()? != "go" {
        return Err("expected go".into());
    }
    match options().open_producer(&name) {
        Ok(_producer) => {
            ctx.send("won")?;
            loop {
                std::thread::park();
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => ctx.send("lost")?,
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

/// Attaches as the producer of channel arg 0, reports ready and waits to be killed.
pub fn attach_and_hang_role(ctx: &mut PeerContext) -> PeerResult {
    let _producer = options().open_producer(&IpcName::new(ctx.arg(0)?)?)?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Writes the 64-bit values args 2, 3, … at the offsets args 1, … of channel arg 0 (pairs
/// of offset and value), as a hostile endpoint would, and exits.
pub fn poke_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    for pair in ctx.args()[1..].chunks(2) {
        let [offset, value] = pair else {
            return Err("offsets and values come in pairs".into());
        };
        segment
            .atomic_u64(offset.parse()?)?
            .store(value.parse()?, SeqCst);
    }
    ctx.ready()?;
    Ok(())
}

/// Defect: a claimant killed between claiming and attaching looked "not attached yet"
/// forever, so a blocking `recv` never returned and a timed one timed out.
#[test]
fn a_producer_killed_while_attaching_is_reported_dead_and_replaced() {
    let guard = LeakGuard::new();
    let name = guard.name("attach-kill");
    let mut consumer = options().create_consumer(&name).unwrap();
    let offset = PRODUCER_STATE.to_string();
    let mut claimant = Peer::spawn("claim-and-hang", &[name.as_str(), &offset]);
    let pid = claimant.pid();
    // While the claimant lives, its claim is respected and the consumer waits.
    let err = options().open_producer(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&pid.to_string()), "{err}");
    let mut buf = [0u8; 4096];
    assert!(consumer.try_recv(&mut buf).unwrap_err().is_would_block());

    // Killed half-way through attaching: a blocking wait ends with peer-gone.
    let killer = std::thread::spawn(move || claimant.kill().unwrap());
    let started = Instant::now();
    let err = consumer.recv(&mut buf).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.to_string().contains(&pid.to_string()), "{err}");
    killer.join().unwrap();
    let err = consumer.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    eprintln!("dead claimant seen after {:?}", started.elapsed());

    // Its side is free: a new producer takes it over and messages flow.
    let mut producer = options().open_producer(&name).unwrap();
    producer.send(b"after the crash").unwrap();
    let n = consumer.recv_timeout(&mut buf, test_timeout()).unwrap();
    assert_eq!(&buf[..n], b"after the crash");
}

#[test]
fn a_consumer_killed_while_attaching_is_reported_dead_and_replaced() {
    let guard = LeakGuard::new();
    let name = guard.name("attach-kill-c");
    let mut producer = options().create_producer(&name).unwrap();
    let offset = CONSUMER_STATE.to_string();
    let mut claimant = Peer::spawn("claim-and-hang", &[name.as_str(), &offset]);
    // Fill the ring so that the producer must wait for the claimant.
    while producer.try_send(&[1u8; 4000]).is_ok() {}
    let killer = std::thread::spawn(move || claimant.kill().unwrap());
    let err = producer.send(&[2u8; 4000]).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    killer.join().unwrap();
    let mut consumer = options().open_consumer(&name).unwrap();
    let mut buf = [0u8; 4096];
    assert_eq!(
        consumer.recv_timeout(&mut buf, test_timeout()).unwrap(),
        4000
    );
}

/// A claim whose pid now belongs to a later process (the start time differs) is a dead
/// claim, and a claim by a live process is kept.
#[test]
fn a_claim_by_a_reused_pid_is_dead_and_a_live_claim_is_kept() {
    let guard = LeakGuard::new();
    let name = guard.name("claim-reuse");
    let _producer = options().create_producer(&name).unwrap();
    let raw = ShmOptions::new().open(&name).unwrap();
    let state = raw.atomic_u64(CONSUMER_STATE).unwrap();
    let init_start = ipc_core::internal::process_start_time(1).unwrap();

    state.store(claiming(1, init_start, 1), SeqCst);
    let err = options().open_consumer(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("pid 1"), "{err}");

    state.store(claiming(1, init_start + 1, 2), SeqCst);
    let mut consumer = options().open_consumer(&name).unwrap();
    assert!(
        consumer
            .try_recv(&mut [0u8; 16])
            .unwrap_err()
            .is_would_block()
    );
}

/// Defect: two processes taking over a dead producer at once could both attach (the slower
/// one's compare-exchange from "attached" succeeded after the faster one had attached). Each
/// round, the last winner is killed and three processes race for its side.
#[test]
fn exactly_one_of_several_racers_takes_over_a_dead_side() {
    let guard = LeakGuard::new();
    let name = guard.name("takeover-race");
    let _consumer = options().create_consumer(&name).unwrap();
    let mut holder = Peer::spawn("attach-and-hang", &[name.as_str()]);
    for round in 0..60 {
        holder.kill().unwrap();
        let mut racers: Vec<Peer> = (0..3)
            .map(|_| Peer::spawn("take-over", &[name.as_str()]))
            .collect();
        for racer in &mut racers {
            racer.send("go").unwrap();
        }
        let results: Vec<String> = racers.iter_mut().map(|r| r.recv().unwrap()).collect();
        let winners = results.iter().filter(|r| *r == "won").count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        let winner = results.iter().position(|r| r == "won").unwrap();
        for (i, mut racer) in racers.into_iter().enumerate() {
            if i == winner {
                holder = racer;
            } else {
                racer.wait_success().unwrap();
            }
        }
    }
    holder.kill().unwrap();
}

/// Defect: positions a previous or hostile endpoint left a few bytes before the ring's end
/// made the next producer's first send subtract with overflow (a panic in debug builds).
#[test]
fn impossible_positions_left_by_a_peer_are_corrupted_errors() {
    let guard = LeakGuard::new();
    let capacity = 64 * 1024u64;
    for back in 1..8u64 {
        let position = (capacity - back).to_string();
        let (head, tail) = (HEAD.to_string(), TAIL.to_string());
        let poke = |name: &IpcName| {
            Peer::spawn("poke", &[name.as_str(), &head, &position, &tail, &position])
                .wait_success()
                .unwrap();
        };
        let name = guard.name("positions-p");
        let _consumer = options().create_consumer(&name).unwrap();
        poke(&name);
        let err = options().open_producer(&name).unwrap_err();
        assert!(err.is_corrupted(), "back {back}: {err}");

        let name = guard.name("positions-c");
        let _producer = options().create_producer(&name).unwrap();
        poke(&name);
        let err = options().open_consumer(&name).unwrap_err();
        assert!(err.is_corrupted(), "back {back}: {err}");
    }
}

/// A consumer position moved to an impossible place while the producer runs is reported by
/// the producer's next wait, not computed with.
#[test]
fn a_misaligned_consumer_position_is_a_corrupted_error() {
    let guard = LeakGuard::new();
    let name = guard.name("positions-live");
    let mut producer = options().create_producer(&name).unwrap();
    let _consumer = options().open_consumer(&name).unwrap();
    while producer.try_send(&[1u8; 4000]).is_ok() {}
    Peer::spawn("poke", &[name.as_str(), &TAIL.to_string(), "4093"])
        .wait_success()
        .unwrap();
    let err = producer.try_send(&[2u8; 4000]).unwrap_err();
    assert!(err.is_corrupted(), "{err}");
}

/// Defect: with a maximum over half the ring, a maximal message could never fit, even into
/// an empty ring (capacity 4096, max 3000: send 1500, receive it, send 3000 waited forever).
#[test]
fn a_maximum_over_half_the_ring_is_refused() {
    let refused = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(3000)
        .channel()
        .unwrap_err();
    assert!(refused.is_limit_exceeded(), "{refused}");
    assert!(refused.to_string().contains("2040"), "{refused}");
    // The largest allowed maximum, in the reported sequence.
    let (mut producer, mut consumer) = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(2040)
        .channel()
        .unwrap();
    let mut buf = [0u8; 2040];
    producer.try_send(&[1u8; 1500]).unwrap();
    assert_eq!(consumer.try_recv(&mut buf).unwrap(), 1500);
    producer.try_send(&[2u8; 2040]).unwrap();
    assert_eq!(consumer.try_recv(&mut buf).unwrap(), 2040);
}

/// A segment whose creator wrote a maximum over half the ring is refused at attach.
#[test]
fn a_segment_claiming_a_maximum_over_half_the_ring_is_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("geometry");
    let _consumer = options().create_consumer(&name).unwrap();
    let mut poke = Peer::spawn("poke", &[name.as_str(), "72", &(40 * 1024).to_string()]);
    poke.wait_success().unwrap();
    let err = options().open_producer(&name).unwrap_err();
    assert!(err.is_corrupted(), "{err}");
}

/// Sends `sizes` one after the other, draining the ring whenever a send would block: a
/// send into a drained ring must always succeed.
fn sends_into_a_drained_ring_succeed(capacity: usize, max: usize, sizes: &[usize]) {
    let (mut producer, mut consumer) = ChannelOptions::new()
        .capacity(capacity)
        .max_message_size(max)
        .channel()
        .unwrap();
    let mut buf = vec![0u8; max];
    let mut expected = std::collections::VecDeque::<Vec<u8>>::new();
    for (i, size) in sizes.iter().enumerate() {
        let len = 1 + size % max;
        let msg: Vec<u8> = (0..len)
            .map(|j| u8::try_from((i ^ j) % 251).unwrap_or(0))
            .collect();
        if producer.try_send(&msg).is_err() {
            while let Ok(n) = consumer.try_recv(&mut buf) {
                assert_eq!(&buf[..n], &expected.pop_front().unwrap()[..]);
            }
            assert!(expected.is_empty());
            producer
                .try_send(&msg)
                .unwrap_or_else(|e| panic!("{len} bytes into a drained ring: {e}"));
        }
        expected.push_back(msg);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_message_up_to_the_maximum_fits_a_drained_ring(
        shift in 12u32..17,
        max_seed in any::<usize>(),
        sizes in proptest::collection::vec(any::<usize>(), 1..200),
    ) {
        let capacity = 1usize << shift;
        let max = 1 + max_seed % (capacity / 2 - 8);
        sends_into_a_drained_ring_succeed(capacity, max, &sizes);
    }
}

/// Creates channel arg 0 as the consumer once told to, says "created" and waits to be
/// killed.
pub fn create_later_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    ctx.ready()?;
    ctx.recv()?;
    let _consumer = options().create_consumer(&name)?;
    ctx.send("created")?;
    loop {
        std::thread::park();
    }
}

/// An open with a timeout waits for a name that does not exist yet, so that producer and
/// consumer can start in any order; without a creator it ends in `NotFound` at the deadline.
#[test]
fn opening_waits_for_the_channel_to_be_created() {
    let guard = LeakGuard::new();
    let name = guard.name("later");
    let mut creator = Peer::spawn("create-later", &[name.as_str()]);
    std::thread::scope(|scope| {
        let opener = scope.spawn(|| options().open_producer(&name));
        creator.send("go").unwrap();
        assert_eq!(creator.recv().unwrap(), "created");
        let mut producer = opener.join().unwrap().unwrap();
        producer.send(b"first").unwrap();
    });
    // The killed creator cannot remove its name.
    creator.kill().unwrap();
    nix::sys::mman::shm_unlink(name.as_cstr()).unwrap();

    let missing = guard.name("never");
    let started = Instant::now();
    let err = options()
        .timeout(std::time::Duration::from_millis(30))
        .open_consumer(&missing)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(30));
}

/// Creation modes apply to channels as to any segment: a channel that a killed creator left
/// behind is refused by an exclusive create, and purged and made anew by `PurgeAndCreate`.
#[test]
fn a_channel_left_behind_is_purged_by_its_creation_mode() {
    let guard = LeakGuard::new();
    let name = guard.name("left");
    let mut creator = Peer::spawn("create-later", &[name.as_str()]);
    creator.send("go").unwrap();
    assert_eq!(creator.recv().unwrap(), "created");
    creator.kill().unwrap();
    let err = options().create_consumer(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let mut consumer = options()
        .creation_mode(ipc_core::CreationMode::PurgeAndCreate)
        .create_consumer(&name)
        .unwrap();
    let mut producer = options().open_producer(&name).unwrap();
    producer.send(b"fresh").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(consumer.recv_timeout(&mut buf, test_timeout()).unwrap(), 5);
}

/// A channel whose segment another user owns is refused, and the error names the option
/// that accepts it.
#[test]
fn another_users_channel_is_refused_unless_accepted() {
    let guard = LeakGuard::new();
    let name = guard.name("foreign");
    let _consumer = options().create_consumer(&name).unwrap();
    let path = format!("/dev/shm/{}", name.file_name());
    nix::unistd::chown(
        path.as_str(),
        Some(nix::unistd::Uid::from_raw(ipc_testkit::NOBODY)),
        None,
    )
    .unwrap();
    let err = options().open_producer(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string()
            .contains("ChannelOptions::accept_other_owner(true)"),
        "{err}"
    );
    let mut producer = options()
        .accept_other_owner(true)
        .open_producer(&name)
        .unwrap();
    producer.send(b"accepted").unwrap();
}

#[test]
fn a_geometry_that_disagrees_with_an_existing_channel_is_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("geometry");
    let options = ChannelOptions::new().capacity(8192).max_message_size(1024);
    let _producer = options.create_producer(&name).unwrap();
    // The creator's options, or none, open it.
    drop(options.open_consumer(&name).unwrap());
    drop(ChannelOptions::new().open_consumer(&name).unwrap());
    for (other, option) in [
        (
            ChannelOptions::new().capacity(16384),
            "ChannelOptions::capacity",
        ),
        (
            ChannelOptions::new().max_message_size(512),
            "ChannelOptions::max_message_size",
        ),
    ] {
        let err = other.open_consumer(&name).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(option), "{err}");
        let err = other
            .creation_mode(ipc_core::CreationMode::OpenOrCreate)
            .create_consumer(&name)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}

/// Connects to the abstract socket arg 0, receives a channel's descriptor, attaches as its
/// consumer and receives until "last", then reports how many messages came.
pub fn attach_handed_role(ctx: &mut PeerContext) -> PeerResult {
    let conn = ipc_socket::Seqpacket::connect(&ipc_socket::UnixAddr::abstract_name(ctx.arg(0)?))?;
    ctx.ready()?;
    let mut buf = [0u8; 8];
    let (_, mut fds) = ipc_socket::UnixSocketExt::recv_with_fds(&conn, &mut buf, 1)?;
    let mut consumer = options().consumer_from_fd(fds.pop().ok_or("no descriptor")?)?;
    let mut buf = vec![0u8; 4096];
    let mut count = 0;
    loop {
        let n = consumer.recv_timeout(&mut buf, test_timeout())?;
        count += 1;
        if &buf[..n] == b"last" {
            break;
        }
    }
    ctx.send(&count.to_string())?;
    Ok(())
}

#[test]
fn an_end_handed_to_another_process_keeps_the_other_end_working_until_it_attaches() {
    let (mut producer, consumer) = options()
        .capacity(4096)
        .max_message_size(1024)
        .channel()
        .unwrap();
    let fd = consumer.hand_off().unwrap();
    // Before anyone attaches, the producer fills the ring and then finds it full, not gone.
    let mut sent = 0;
    let err = loop {
        match producer.try_send(&[7u8; 1000]) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
    };
    assert!(err.is_would_block(), "{err}");
    assert!(sent >= 2, "{sent}");

    let addr = ipc_testkit::unique_name("handoff");
    let listener =
        ipc_socket::SeqpacketListener::bind(&ipc_socket::UnixAddr::abstract_name(addr.file_name()))
            .unwrap();
    let mut peer = Peer::spawn("attach-handed", &[addr.file_name()]);
    let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
    ipc_socket::UnixSocketExt::send_with_fds(&conn, b"channel", &[std::os::fd::AsFd::as_fd(&fd)])
        .unwrap();
    drop(fd);
    // The ring drains once the receiver attaches, so this send finds space.
    producer.send_timeout(b"last", test_timeout()).unwrap();
    assert_eq!(peer.recv().unwrap(), (sent + 1).to_string());
    peer.wait_success().unwrap();
}

#[test]
fn an_end_handed_off_and_never_attached_is_reported_gone_after_the_timeout() {
    let timeout = std::time::Duration::from_millis(100);
    let options = options().timeout(timeout);
    // A consumer handed off to a process that died before attaching.
    let (mut producer, consumer) = options.channel().unwrap();
    let started = Instant::now();
    drop(consumer.hand_off().unwrap());
    let message = vec![1u8; 4096];
    let err = loop {
        if let Err(err) = producer.send_timeout(&message, test_timeout()) {
            break err;
        }
    };
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.to_string().contains("not attached"), "{err}");
    assert!(started.elapsed() >= timeout);
    // And a producer handed off the same way.
    let (producer, mut consumer) = options.channel().unwrap();
    let started = Instant::now();
    drop(producer.hand_off().unwrap());
    let mut buf = vec![0u8; 4096];
    let err = consumer.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(started.elapsed() >= timeout);
}

/// A tool reads a channel's state without attaching: positions, fill level, each side's
/// process and whether it lives, and reports impossible words instead of trusting them.
#[test]
fn a_channels_status_is_read_without_attaching_and_names_each_sides_process() {
    use ipc_shm::{ChannelStatus, EndpointState};
    let guard = LeakGuard::new();
    let name = guard.name("status");
    let mut consumer = options().create_consumer(&name).unwrap();
    let fresh = ChannelStatus::read(&name).unwrap();
    assert_eq!(fresh.capacity(), 64 * 1024);
    assert_eq!(fresh.max_message(), 4096);
    assert_eq!(fresh.producer().state(), EndpointState::Never);
    assert_eq!(fresh.producer().pid(), None);
    assert_eq!(fresh.consumer().state(), EndpointState::Attached);
    assert_eq!(fresh.consumer().pid(), Some(std::process::id()));
    assert_eq!(fresh.queued(), Some(0));

    let mut producer = Peer::spawn("attach-and-hang", &[name.as_str()]);
    let live = ChannelStatus::read(&name).unwrap();
    assert_eq!(live.producer().state(), EndpointState::Attached);
    assert_eq!(live.producer().pid(), Some(producer.pid()));
    producer.kill().unwrap();
    let dead = ChannelStatus::read(&name).unwrap();
    assert_eq!(dead.producer().state(), EndpointState::Dead);
    assert_eq!(dead.producer().pid(), Some(producer.pid()));

    // A consumer position past the producer's is reported as impossible, not used.
    Peer::spawn("poke", &[name.as_str(), &TAIL.to_string(), "4096"])
        .wait_success()
        .unwrap();
    assert_eq!(ChannelStatus::read(&name).unwrap().queued(), None);
    drop(consumer.try_recv(&mut [0u8; 16]));

    // A segment that is not a channel is an error, not a misreading.
    let other = guard.name("status-other");
    let _segment = ShmOptions::new().size(8192).create(&other).unwrap();
    let err = ChannelStatus::read(&other).unwrap_err();
    assert!(err.is_corrupted(), "{err}");
}
