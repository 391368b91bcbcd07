//! Queues on a tokio runtime, with the other side in another process: a receive dropped
//! half-way loses nothing, a send waits for room without blocking the runtime, a
//! notification is a stream of arrivals.

use ipc_core::IpcName;
use ipc_mq::{Direction, QueueOptions};
use ipc_testkit::{PeerContext, PeerResult, test_timeout};

/// Opens queue arg 0 to receive, says ready and, per line "take", receives one message
/// and answers with it.
pub fn take_role(ctx: &mut PeerContext) -> PeerResult {
    let queue = QueueOptions::new().open(&IpcName::new(ctx.arg(0)?)?, Direction::Receive)?;
    ctx.ready()?;
    let mut buf = [0u8; 128];
    while ctx.recv()? == "take" {
        let n = queue.recv_timeout(&mut buf, test_timeout())?;
        ctx.send(&String::from_utf8_lossy(&buf[..n]))?;
    }
    Ok(())
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::future::poll_fn;
    use std::pin::Pin;
    use std::time::Duration;

    use futures_core::Stream;
    use ipc_mq::{Async, QueueOptions};
    use ipc_testkit::{LeakGuard, Peer, test_timeout};

    #[test]
    fn an_async_receive_dropped_half_way_loses_nothing() {
        let guard = LeakGuard::new();
        let name = guard.name("mq-async");
        let queue = QueueOptions::new()
            .capacity(4)
            .max_message_size(128)
            .create(&name)
            .unwrap();
        let mut queue = Async::new(queue);
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut buf = [0u8; 128];
            let dropped = tokio::time::timeout(
                Duration::from_millis(30),
                queue.read_with(|q| q.try_recv(&mut buf)),
            );
            assert!(dropped.await.is_err());
            let mut peer = Peer::spawn("mq-send", &[name.as_str()]);
            peer.send("after the drop").unwrap();
            let n = tokio::time::timeout(test_timeout(), queue.read_with(|q| q.try_recv(&mut buf)))
                .await
                .expect("the message in time")
                .unwrap();
            assert_eq!(&buf[..n], b"after the drop");
            peer.wait_success().unwrap();
        });
    }

    #[test]
    fn an_async_send_waits_for_room_that_another_process_makes() {
        let guard = LeakGuard::new();
        let name = guard.name("mq-async-room");
        let queue = QueueOptions::new()
            .capacity(2)
            .max_message_size(128)
            .create(&name)
            .unwrap();
        queue.send(b"one").unwrap();
        queue.send(b"two").unwrap();
        let mut queue = Async::new(queue);
        let mut peer = Peer::spawn("mq-take", &[name.as_str()]);
        ipc_testkit::runtime().unwrap().block_on(async {
            // Full: the send waits (the runtime is free) until the peer takes one.
            let send = queue.write_with(|q| q.try_send(b"three"));
            let taker = async {
                peer.send("take").unwrap();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                biased;
                sent = send => sent.unwrap(),
                () = taker => unreachable!(),
            }
        });
        assert_eq!(peer.recv().unwrap(), "one");
        for expected in ["two", "three"] {
            peer.send("take").unwrap();
            assert_eq!(peer.recv().unwrap(), expected);
        }
        peer.send("end").unwrap();
        peer.wait_success().unwrap();
    }

    #[test]
    fn a_notification_stream_yields_each_arrival_another_process_makes() {
        let guard = LeakGuard::new();
        let name = guard.name("mq-async-notify");
        let queue = QueueOptions::new()
            .capacity(4)
            .max_message_size(128)
            .create(&name)
            .unwrap();
        let mut arrivals = Async::new(queue.notify().unwrap());
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut buf = [0u8; 128];
            for round in 0..3 {
                let mut peer = Peer::spawn("mq-send", &[name.as_str()]);
                peer.send(&format!("round {round}")).unwrap();
                let next = poll_fn(|cx| Pin::new(&mut arrivals).poll_next(cx));
                tokio::time::timeout(test_timeout(), next)
                    .await
                    .expect("the notification in time")
                    .expect("the stream does not end")
                    .unwrap();
                // Registered again by the stream: drain the queue, then wait for the next.
                let n = queue.try_recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], format!("round {round}").as_bytes());
                assert!(queue.try_recv(&mut buf).unwrap_err().is_would_block());
                peer.wait_success().unwrap();
            }
        });
    }
}
