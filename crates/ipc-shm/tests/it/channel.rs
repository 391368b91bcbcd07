// Test patterns wrap numbers into bytes on purpose.
#![allow(clippy::cast_possible_truncation)]

use std::collections::VecDeque;
use std::time::Duration;

use ipc_shm::{ChannelOptions, Consumer, MessageReceiver, MessageSender, Producer, WaitStrategy};
use ipc_testkit::{LeakGuard, test_timeout};
use proptest::prelude::*;

/// Message `i`: a length that varies, a pattern derived from `i`.
pub fn message(i: u64, max: usize) -> Vec<u8> {
    let len = 1 + (i as usize * 7919) % max;
    (0..len)
        .map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8))
        .collect()
}

fn stream(options: &ChannelOptions, count: u64) {
    let (producer, consumer) = options.channel().unwrap();
    stream_between(producer, consumer, count);
}

/// Sends `count` messages from a thread and checks them in order here.
fn stream_between(mut producer: Producer, mut consumer: Consumer, count: u64) {
    let max = producer.max_message_size();
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            producer
                .send_timeout(&message(i, max), test_timeout())
                .unwrap();
        }
        producer
    });
    let mut buf = vec![0u8; max];
    for i in 0..count {
        let n = consumer.recv_timeout(&mut buf, test_timeout()).unwrap();
        assert_eq!(&buf[..n], &message(i, max)[..], "message {i}");
    }
    drop(sender.join().unwrap());
    // The producer is gone and the ring is empty.
    assert!(
        consumer
            .recv_timeout(&mut buf, test_timeout())
            .unwrap_err()
            .is_peer_gone()
    );
}

#[test]
fn every_wait_strategy_delivers_everything_in_order() {
    let base = ChannelOptions::new()
        .capacity(16 * 1024)
        .max_message_size(3000);
    for wait in [
        WaitStrategy::BusyPoll,
        WaitStrategy::default(),
        WaitStrategy::Blocking,
    ] {
        stream(&base.clone().wait_strategy(wait), 20_000);
    }
}

/// Each end picks its own strategy: a busy-polling end skips the wake-up check, which must
/// not matter to a peer that parks, whichever side it is on.
#[test]
fn ends_with_different_wait_strategies_work_together() {
    let guard = LeakGuard::new();
    let strategies = [
        WaitStrategy::BusyPoll,
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(1),
        },
        WaitStrategy::Blocking,
    ];
    for producer_wait in strategies {
        for consumer_wait in strategies {
            let name = guard.name("mixed");
            let base = ChannelOptions::new()
                .capacity(16 * 1024)
                .max_message_size(3000);
            let producer = base
                .clone()
                .wait_strategy(producer_wait)
                .create_producer(&name)
                .unwrap();
            let consumer = base
                .wait_strategy(consumer_wait)
                .open_consumer(&name)
                .unwrap();
            stream_between(producer, consumer, 5_000);
        }
    }
}

#[test]
fn positions_near_the_wrap_around_work() {
    let options = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(1000)
        .start_position((u64::MAX - 10_000) & !7);
    stream(&options, 5_000);
}

#[test]
fn absurd_sizes_are_errors_not_panics() {
    let huge = ChannelOptions::new().capacity(usize::MAX).channel();
    assert!(huge.is_err());
    let oversized = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(4096)
        .channel();
    assert!(oversized.unwrap_err().is_limit_exceeded());
    let empty = ChannelOptions::new().max_message_size(0).channel();
    assert!(empty.unwrap_err().is_limit_exceeded());
}

#[test]
fn the_default_largest_message_fits_the_ring_twice() {
    let max = |options: ChannelOptions| options.channel().unwrap().0.max_message_size();
    assert_eq!(max(ChannelOptions::new()), 64 * 1024);
    assert_eq!(max(ChannelOptions::new().capacity(1 << 17)), 64 * 1024 - 8);
    assert_eq!(max(ChannelOptions::new().capacity(4096)), 2048 - 8);
    assert_eq!(
        max(ChannelOptions::new().capacity(4096).max_message_size(100)),
        100
    );
}

