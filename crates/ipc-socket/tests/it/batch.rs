//! Batches (`sendmmsg`/`recvmmsg`) on seqpacket and datagram sockets: every message
//! arrives once, whole and in order, a message lost in a batch is reported in its place,
//! and no size error sends part of a batch.

use std::time::Duration;

use ipc_socket::{Datagram, RecvBatch, Seqpacket, SeqpacketListener, UnixAddr};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

use crate::shared::{BUFFER, check, message, sizes};

/// Messages per `send_batch` call of the sender.
const CHUNK: usize = 50;

/// How the sender sends a batch.
type SendBatchFn = dyn Fn(&[&[u8]]) -> ipc_socket::Result<usize>;

/// Sends arg 2 messages of `sizes` (8 to twice `BUFFER` bytes) over socket kind arg 0
/// ("datagram" or "seqpacket") to address arg 1, `CHUNK` per `send_batch`.
pub fn batch_sender_role(ctx: &mut PeerContext) -> PeerResult {
    let (kind, address) = (ctx.arg(0)?.to_owned(), ctx.arg(1)?.to_owned());
    let count: u32 = ctx.arg(2)?.parse()?;
    let addr = UnixAddr::path(address);
    let send: Box<SendBatchFn> = if kind == "datagram" {
        let socket = Datagram::unbound()?;
        socket.connect(&addr)?;
        Box::new(move |msgs| socket.send_batch(msgs))
    } else {
        let socket = Seqpacket::connect(&addr)?;
        Box::new(move |msgs| socket.send_batch(msgs))
    };
    ctx.ready()?;
    let all: Vec<Vec<u8>> = (0..count)
        .zip(sizes(count as usize))
        .map(|(seq, len)| message(seq, len))
        .collect();
    for chunk in all.chunks(CHUNK) {
        let msgs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let sent = send(&msgs)?;
        if sent != msgs.len() {
            return Err(format!("send_batch sent {sent} of {}", msgs.len()).into());
        }
    }
    Ok(())
}

/// Receives `count` messages in batches of slots of `BUFFER` bytes: each one that fits
/// arrives once, whole and in order; each one too large is reported, in its place, with
/// the size it needed. Returns how many batches it took.
fn receive_in_batches(
    count: usize,
    recv: &dyn Fn(&mut RecvBatch) -> ipc_socket::Result<usize>,
) -> usize {
    let sizes = sizes(count);
    let mut batch = RecvBatch::new(64, BUFFER);
    let mut next = 0;
    let mut calls = 0;
    let deadline = ipc_core::Deadline::after(ipc_testkit::test_timeout() * 4);
    while next < count {
        assert!(
            !deadline.has_expired(),
            "messages were lost: {next} of {count}"
        );
        match recv(&mut batch) {
            Ok(n) => {
                assert_eq!(n, batch.len());
                calls += 1;
                for msg in batch.iter() {
                    let len = sizes[next];
                    assert!(
                        len <= BUFFER,
                        "message {next} ({len} bytes) was not reported"
                    );
                    assert_eq!(check(msg) as usize, next, "out of order");
                    next += 1;
                }
            }
            // One the sender made too large for a slot, reported once, in its place.
            Err(e) if e.is_buffer_too_small() => {
                assert!(sizes[next] > BUFFER, "message {next} reported as too large");
                assert_eq!(e.needed_len(), Some(sizes[next]), "message {next}");
                next += 1;
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => panic!("{e}"),
        }
    }
    calls
}

#[test]
fn seqpacket_batches_cross_processes_whole_in_order_and_report_each_lost_message() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("batch.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let count = 20_000;
    let mut peer = Peer::spawn(
        "batch-sender",
        &["seqpacket", path.to_str().unwrap(), &count.to_string()],
    );
    let (socket, _) = listener
        .accept_timeout(ipc_testkit::test_timeout())
        .unwrap();
    let calls = receive_in_batches(count, &|batch| {
        socket.recv_batch_timeout(batch, Duration::from_millis(100))
    });
    // The sender's batches fill the socket faster than one message per call is read.
    assert!(calls < count, "{calls} receives for {count} messages");
    peer.wait_success().unwrap();
    let mut batch = RecvBatch::new(4, BUFFER);
    let end = socket.recv_batch(&mut batch).unwrap_err();
    assert!(end.is_peer_gone(), "{end}");
}

#[test]
fn datagram_batches_cross_processes_whole_in_order_and_report_each_lost_message() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("batch.sock");
    let socket = Datagram::bind(&UnixAddr::path(&path)).unwrap();
    let count = 20_000;
    let mut peer = Peer::spawn(
        "batch-sender",
        &["datagram", path.to_str().unwrap(), &count.to_string()],
    );
    receive_in_batches(count, &|batch| {
        socket.recv_batch_timeout(batch, Duration::from_millis(100))
    });
    peer.wait_success().unwrap();
}

