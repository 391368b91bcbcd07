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