#[test]
fn copy_api_rules() {
    let (mut producer, mut consumer) = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(1000)
        .channel()
        .unwrap();
    let mut buf = [0u8; 1000];
    assert!(consumer.try_recv(&mut buf).unwrap_err().is_would_block());
    assert!(
        consumer
            .recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    assert!(producer.send(&[0u8; 1001]).unwrap_err().is_limit_exceeded());
    producer.send(&[9u8; 500]).unwrap();
    let mut small = [0u8; 100];
    assert_eq!(
        consumer.recv(&mut small).unwrap_err().needed_len(),
        Some(500)
    );
    assert_eq!(consumer.recv(&mut buf).unwrap(), 500);
    // Fill the ring: try_send says WouldBlock, send_timeout times out.
    let mut sent = 0;
    while producer.try_send(&[1u8; 1000]).is_ok() {
        sent += 1;
    }
    assert!(sent >= 3);
    assert!(
        producer
            .send_timeout(&[1u8; 1000], Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    for _ in 0..sent {
        assert_eq!(consumer.recv(&mut buf).unwrap(), 1000);
    }
    // A closed consumer is reported to the producer at once.
    drop(consumer);
    assert!(producer.try_send(b"x").unwrap_err().is_peer_gone());
}

#[test]
fn batch_rules() {
    let options = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(1024)
        .wait_strategy(WaitStrategy::Blocking);
    let (mut producer, mut consumer) = options.channel().unwrap();
    // A message too large refuses the whole batch: nothing is sent.
    let big = vec![0u8; 2048];
    let err = producer
        .try_send_batch(&[b"fits", &big, b"fits too"])
        .unwrap_err();
    assert!(err.limit().is_some(), "{err}");
    assert!(
        consumer
            .try_recv(&mut [0u8; 1024])
            .unwrap_err()
            .is_would_block()
    );
    // As many as fit, in order, at least one; none when full.
    let msg = [7u8; 1000];
    let batch: Vec<&[u8]> = vec![&msg; 8];
    let sent = producer.try_send_batch(&batch).unwrap();
    assert!((1..8).contains(&sent), "{sent}");
    assert!(
        producer
            .try_send_batch(&batch)
            .unwrap_err()
            .is_would_block()
    );
    let err = producer
        .send_batch_timeout(&batch, Duration::from_millis(20))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let mut buf = [0u8; 1024];
    for _ in 0..sent {
        assert_eq!(consumer.try_recv(&mut buf).unwrap(), 1000);
    }
    assert!(consumer.try_recv(&mut buf).unwrap_err().is_would_block());
    // A closed consumer: the batch sends nothing and says so.
    drop(consumer);
    assert!(producer.send_batch(&batch).unwrap_err().is_peer_gone());
    assert_eq!(producer.send_batch(&[]).unwrap(), 0);
}

#[test]
fn zero_copy_loans() {
    let (mut producer, mut consumer) = ChannelOptions::new()
        .capacity(8192)
        .max_message_size(4000)
        .channel()
        .unwrap();
    {
        let mut loan = producer.loan(16).unwrap();
        loan.write::<u64>(0, &0xfeed).unwrap();
        loan.write_at(8, b"in place").unwrap();
        assert!(loan.write_at(9, b"in place").is_err(), "beyond the loan");
        loan.commit().unwrap();
    }
    // A loan dropped without commit sends nothing.
    {
        let _uncommitted = producer.loan(100).unwrap();
    }
    producer.send(b"after").unwrap();
    {
        let msg = consumer.borrow().unwrap();
        assert_eq!(msg.len(), 16);
        assert_eq!(msg.read::<u64>(0).unwrap(), 0xfeed);
        let mut text = [0u8; 8];
        msg.read_at(8, &mut text).unwrap();
        assert_eq!(&text, b"in place");
        assert!(msg.read::<u64>(9).is_err());
    }
    let mut buf = [0u8; 16];
    assert_eq!(consumer.recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"after");
    assert!(consumer.try_borrow().unwrap_err().is_would_block());
}

// The byte views are unsafe: both ends here are this crate's, which keep the protocol.
#[allow(unsafe_code)]
#[test]
fn byte_views_of_loans_fill_and_read_messages_in_place_across_the_wrap() {
    let (mut producer, mut consumer) = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(1000)
        .channel()
        .unwrap();
    for i in 0..40u64 {
        let len = 1 + (i as usize * 97) % 1000;
        let mut loan = producer.loan(len).unwrap();
        // SAFETY: the consumer is this crate's and never writes the ring.
        let bytes = unsafe { loan.as_mut_slice() };
        assert_eq!(bytes.len(), len);
        for (j, byte) in bytes.iter_mut().enumerate() {
            *byte = (i as usize + j) as u8;
        }
        loan.commit().unwrap();
        let msg = consumer.borrow().unwrap();
        // SAFETY: the producer is this crate's and does not write a committed message.
        let got = unsafe { msg.as_slice() };
        assert_eq!(got.len(), len);
        assert!(
            got.iter()
                .enumerate()
                .all(|(j, &b)| b == (i as usize + j) as u8),
            "message {i}"
        );
    }
}

#[test]
fn one_live_endpoint_per_side() {
    let guard = LeakGuard::new();
    let name = guard.name("sides");
    let options = ChannelOptions::new().capacity(4096).max_message_size(100);
    let producer = options.create_producer(&name).unwrap();
    let consumer = options.open_consumer(&name).unwrap();
    let err = options.open_consumer(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert_eq!(
        options.open_producer(&name).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    // A consumer that closed leaves the role free.
    drop(consumer);
    let _again = options.open_consumer(&name).unwrap();
    drop(producer);
}

#[test]
fn errors_name_the_channel() {
    let guard = LeakGuard::new();
    let name = guard.name("named-errors");
    let options = ChannelOptions::new().capacity(4096).max_message_size(100);
    let mut producer = options.create_producer(&name).unwrap();
    let mut consumer = options.open_consumer(&name).unwrap();
    let names = |err: ipc_core::Error| {
        assert!(err.to_string().contains(name.as_str()), "{err}");
        assert_eq!(err.subject(), Some(name.as_str()));
        err
    };
    assert!(
        names(options.open_consumer(&name).unwrap_err()).kind() == std::io::ErrorKind::AddrInUse
    );
    assert!(names(consumer.try_recv(&mut [0; 100]).unwrap_err()).is_would_block());
    assert!(names(consumer.try_borrow().unwrap_err()).is_would_block());
    assert!(names(producer.send(&[0; 101]).unwrap_err()).is_limit_exceeded());
    assert!(names(producer.loan(101).unwrap_err()).is_limit_exceeded());
    producer.send(&[1; 10]).unwrap();
    assert!(names(consumer.recv(&mut [0; 5]).unwrap_err()).is_buffer_too_small());
    drop(consumer);
    assert!(names(producer.send(b"x").unwrap_err()).is_peer_gone());

    let (mut producer, _consumer) = options.channel().unwrap();
    let err = producer.send(&[0; 101]).unwrap_err();
    assert!(err.to_string().contains("anonymous channel"), "{err}");
}

#[test]
fn message_traits_work_through_dyn() {
    let (producer, consumer) = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(64)
        .channel()
        .unwrap();
    let mut tx: Box<dyn MessageSender> = Box::new(producer);
    let mut rx: Box<dyn MessageReceiver> = Box::new(consumer);
    tx.send(b"generic").unwrap();
    let mut buf = Vec::new();
    assert_eq!(rx.recv_vec(&mut buf).unwrap(), 7);
    assert_eq!(buf, b"generic");
}

/// One step of the model check: send or receive, by copy or in place.
#[derive(Clone, Copy, Debug)]
enum Op {
    Send(usize),
    Loan(usize),
    Recv,
    Borrow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..600).prop_map(Op::Send),
        (0usize..600).prop_map(Op::Loan),
        Just(Op::Recv),
        Just(Op::Borrow),
    ]
}

/// Checks a channel against a `VecDeque` with random sends and receives, single-threaded,
/// mixing the copy and the zero-copy APIs.
fn model_check(ops: &[Op], capacity: usize) {
    let (mut producer, mut consumer): (Producer, Consumer) = ChannelOptions::new()
        .capacity(capacity)
        .max_message_size(600)
        .channel()
        .unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut buf = [0u8; 600];
    for (i, &op) in ops.iter().enumerate() {
        let sent = match op {
            Op::Send(size) | Op::Loan(size) => {
                let msg: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
                let result = if let Op::Send(_) = op {
                    producer.try_send(&msg)
                } else {
                    producer.try_loan(size).and_then(|mut loan| {
                        loan.write_at(0, &msg)?;
                        loan.commit()
                    })
                };
                Some((result, msg))
            }
            Op::Recv | Op::Borrow => None,
        };
        if let Some((result, msg)) = sent {
            match result {
                Ok(()) => model.push_back(msg),
                Err(err) => {
                    assert!(err.is_would_block(), "{err}");
                    // Refusing is only allowed when the ring is busy: with nothing queued
                    // any message up to the maximum fits.
                    assert!(!model.is_empty(), "refused a message into an empty ring");
                }
            }
            continue;
        }
        let received = if let Op::Recv = op {
            consumer.try_recv(&mut buf)
        } else {
            consumer.try_borrow().and_then(|loan| {
                loan.read_at(0, &mut buf[..loan.len()])?;
                Ok(loan.len())
            })
        };
        match received {
            Ok(n) => assert_eq!(Some(&buf[..n]), model.pop_front().as_deref()),
            Err(err) => {
                assert!(err.is_would_block(), "{err}");
                assert!(model.is_empty());
            }
        }
    }
    while let Some(expected) = model.pop_front() {
        let n = consumer.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..400)) {
        model_check(&ops, 4096);
    }
}

#[test]
fn a_maximum_beyond_every_limit_is_an_error_not_an_overflow() {
    let err = ChannelOptions::new()
        .max_message_size(usize::MAX)
        .channel()
        .unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
}

#[test]
fn a_cancelled_token_ends_waits_and_loses_nothing_sent() {
    for wait in [WaitStrategy::Blocking, WaitStrategy::default()] {
        let (mut producer, mut consumer) = ChannelOptions::new()
            .capacity(4096)
            .max_message_size(1024)
            .wait_strategy(wait)
            .channel()
            .unwrap();
        let stop = ipc_shm::Cancel::new().unwrap();
        // Cancelled from another thread while the consumer waits (or before it starts).
        let waited = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| stop.watch(|| consumer.recv(&mut [0u8; 1024])));
            stop.cancel();
            waiter.join().unwrap()
        });
        assert!(waited.unwrap_err().is_cancelled(), "{wait:?}");
        // A full ring refuses a send with the same error; what it holds is received.
        let mut sent = 0u8;
        while producer.try_send(&[sent; 1000]).is_ok() {
            sent += 1;
        }
        let err = stop.watch(|| producer.send(&[0xff; 1000])).unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        let mut buf = [0u8; 1024];
        for expected in 0..sent {
            let n = stop.watch(|| consumer.recv(&mut buf)).unwrap();
            assert_eq!(&buf[..n], &[expected; 1000][..]);
        }
        assert!(consumer.try_recv(&mut buf).unwrap_err().is_would_block());
    }
}

