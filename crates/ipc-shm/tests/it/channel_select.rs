//! Channels in a `Selector`, with the other side in another process: the wake FIFO, the
//! peer's pidfd and the timer of a busy-polling endpoint.

use std::sync::atomic::Ordering::Acquire;
use std::time::Duration;

use ipc_core::IpcName;
use ipc_shm::{ChannelOptions, Interest, Selector, ShmOptions, WaitStrategy};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_deadline, test_timeout};

use crate::channel::message;

/// Byte offset of the consumer's sleeping word (the channel's layout), and its "armed for
/// a poller" bit.
const CONSUMER_SLEEPING: usize = 644;
const ARMED: u32 = 2;

/// Where the wake FIFO of waiter `pid` that recorded `id` is (the form `wake.rs` gives).
fn fifo_path(pid: u32, id: u64) -> String {
    format!(
        "/dev/shm/ipcrs-wake-{pid}-{:08x}-{}",
        id >> 32,
        id & 0xffff_ffff
    )
}

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(16 * 1024)
        .max_message_size(1024)
        .timeout(test_timeout())
}

/// Opens the channel arg 0 as producer and sends arg 1 messages, each only once the
/// consumer is armed in a poller, so that every one of them is announced by the FIFO.
pub fn armed_producer_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let count: u64 = ctx.arg(1)?.parse()?;
    let mut producer = options().open_producer(&name)?;
    let watch = ShmOptions::new().open(&name)?;
    let sleeping = watch.atomic_u32(CONSUMER_SLEEPING)?;
    ctx.ready()?;
    for i in 0..count {
        ipc_testkit::wait_until(test_deadline(), || sleeping.load(Acquire) & ARMED != 0)?;
        producer.send_timeout(&message(i, 1024), test_timeout())?;
    }
    Ok(())
}

/// Opens the channel arg 0 as consumer, reports ready, waits for a line and then
/// receives arg 1 messages.
pub fn drain_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let count: u64 = ctx.arg(1)?.parse()?;
    let mut consumer = options().open_consumer(&name)?;
    ctx.ready()?;
    ctx.recv()?;
    let mut buf = [0u8; 1024];
    for i in 0..count {
        let n = consumer.recv_timeout(&mut buf, test_timeout())?;
        if buf[..n] != message(i, 1024)[..] {
            return Err(format!("message {i} is wrong").into());
        }
    }
    Ok(())
}

/// Waits on `selector` and drains the consumer into `got` until the producer is gone.
fn receive_all(selector: &mut Selector, consumer: &mut ipc_shm::Consumer) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let ready = selector.wait_deadline(test_deadline()).unwrap().to_vec();
        assert_eq!(ready.len(), 1);
        loop {
            match consumer.try_recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(err) if err.is_would_block() => break,
                Err(err) if err.is_peer_gone() => return got,
                Err(err) => panic!("{err}"),
            }
        }
    }
}

#[test]
fn a_selector_wakes_for_each_message_of_another_process_and_loses_none() {
    for wait in [WaitStrategy::Blocking, WaitStrategy::BusyPoll] {
        let guard = LeakGuard::new();
        let name = guard.name("select");
        let mut consumer = options()
            .wait_strategy(wait)
            .create_consumer(&name)
            .unwrap();
        let mut selector = Selector::new().unwrap();
        selector.add(&consumer, Interest::Readable).unwrap();
        let count = 200;
        let mut peer = Peer::spawn("armed-producer", &[name.as_str(), &count.to_string()]);
        let got = receive_all(&mut selector, &mut consumer);
        let expected: Vec<Vec<u8>> = (0..count).map(|i| message(i, 1024)).collect();
        assert_eq!(got, expected, "{wait:?}");
        peer.wait_success().unwrap();
    }
}

#[test]
fn a_selector_is_woken_when_the_peer_dies() {
    let guard = LeakGuard::new();
    let name = guard.name("select-dies");
    // The geometry the "channel-producer" role opens with.
    let mut consumer = options()
        .capacity(64 * 1024)
        .max_message_size(4096)
        .create_consumer(&name)
        .unwrap();
    let mut peer = Peer::spawn("channel-producer", &[name.as_str(), "idle"]);
    let mut selector = Selector::new().unwrap();
    let key = selector.add(&consumer, Interest::Readable).unwrap();
    assert!(selector.try_wait().unwrap_err().is_would_block());
    peer.kill().unwrap();
    assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
    let err = consumer.try_recv(&mut [0u8; 16]).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    // Level-triggered: still ready.
    assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
}

#[test]
fn a_producer_in_a_selector_is_woken_when_room_frees() {
    let guard = LeakGuard::new();
    let name = guard.name("select-room");
    let mut producer = options().create_producer(&name).unwrap();
    let mut sent = 0;
    while producer.try_send(&message(sent, 1024)).is_ok() {
        sent += 1;
    }
    let total = sent + 20;
    let mut peer = Peer::spawn("channel-drain", &[name.as_str(), &total.to_string()]);
    let mut selector = Selector::new().unwrap();
    let key = selector.add(&producer, Interest::Writable).unwrap();
    assert!(selector.try_wait().unwrap_err().is_would_block());
    assert!(selector.add(&producer, Interest::Readable).is_err());
    peer.send("go").unwrap();
    while sent < total {
        assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
        while sent < total && producer.try_send(&message(sent, 1024)).is_ok() {
            sent += 1;
        }
    }
    peer.wait_success().unwrap();
}

