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
    let fifo = format!(
        "/dev/shm/ipcrs-wake-{}-{:08x}-{}",
        std::process::id(),
        id >> 32,
        id & 0xffff_ffff
    );
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