#[test]
fn a_batch_with_a_message_too_large_or_empty_sends_none_of_it() {
    let (a, b) = Seqpacket::pair().unwrap();
    let a = a.with_max_message_size(1024);
    let err = a
        .send_batch(&[b"first", &[7u8; 1025], b"third"])
        .unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
    let err = a.try_send_batch(&[b"first", b"", b"third"]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let mut batch = RecvBatch::new(8, 2048);
    let none = b.try_recv_batch(&mut batch).unwrap_err();
    assert!(none.is_would_block(), "{none}");
    assert!(batch.is_empty());
    assert_eq!(a.send_batch(&[]).unwrap(), 0);
}

#[test]
fn try_send_batch_sends_what_fits_and_says_how_many() {
    let (a, b) = Seqpacket::pair().unwrap();
    let msgs: Vec<Vec<u8>> = (0..1000).map(|seq| message(seq, 4096)).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let sent = a.try_send_batch(&refs).unwrap();
    assert!((1..refs.len()).contains(&sent), "sent {sent}");
    let full = a.try_send_batch(&refs[sent..]).unwrap_err();
    assert!(full.is_would_block(), "{full}");
    // A timed batch sends nothing more into a full socket, and says so.
    let late = a
        .send_batch_timeout(&refs[sent..], Duration::from_millis(20))
        .unwrap_err();
    assert!(late.is_timeout(), "{late}");
    let mut batch = RecvBatch::new(1024, 4096);
    let mut got = 0;
    while got < sent {
        let n = b.try_recv_batch(&mut batch).unwrap();
        for msg in batch.iter() {
            assert_eq!(check(msg) as usize, got);
            got += 1;
        }
        assert_eq!(n, batch.len());
    }
    assert_eq!(got, sent);
    assert!(b.try_recv_batch(&mut batch).unwrap_err().is_would_block());
}

#[test]
fn a_message_above_the_maximum_is_reported_in_its_place() {
    // The receiver allows 1 KiB; a hostile sender ignores it.
    let (a, b) = Seqpacket::pair().unwrap();
    let b = b.with_max_message_size(1024);
    a.send_batch(&[b"before", &[1u8; 5000], b"after", b"last"])
        .unwrap();
    let mut batch = RecvBatch::new(8, 1024);
    assert_eq!(b.recv_batch(&mut batch).unwrap(), 1);
    assert_eq!(batch.get(0), Some(&b"before"[..]));
    assert_eq!(batch.get(1), None);
    let lost = b.try_recv_batch(&mut batch).unwrap_err();
    assert!(lost.is_corrupted(), "{lost}");
    assert!(batch.is_empty());
    // The messages after it, then the socket goes on.
    assert_eq!(b.try_recv_batch(&mut batch).unwrap(), 2);
    let got: Vec<&[u8]> = batch.iter().collect();
    assert_eq!(got, [&b"after"[..], b"last"]);
    assert!(b.try_recv_batch(&mut batch).unwrap_err().is_would_block());
    a.send(b"later").unwrap();
    drop(a);
    assert_eq!(b.recv_batch(&mut batch).unwrap(), 1);
    assert_eq!(batch.get(0), Some(&b"later"[..]));
    assert!(b.recv_batch(&mut batch).unwrap_err().is_peer_gone());
}
