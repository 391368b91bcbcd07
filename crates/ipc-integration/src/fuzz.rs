//! Fuzz targets: the decoders and validators that read what another process wrote. Each
//! takes arbitrary bytes and must return without panicking, whatever they are. The
//! cargo-fuzz targets in `fuzz/` call them; `cargo xtask test` replays their corpora and a
//! few thousand deterministic mutations of it.

use std::os::fd::AsFd;
use std::time::Duration;

use ipc_core::FramedReader;
use ipc_shm::{ChannelOptions, HEADER_LEN, Layout, MemfdOptions, ReceiveOptions, Seals};

/// The length-prefixed frame decoder over a stream of `data`: the first byte picks the
/// maximum message size.
pub fn frames(data: &[u8]) {
    let (max, stream) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first) * 64 + 1, rest),
        None => (64, data),
    };
    let mut reader = FramedReader::new(stream).with_max_message_size(max);
    let mut buf = vec![0u8; max];
    // Every outcome is fine but a panic: a frame, an error, the end.
    for _ in 0..1024 {
        if reader.recv(&mut buf).is_err() {
            break;
        }
    }
}

/// A shared-memory channel whose segment (from its header on) another process overwrote
/// with `data`: both ends keep working or report errors, and a new consumer attaching to
/// it validates everything it reads.
pub fn channel(data: &[u8]) {
    let Ok((mut producer, mut consumer)) = ChannelOptions::new()
        .capacity(4096)
        .max_message_size(256)
        .timeout(Duration::from_millis(1))
        .channel()
    else {
        return;
    };
    let segment = producer.segment();
    let room = segment.len().saturating_sub(HEADER_LEN);
    let _ = segment.write_at(HEADER_LEN, &data[..data.len().min(room)]);
    let mut buf = [0u8; 256];
    for i in 0..16u8 {
        let _ = producer.try_send(&[i; 40]);
        let _ = consumer.try_recv(&mut buf);
        if let Ok(message) = consumer.try_borrow() {
            let _ = message.read_at(0, &mut buf[..message.len().min(256)]);
        }
    }
    if let Ok(fd) = consumer.segment().as_fd().try_clone_to_owned() {
        drop(consumer);
        if let Ok(mut again) = ChannelOptions::new().consumer_from_fd(fd) {
            let _ = again.try_recv(&mut buf);
        }
    }
}

/// Endpoints attaching to a channel whose positions a previous (or hostile) endpoint left
/// anywhere: bytes 0..8 and 8..16 of `data` are the producer's and the consumer's positions
/// (little-endian), byte 16 the ring's size (4 KiB to 64 KiB) and the rest a script of
/// sends and receives of various sizes. Attaching refuses impossible positions; from
/// possible ones, everything sent is received whole.
pub fn channel_positions(data: &[u8]) {
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = data.get(at + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(bytes)
    };
    let (head, tail) = (word(0), word(8));
    let capacity = 4096 << (data.get(16).copied().unwrap_or(0) % 5);
    let options = ChannelOptions::new()
        .capacity(capacity)
        .timeout(Duration::from_millis(1));
    let Ok((producer, consumer)) = options.channel() else {
        return;
    };
    let fd = |segment: &ipc_shm::SharedMemory| segment.as_fd().try_clone_to_owned();
    let (Ok(producer_fd), Ok(consumer_fd)) = (fd(producer.segment()), fd(consumer.segment()))
    else {
        return;
    };
    // The positions sit at bytes 128 and 256 (see the channel's layout).
    for (offset, value) in [(128, head), (256, tail)] {
        if let Ok(position) = producer.segment().atomic_u64(offset) {
            position.store(value, std::sync::atomic::Ordering::SeqCst);
        }
    }
    drop((producer, consumer));
    let (Ok(mut producer), Ok(mut consumer)) = (
        options.producer_from_fd(producer_fd),
        options.consumer_from_fd(consumer_fd),
    ) else {
        return;
    };
    let max = producer.max_message_size();
    let mut buf = vec![0u8; max];
    let mut sent = std::collections::VecDeque::new();
    for &op in data.get(17..).unwrap_or_default() {
        let len = usize::from(op) * max / 255;
        if op % 2 == 0 {
            if producer.try_send(&vec![op; len]).is_ok() {
                sent.push_back(len);
            }
        } else if let Ok(n) = consumer.try_recv(&mut buf) {
            // Attached at possible positions, the two ends agree on every message.
            assert_eq!(Some(n), sent.pop_front(), "a message received out of turn");
        }
    }
}

const LAYOUT: Layout = Layout::new(u64::from_le_bytes(*b"FUZZSEGM"), 1);

/// A segment received from another process whose every byte, header included, is `data`:
/// mapping it with a layout checks size, seals, magic, version and state.
pub fn segment(data: &[u8]) {
    let size = data.len().clamp(HEADER_LEN, 1 << 16);
    let Ok(memfd) = MemfdOptions::new(size).seals(Seals::default()).create() else {
        return;
    };
    let _ = memfd.write_at(0, &data[..data.len().min(size)]);
    let Ok(fd) = memfd.as_fd().try_clone_to_owned() else {
        return;
    };
    if let Ok(mapped) = ReceiveOptions::new().layout(LAYOUT).map(fd) {
        let _ = mapped.read::<u64>(mapped.data_offset());
    }
}
