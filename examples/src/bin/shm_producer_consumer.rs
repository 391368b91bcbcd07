//! The producer-consumer problem between two processes over a shared-memory channel: a
//! million checksummed messages, none lost, duplicated or reordered.
//!
//! ```text
//! cargo run --release -p ipc-examples --bin shm_producer_consumer -- [MESSAGES]
//! ```
//!
//! The consumer creates a named channel and starts the producer as a separate process,
//! which opens the channel by name. Every message carries its sequence number, a payload
//! whose length varies, and a checksum over both; the consumer checks all three. When the
//! producer is done it drops its end, and the consumer learns it from the channel.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ipc_examples::spawn_self;
use ipc_shm::{ChannelOptions, IpcName};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MAX: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(&args[1..]),
        count => consumer(count.unwrap_or("1000000")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shm_producer_consumer: {err}");
            ExitCode::FAILURE
        }
    }
}

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(1 << 20)
        .max_message_size(MAX)
        .timeout(Duration::from_secs(10))
}

/// FNV-1a, enough to catch a torn or mixed-up message.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Message `seq`: the sequence number, a payload of varying length, and the checksum.
fn encode(seq: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    let len = usize::try_from(seq % (MAX as u64 - 12)).unwrap_or(0);
    buf.extend((0..len).map(|i| seq.to_le_bytes()[i % 8] ^ i.to_le_bytes()[0]));
    let sum = checksum(buf);
    buf.extend_from_slice(&sum.to_le_bytes());
}

fn producer(args: &[String]) -> Result<()> {
    let name = IpcName::new(args.first().ok_or("missing channel name")?.as_str())?;
    let count: u64 = args.get(1).ok_or("missing count")?.parse()?;
    let mut channel = options().open_producer(&name)?;
    let mut buf = Vec::with_capacity(MAX);
    for seq in 0..count {
        encode(seq, &mut buf);
        channel.send(&buf)?;
    }
    Ok(())
}

fn consumer(count: &str) -> Result<()> {
    let count: u64 = count.parse()?;
    let name = IpcName::unique("ipcrs-example-channel")?;
    let mut channel = options().create_consumer(&name)?;
    let mut child = spawn_self(
        &["producer", name.as_str(), &count.to_string()],
        Stdio::null(),
        Stdio::inherit(),
    )?;
    let start = Instant::now();
    let mut buf = vec![0u8; MAX];
    let mut expected = 0u64;
    loop {
        let n = match channel.recv_timeout(&mut buf, Duration::from_secs(10)) {
            Ok(n) => n,
            Err(err) if err.is_peer_gone() => break,
            Err(err) => return Err(err.into()),
        };
        let msg = &buf[..n];
        if n < 12 {
            return Err(format!("message {expected} is only {n} bytes").into());
        }
        let (body, sum) = msg.split_at(n - 4);
        if checksum(body) != u32::from_le_bytes(sum.try_into()?) {
            return Err(format!("message {expected} is damaged").into());
        }
        let seq = u64::from_le_bytes(body[..8].try_into()?);
        if seq != expected {
            return Err(format!("message {seq} arrived where {expected} was due").into());
        }
        expected += 1;
    }
    let elapsed = start.elapsed();
    if !child.wait()?.success() {
        return Err("the producer failed".into());
    }
    if expected != count {
        return Err(format!("{} messages lost", count - expected).into());
    }
    println!("consumer: {expected} messages, all in order and intact, none lost");
    println!(
        "consumer: {:.1} million messages/s",
        expected as f64 / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}
