// Test patterns wrap indices into bytes on purpose.
#![allow(clippy::cast_possible_truncation)]

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use proptest::prelude::*;

use super::*;

/// An in-memory stream that hands out data in chunks of chosen sizes, accepts at most a
/// given number of bytes per write, and can pretend to be empty or full.
#[derive(Default)]
struct Wire {
    data: VecDeque<u8>,
    /// Sizes of successive reads; when exhausted, reads take whatever is there.
    chunks: VecDeque<usize>,
    closed: bool,
    /// Room left for writes; `None` is unlimited.
    room: Option<usize>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return if self.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let mut n = buf.len().min(self.data.len());
        if let Some(chunk) = self.chunks.pop_front() {
            n = n.min(chunk.max(1));
        }
        for b in &mut buf[..n] {
            *b = self.data.pop_front().unwrap_or_default();
        }
        Ok(n)
    }
}

impl ReadReady for Wire {
    fn try_read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read(buf).map_err(Error::from)
    }
    fn wait_readable(&self, _deadline: Deadline) -> Result<()> {
        if self.data.is_empty() && !self.closed {
            Err(Error::timed_out("wait_readable"))
        } else {
            Ok(())
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room.map_or(buf.len(), |room| room.min(buf.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.data.extend(&buf[..n]);
        if let Some(room) = &mut self.room {
            *room -= n;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WriteReady for Wire {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        // Like a pipe: a write that fits in PIPE_BUF is all or nothing.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= PIPE_BUF && self.room.is_some_and(|room| room < total) {
            return Err(Error::would_block("write"));
        }
        self.write_vectored(bufs).map_err(Error::from)
    }
    fn wait_writable(&self, _deadline: Deadline) -> Result<()> {
        if self.room == Some(0) {
            Err(Error::timed_out("wait_writable"))
        } else {
            Ok(())
        }
    }
}

fn framed(messages: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut w = FramedWriter::new(&mut wire);
    for m in messages {
        w.send(m).unwrap();
    }
    wire
}

#[test]
fn wire_format_is_length_then_payload() {
    assert_eq!(
        framed(&[b"abc", b""]),
        [3, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 0]
    );
}

#[test]
fn oversized_messages_are_refused_before_writing() {
    let mut wire = Vec::new();
    let mut w = FramedWriter::new(&mut wire).with_max_message_size(4);
    let err = w.send(b"12345").unwrap_err();
    assert_eq!(err.limit().unwrap().value(), 4);
    assert!(wire.is_empty());

    let mut wire = Vec::new();
    let mut w = FramedWriter::new(&mut wire).atomic();
    assert_eq!(w.max_message_size(), PIPE_BUF - 4);
    w.send(&[1; PIPE_BUF - 4]).unwrap();
    let err = w.send(&[1; PIPE_BUF - 3]).unwrap_err();
    assert!(err.to_string().contains("PIPE_BUF"), "{err}");
    assert_eq!(wire.len(), PIPE_BUF);
}

#[test]
fn too_small_buffer_keeps_the_message() {
    let wire = framed(&[b"hello world", b"x"]);
    let mut r = FramedReader::new(&wire[..]);
    let mut small = [0u8; 5];
    let err = r.recv(&mut small).unwrap_err();
    assert_eq!(err.needed_len(), Some(11));
    let mut big = [0u8; 64];
    assert_eq!(r.recv(&mut big).unwrap(), 11);
    assert_eq!(&big[..11], b"hello world");
    assert_eq!(r.recv(&mut big).unwrap(), 1);
    let end = r.recv(&mut big).unwrap_err();
    assert!(end.is_peer_gone() && !end.is_cut_short(), "{end}");
    assert!(end.to_string().contains("closed the stream"), "{end}");
}

#[test]
fn huge_length_is_rejected_without_allocating_and_poisons() {
    let mut wire = u32::MAX.to_le_bytes().to_vec();
    wire.extend_from_slice(b"junk");
    let mut r = FramedReader::new(&wire[..]).with_max_message_size(1024);
    let mut buf = vec![0u8; 16];
    let err = r.recv(&mut buf).unwrap_err();
    assert!(err.is_corrupted(), "{err}");
    assert!(err.to_string().contains("4294967295 bytes"));
    assert!(
        r.buf.len() <= 64 * 1024,
        "no allocation for the claimed length"
    );
    assert!(r.recv(&mut buf).unwrap_err().is_corrupted());
}

#[test]
fn end_of_stream_inside_a_frame_is_peer_gone() {
    for cut in [1, 3, 4, 5, 70_000] {
        let mut wire = framed(&[&vec![7u8; 100_000]]);
        wire.truncate(cut);
        let mut r = FramedReader::new(&wire[..]);
        let mut buf = vec![0u8; 100_000];
        let err = r.recv(&mut buf).unwrap_err();
        assert!(err.is_peer_gone() && err.is_cut_short(), "{cut}: {err}");
        assert!(err.to_string().contains("inside a frame"), "{cut}: {err}");
    }
}

#[test]
fn try_recv_keeps_partial_frames() {
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let full = framed(&[&message, b"next"]);
    let mut wire = Wire::default();
    let mut r = FramedReader::new(&mut wire);
    let mut buf = vec![0u8; 200_000];
    // Feed the frames a few kilobytes at a time; every try_recv before the end of a frame
    // must say WouldBlock and lose nothing.
    let mut fed = 0;
    let mut got = Vec::new();
    while got.len() < 2 {
        match MessageReceiver::try_recv(&mut r, &mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(err) if err.is_would_block() => {
                let next = (fed + 7_001).min(full.len());
                r.inner.data.extend(&full[fed..next]);
                fed = next;
            }
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(got[0], message);
    assert_eq!(got[1], b"next");
    let err =
        MessageReceiver::recv_timeout(&mut r, &mut buf, Duration::from_millis(1)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn try_send_is_all_or_nothing_for_small_frames() {
    let mut w = FramedWriter::new(Wire {
        room: Some(10),
        ..Wire::default()
    });
    let err = MessageSender::try_send(&mut w, b"0123456789").unwrap_err();
    assert!(err.is_would_block());
    assert!(w.get_ref().data.is_empty(), "nothing sent");
    MessageSender::try_send(&mut w, b"012345").unwrap();
    assert_eq!(w.get_ref().data.len(), 10);
}

#[test]
fn a_frame_cut_by_a_full_stream_is_accepted_and_finished_first() {
    let mut w = FramedWriter::new(Wire {
        room: Some(5000),
        ..Wire::default()
    });
    // Cut after 5000 bytes by the deadline: accepted, the rest kept.
    MessageSender::send_timeout(&mut w, &[1u8; 8000], Duration::from_millis(1)).unwrap();
    assert!(w.has_pending());
    // Nothing new is taken while the rest waits, and nothing of it is lost.
    let err = MessageSender::try_send(&mut w, b"next").unwrap_err();
    assert!(err.is_would_block(), "{err}");
    assert!(w.try_flush().unwrap_err().is_would_block());
    // The reader makes room: the rest goes first, then the next message.
    w.get_mut().room = Some(2000);
    w.try_flush().unwrap_err();
    w.get_mut().room = None;
    MessageSender::try_send(&mut w, b"next").unwrap();
    assert!(!w.has_pending());
    let bytes: Vec<u8> = w.get_mut().data.drain(..).collect();
    let mut r = FramedReader::new(&bytes[..]);
    let mut buf = vec![0u8; 8000];
    assert_eq!(r.recv(&mut buf).unwrap(), 8000);
    assert!(buf.iter().all(|&b| b == 1));
    assert_eq!(r.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"next");
}

#[test]
fn a_try_send_never_waits_for_the_rest_of_its_frame() {
    let mut w = FramedWriter::new(Wire {
        room: Some(3),
        ..Wire::default()
    });
    // Even the header is cut: three bytes out, the rest pending.
    MessageSender::try_send(&mut w, &[7u8; 6000]).unwrap();
    assert!(w.has_pending());
    assert_eq!(w.get_ref().data.len(), 3);
    // A blocking send finishes the rest before its own frame.
    w.get_mut().room = None;
    w.send(b"after").unwrap();
    let bytes: Vec<u8> = w.get_mut().data.drain(..).collect();
    let mut r = FramedReader::new(&bytes[..]);
    let mut buf = vec![0u8; 6000];
    assert_eq!(r.recv(&mut buf).unwrap(), 6000);
    assert_eq!(r.recv(&mut buf).unwrap(), 5);
}

#[test]
fn a_frame_left_pending_at_the_end_is_reported_cut_never_delivered() {
    let mut w = FramedWriter::new(Wire {
        room: Some(5000),
        ..Wire::default()
    });
    MessageSender::try_send(&mut w, &[1u8; 8000]).unwrap();
    // Dropped without a flush: the reader never sees a partial message.
    let bytes: Vec<u8> = w.into_inner().data.drain(..).collect();
    let err = FramedReader::new(&bytes[..])
        .recv(&mut [0u8; 8000])
        .unwrap_err();
    assert!(err.is_peer_gone() && err.is_cut_short(), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random messages, split at random points by the stream, come out exactly as sent,
    /// through both the blocking and the non-blocking receive.
    #[test]
    fn random_messages_and_splits_round_trip(
        sizes in proptest::collection::vec(0usize..70_000, 1..12),
        chunks in proptest::collection::vec(1usize..9_000, 0..200),
        seed in any::<u8>(),
        non_blocking in any::<bool>(),
    ) {
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8 ^ seed)).collect())
            .collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let bytes = framed(&refs);
        let wire = Wire { data: bytes.into(), chunks: chunks.into(), closed: true, room: None };
        let mut r = FramedReader::new(wire);
        let mut buf = vec![0u8; 70_000];
        for expected in &messages {
            let n = if non_blocking {
                MessageReceiver::try_recv(&mut r, &mut buf).unwrap()
            } else {
                r.recv(&mut buf).unwrap()
            };
            prop_assert_eq!(&buf[..n], &expected[..]);
        }
        prop_assert!(r.recv(&mut buf).unwrap_err().is_peer_gone());
    }
}
