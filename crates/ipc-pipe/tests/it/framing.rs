// Test patterns wrap numbers into bytes on purpose.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use ipc_pipe::{Fifo, FramedReader, FramedWriter, MessageReceiver, MessageSender, PIPE_BUF, pipe};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};
use proptest::prelude::*;

/// Writes the header of a 1000-byte frame and 10 bytes of it to the FIFO at arg 0, then
/// waits to be killed.
pub fn frame_then_die_role(ctx: &mut PeerContext) -> PeerResult {
    let mut writer = Fifo::open(ctx.arg(0)?)?.open_writer_timeout(test_timeout())?;
    writer.write_all(&1000u32.to_le_bytes())?;
    writer.write_all(&[7u8; 10])?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Message `seq` of writer `id`: id, seq, a size that varies, a checksum at the end.
fn message(id: u8, seq: u32) -> Vec<u8> {
    let len = 9 + (seq as usize * 97 + id as usize * 13) % (PIPE_BUF - 4 - 9);
    let mut msg = vec![0u8; len];
    msg[0] = id;
    msg[1..5].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in msg[5..len - 4].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(id).wrapping_add(seq as u8);
    }
    let sum = checksum(&msg[..len - 4]);
    msg[len - 4..].copy_from_slice(&sum.to_le_bytes());
    msg
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

const MESSAGES_PER_WRITER: u32 = 400;

/// Sends `MESSAGES_PER_WRITER` atomic frames to the FIFO at arg 0 as writer arg 1, as
/// fast as it can, once told to go.
pub fn many_writers_role(ctx: &mut PeerContext) -> PeerResult {
    let id: u8 = ctx.arg(1)?.parse()?;
    let writer = Fifo::open(ctx.arg(0)?)?.open_writer_timeout(test_timeout())?;
    let mut framed = FramedWriter::new(writer).atomic();
    ctx.ready()?;
    ctx.recv()?;
    for seq in 0..MESSAGES_PER_WRITER {
        framed.send(&message(id, seq))?;
    }
    Ok(())
}

#[test]
fn writer_killed_mid_frame_is_peer_gone_not_a_partial_message() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("cut")).unwrap();
    let reader = fifo.open_reader().unwrap();
    let mut peer = Peer::spawn("frame-then-die", &[fifo.path().to_str().unwrap()]);
    peer.kill().unwrap();
    let mut framed = FramedReader::new(reader);
    let mut buf = [0u8; 1000];
    let err = framed.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
    assert!(err.is_cut_short(), "a writer that died mid-frame: {err}");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(
        err.to_string().contains("inside a frame (14 bytes"),
        "{err}"
    );
}

#[test]
fn many_writers_never_interleave_atomic_frames() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("many")).unwrap();
    let reader = fifo.open_reader().unwrap();
    let path = fifo.path().to_str().unwrap().to_owned();
    let mut writers: Vec<Peer> = (1..=4u8)
        .map(|id| Peer::spawn("many-writers", &[&path, &id.to_string()]))
        .collect();
    for w in &mut writers {
        w.send("go").unwrap();
    }
    let mut framed = FramedReader::new(reader);
    let mut next: HashMap<u8, u32> = HashMap::new();
    let mut buf = vec![0u8; PIPE_BUF];
    for _ in 0..4 * MESSAGES_PER_WRITER {
        let n = framed.recv_timeout(&mut buf, test_timeout()).unwrap();
        let msg = &buf[..n];
        let (id, seq) = (msg[0], u32::from_le_bytes(msg[1..5].try_into().unwrap()));
        assert_eq!(msg, &message(id, seq)[..], "frame from writer {id} damaged");
        let expected = next.entry(id).or_insert(0);
        assert_eq!(seq, *expected, "writer {id} out of order");
        *expected += 1;
    }
    for w in &mut writers {
        w.wait_success().unwrap();
    }
    assert_eq!(next.len(), 4);
    // All writers are gone: the stream ends between frames, a clean end.
    let end = framed.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    assert!(end.is_peer_gone() && !end.is_cut_short(), "{end}");
}

#[test]
fn atomic_writer_refuses_frames_above_pipe_buf() {
    let (_r, w) = pipe().unwrap();
    let mut framed = FramedWriter::new(w).atomic();
    let err = framed.send(&vec![0u8; PIPE_BUF]).unwrap_err();
    assert!(err.is_limit_exceeded());
    assert!(err.to_string().contains("PIPE_BUF"), "{err}");
    assert_eq!(
        framed.get_ref().unread_bytes().unwrap(),
        0,
        "nothing was written"
    );
}

#[test]
fn message_traits_over_a_pipe() {
    let (r, w) = pipe().unwrap();
    let mut tx = FramedWriter::new(w).with_max_message_size(100_000);
    let mut rx = FramedReader::new(r).with_max_message_size(100_000);
    let mut buf = vec![0u8; 100_000];
    assert!(rx.try_recv(&mut buf).unwrap_err().is_would_block());
    assert!(
        rx.recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    tx.try_send(b"small").unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 5);
    // A message larger than the pipe goes out while the reader drains it.
    let big: Vec<u8> = (0..90_000u32).map(|i| i as u8).collect();
    let sender = std::thread::spawn(move || {
        tx.send_timeout(&big, test_timeout()).unwrap();
        (tx, big)
    });
    let n = rx.recv_timeout(&mut buf, test_timeout()).unwrap();
    let (tx, big) = sender.join().unwrap();
    assert_eq!(&buf[..n], &big[..]);
    // A full pipe: try_send of a small frame says WouldBlock and sends nothing.
    let w = tx.into_inner();
    let capacity = w.capacity().unwrap();
    (&w).write_all(&vec![0u8; capacity - 2]).unwrap();
    let mut tx = FramedWriter::new(w);
    assert!(tx.try_send(b"abc").unwrap_err().is_would_block());
    assert_eq!(tx.get_ref().unread_bytes().unwrap(), capacity - 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random messages written through a real pipe in random chunks (so frames are split at
    /// random points) arrive exactly as sent.
    #[test]
    fn random_sizes_and_splits_round_trip(
        sizes in proptest::collection::vec(0usize..100_000, 1..10),
        chunks in proptest::collection::vec(1usize..20_000, 1..50),
    ) {
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (j as u8) ^ (i as u8).wrapping_mul(37)).collect())
            .collect();
        let mut wire = Vec::new();
        let mut encoder = FramedWriter::new(&mut wire);
        for m in &messages {
            encoder.send(m).unwrap();
        }
        let (r, w) = pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = chunks[i % chunks.len()].min(rest.len());
                (&w).write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
                i += 1;
            }
        });
        let mut rx = FramedReader::new(r);
        let mut buf = vec![0u8; 100_000];
        for expected in &messages {
            let n = rx.recv_timeout(&mut buf, test_timeout()).unwrap();
            prop_assert_eq!(&buf[..n], &expected[..]);
        }
        feeder.join().unwrap();
        prop_assert!(rx.recv(&mut buf).unwrap_err().is_peer_gone());
    }
}