#[test]
fn a_closed_endpoint_in_a_selector_is_reported_and_its_fifo_removed() {
    let guard = LeakGuard::new();
    let (producer, consumer) = options().channel().unwrap();
    let mut selector = Selector::new().unwrap();
    let key = selector.add(&consumer, Interest::Readable).unwrap();
    assert!(
        selector
            .wait_timeout(Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    // The consumer's wait line records its FIFO's id (the channel's layout, byte 648),
    // which names the FIFO.
    let id = consumer.segment().atomic_u64(648).unwrap().load(Acquire);
    assert_ne!(id, 0);
    let fifo = fifo_path(std::process::id(), id);
    let fifos = || usize::from(std::path::Path::new(&fifo).exists());
    assert_eq!(fifos(), 1);
    drop(producer);
    assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
    drop(consumer);
    selector.remove(key).unwrap();
    drop(selector);
    assert_eq!(fifos(), 0);
    drop(guard);
}

/// Byte offset of the consumer's wake FIFO id (the channel's layout).
const CONSUMER_WAKE: usize = 648;

#[test]
fn a_wake_id_naming_something_else_than_a_fifo_gets_nothing_written() {
    let _guard = LeakGuard::new();
    let (mut producer, consumer) = options().channel().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.add(&consumer, Interest::Readable).unwrap();
    assert!(selector.try_wait().unwrap_err().is_would_block());
    // A hostile consumer points its id at a regular file and at a symbolic link to one,
    // named as FIFOs are, and says it is armed.
    let pid = std::process::id();
    let victim = std::env::temp_dir().join(format!("ipcrs-wake-victim-{pid}"));
    std::fs::write(&victim, b"").unwrap();
    let wake = consumer.segment().atomic_u64(CONSUMER_WAKE).unwrap();
    let sleeping = consumer.segment().atomic_u32(CONSUMER_SLEEPING).unwrap();
    for (id, link) in [
        (0x0bad_cafe_0000_0001u64, false),
        (0x0bad_cafe_0000_0002, true),
    ] {
        let path = fifo_path(pid, id);
        if link {
            std::os::unix::fs::symlink(&victim, &path).unwrap();
        } else {
            std::fs::write(&path, b"").unwrap();
        }
        wake.store(id, std::sync::atomic::Ordering::SeqCst);
        sleeping.fetch_or(ARMED, std::sync::atomic::Ordering::SeqCst);
        producer.send(b"wake").unwrap();
        let written = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            written.is_empty(),
            "the waker wrote {written:?} to a non-FIFO"
        );
    }
    assert!(std::fs::read(&victim).unwrap().is_empty());
    std::fs::remove_file(&victim).unwrap();
}

#[test]
fn a_scribbled_wait_line_costs_wake_ups_never_a_crash() {
    let _guard = LeakGuard::new();
    let (mut producer, mut consumer) = options().channel().unwrap();
    let mut selector = Selector::new().unwrap();
    let key = selector.add(&consumer, Interest::Readable).unwrap();
    let segment = consumer.segment().try_clone().unwrap();
    let mut rng = ipc_testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 1024];
    let mut received = 0;
    for i in 0..500u64 {
        // Both sides' wait lines: futex words, sleeping bits, wake ids.
        let offset = [512, 520, 640, 648][usize::try_from(rng.below(4)).unwrap()];
        segment.write::<u64>(offset, &rng.next_u64()).unwrap();
        if i % 3 == 0 {
            producer.try_send(b"m").ok();
        }
        match selector.wait_timeout(Duration::from_millis(2)) {
            Ok(_) | Err(_) => {}
        }
        while consumer.try_recv(&mut buf).is_ok() {
            received += 1;
        }
    }
    assert!(received > 0);
    // A cleared "armed" bit is a missed wake-up, as a peer that stops sending would cause
    // (waits still end at their deadline). Added again, the endpoint arms again.
    for offset in [512, 520, 640, 648] {
        segment.write::<u64>(offset, &0).unwrap();
    }
    selector.remove(key).unwrap();
    selector.add(&consumer, Interest::Readable).unwrap();
    selector.try_wait().ok();
    producer.send(b"after").unwrap();
    let n = loop {
        selector.wait_deadline(test_deadline()).unwrap();
        if let Ok(n) = consumer.try_recv(&mut buf) {
            break n;
        }
    };
    assert_eq!(&buf[..n], b"after");
}

/// Opens the channel arg 0 as consumer, arms it in a selector, says ready and waits to be
/// killed.
pub fn armed_consumer_role(ctx: &mut PeerContext) -> PeerResult {
    let consumer = options().open_consumer(&IpcName::new(ctx.arg(0)?)?)?;
    let mut selector = Selector::new()?;
    selector.add(&consumer, Interest::Readable)?;
    if selector.try_wait().is_ok() {
        return Err("an empty channel was ready".into());
    }
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

#[test]
fn the_wake_fifo_of_a_killed_waiter_is_removed_by_its_peer() {
    let guard = LeakGuard::new();
    let name = guard.name("fifo-left");
    let producer = options().create_producer(&name).unwrap();
    let mut peer = Peer::spawn("armed-consumer", &[name.as_str()]);
    let id = producer
        .segment()
        .atomic_u64(CONSUMER_WAKE)
        .unwrap()
        .load(Acquire);
    let fifo = fifo_path(peer.pid(), id);
    assert!(std::path::Path::new(&fifo).exists(), "{fifo}");
    peer.kill().unwrap();
    drop(producer);
    assert!(!std::path::Path::new(&fifo).exists(), "{fifo} was left");
}