/// A producer that sends its last message and closes at once, racing a consumer that has
/// just found the ring empty: the consumer receives that message before it is told the
/// producer closed, whether it waits (each strategy) or polls with `try_recv`.
#[test]
fn the_last_messages_before_a_close_are_received_before_it() {
    const ROUNDS: u64 = 1_000;
    for (wait, poll) in [
        (WaitStrategy::BusyPoll, false),
        (WaitStrategy::default(), false),
        (WaitStrategy::Blocking, false),
        (WaitStrategy::BusyPoll, true),
    ] {
        for round in 0..ROUNDS {
            let (mut producer, mut consumer) = ChannelOptions::new()
                .capacity(4096)
                .max_message_size(64)
                .wait_strategy(wait)
                .channel()
                .unwrap();
            let count = 1 + round % 3;
            let sender = std::thread::spawn(move || {
                for i in 0..count {
                    producer.send(&i.to_le_bytes()).unwrap();
                }
            });
            let mut buf = [0u8; 64];
            let mut received = 0u64;
            let err = loop {
                let got = if poll {
                    consumer.try_recv(&mut buf)
                } else {
                    consumer.recv_timeout(&mut buf, test_timeout())
                };
                match got {
                    Ok(n) => {
                        assert_eq!(&buf[..n], &received.to_le_bytes()[..]);
                        received += 1;
                    }
                    Err(err) if err.is_would_block() => std::hint::spin_loop(),
                    Err(err) => break err,
                }
            };
            sender.join().unwrap();
            assert!(err.is_peer_gone(), "{wait:?}, round {round}: {err}");
            assert_eq!(
                received, count,
                "{wait:?} (try_recv: {poll}), round {round}"
            );
        }
    }
}
