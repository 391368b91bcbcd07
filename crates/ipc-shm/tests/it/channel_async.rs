//! Channel ends on a tokio runtime, with the other side in another process: every message
//! announced by the wake FIFO, a receive dropped half-way, many tasks on one runtime, a
//! producer killed while a task waits.

#![cfg(feature = "tokio")]

use std::time::Duration;

use ipc_shm::{Async, ChannelOptions, Consumer};
use ipc_testkit::{LeakGuard, Peer, test_timeout};

use crate::channel::message;

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(16 * 1024)
        .max_message_size(1024)
        .timeout(test_timeout())
}

async fn recv(consumer: &mut Async<Consumer>, buf: &mut [u8]) -> ipc_shm::Result<usize> {
    consumer.read_with(|c| c.try_recv(buf)).await
}

#[test]
fn an_async_receive_dropped_half_way_loses_nothing_and_the_next_gets_every_message() {
    let guard = LeakGuard::new();
    let name = guard.name("async");
    let mut consumer = Async::new(options().create_consumer(&name).unwrap());
    ipc_testkit::runtime().unwrap().block_on(async {
        let mut buf = [0u8; 1024];
        // Nothing there: the receive waits, armed, until the timeout drops it.
        let dropped =
            tokio::time::timeout(Duration::from_millis(30), recv(&mut consumer, &mut buf));
        assert!(dropped.await.is_err());
        let count = 100;
        // The producer sends each message only once this side is armed again.
        let mut peer = Peer::spawn("armed-producer", &[name.as_str(), &count.to_string()]);
        for i in 0..count {
            let n = tokio::time::timeout(test_timeout(), recv(&mut consumer, &mut buf))
                .await
                .expect("a message in time")
                .unwrap();
            assert_eq!(&buf[..n], &message(i, 1024)[..], "message {i}");
        }
        peer.wait_success().unwrap();
        let err = recv(&mut consumer, &mut buf).await.unwrap_err();
        assert!(err.is_peer_gone(), "{err}");
    });
}

#[test]
fn many_tasks_on_one_runtime_each_receive_their_own_stream() {
    let guard = LeakGuard::new();
    let count = 50u64;
    let runtime = ipc_testkit::runtime().unwrap();
    let local = tokio::task::LocalSet::new();
    let mut peers = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let name = guard.name(&format!("async-{i}"));
        let mut consumer = Async::new(options().create_consumer(&name).unwrap());
        peers.push(Peer::spawn(
            "armed-producer",
            &[name.as_str(), &count.to_string()],
        ));
        tasks.push(local.spawn_local(async move {
            let mut buf = [0u8; 1024];
            for seq in 0..count {
                let n = recv(&mut consumer, &mut buf).await.unwrap();
                assert_eq!(&buf[..n], &message(seq, 1024)[..]);
            }
        }));
    }
    runtime.block_on(local.run_until(async {
        for task in tasks {
            tokio::time::timeout(test_timeout(), task)
                .await
                .expect("every stream in time")
                .unwrap();
        }
    }));
    for mut peer in peers {
        peer.wait_success().unwrap();
    }
}

#[test]
fn a_producer_killed_while_a_task_waits_ends_the_wait() {
    let guard = LeakGuard::new();
    let name = guard.name("async-killed");
    // The geometry the "channel-producer" role opens with.
    let consumer = options()
        .capacity(64 * 1024)
        .max_message_size(4096)
        .create_consumer(&name)
        .unwrap();
    let mut consumer = Async::new(consumer);
    let mut peer = Peer::spawn("channel-producer", &[name.as_str(), "idle"]);
    ipc_testkit::runtime().unwrap().block_on(async {
        let mut buf = [0u8; 4096];
        let waiting = recv(&mut consumer, &mut buf);
        // Polled after the receive has armed and gone to sleep (`biased`).
        let killer = async {
            peer.kill().unwrap();
            std::future::pending::<()>().await;
        };
        let err = tokio::select! {
            biased;
            got = waiting => got.unwrap_err(),
            () = killer => unreachable!(),
        };
        assert!(err.is_peer_gone(), "{err}");
        assert!(err.to_string().contains("died"), "{err}");
    });
}

#[test]
fn an_async_producer_waits_for_room_another_process_frees_sending_and_loaning() {
    let guard = LeakGuard::new();
    let name = guard.name("async-room");
    let mut producer = Async::new(options().create_producer(&name).unwrap());
    // 200 messages of 1 KiB through a 16 KiB ring: the producer waits for room many times.
    let count = 200u64;
    let mut peer = Peer::spawn("channel-drain", &[name.as_str(), &count.to_string()]);
    peer.send("go").unwrap();
    ipc_testkit::runtime().unwrap().block_on(async {
        tokio::time::timeout(test_timeout(), async {
            for i in 0..count {
                let msg = message(i, 1024);
                if i % 2 == 0 {
                    producer.send(&msg).await.unwrap();
                    continue;
                }
                // A loan lends from the producer, so it follows `writable`.
                loop {
                    producer.writable().await.unwrap();
                    match producer.get_mut().try_loan(msg.len()) {
                        Ok(mut loan) => {
                            loan.write_at(0, &msg).unwrap();
                            loan.commit().unwrap();
                            break;
                        }
                        Err(err) if err.is_would_block() => {}
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        })
        .await
        .expect("every message sent in time");
    });
    // The drain checks each message's content and order.
    peer.wait_success().unwrap();
}

#[test]
fn an_async_consumer_borrows_what_another_process_sends() {
    let guard = LeakGuard::new();
    let name = guard.name("async-borrow");
    let mut consumer = Async::new(options().create_consumer(&name).unwrap());
    let count = 50u64;
    let mut peer = Peer::spawn("armed-producer", &[name.as_str(), &count.to_string()]);
    ipc_testkit::runtime().unwrap().block_on(async {
        tokio::time::timeout(test_timeout(), async {
            for i in 0..count {
                let mut buf = vec![0u8; 0];
                loop {
                    consumer.readable().await.unwrap();
                    match consumer.get_mut().try_borrow() {
                        Ok(loan) => {
                            buf.resize(loan.len(), 0);
                            loan.read_at(0, &mut buf).unwrap();
                            break;
                        }
                        Err(err) if err.is_would_block() => {}
                        Err(err) => panic!("{err}"),
                    }
                }
                assert_eq!(buf, message(i, 1024), "message {i}");
            }
        })
        .await
        .expect("every message in time");
    });
    peer.wait_success().unwrap();
}
