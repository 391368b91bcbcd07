//! A zero-copy stream of 1 MiB "image frames" through a shared-memory channel.
//!
//! ```text
//! cargo run --release -p ipc-examples --bin shm_frames -- [FRAMES]
//! ```
//!
//! The producer loans 1 MiB in the ring and draws each frame directly there, row by row,
//! then commits it; the consumer borrows each frame in place, checks its header and a few
//! pixels, and releases it. No frame is ever assembled in private memory and copied: the
//! channel's memory is the frame buffer.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ipc_examples::spawn_self;
use ipc_shm::{ChannelOptions, IpcName, WaitStrategy};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const WIDTH: usize = 1024;
const HEIGHT: usize = 1024;
const HEADER: usize = 16;
/// A frame is exactly 1 MiB: the header, then the pixels (the last row 16 bytes short).
const FRAME: usize = WIDTH * HEIGHT;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(&args[1..]),
        frames => consumer(frames.unwrap_or("500")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shm_frames: {err}");
            ExitCode::FAILURE
        }
    }
}

fn options() -> ChannelOptions {
    // Room for several frames, so that drawing and checking overlap.
    ChannelOptions::new()
        .capacity(8 << 20)
        .max_message_size(FRAME)
        .wait_strategy(WaitStrategy::default())
        .timeout(Duration::from_secs(10))
}

/// The pixel at `(x, y)` of frame `n`.
fn pixel(n: u64, x: usize, y: usize) -> u8 {
    // Only the low byte matters: the pattern wraps on purpose.
    (n.to_le_bytes()[0])
        .wrapping_add(x.to_le_bytes()[0])
        .wrapping_mul(3)
        .wrapping_add(y.to_le_bytes()[0])
}

fn producer(args: &[String]) -> Result<()> {
    let name = IpcName::new(args.first().ok_or("missing channel name")?.as_str())?;
    let frames: u64 = args.get(1).ok_or("missing frame count")?.parse()?;
    let mut channel = options().open_producer(&name)?;
    let mut row = vec![0u8; WIDTH];
    for n in 0..frames {
        let mut frame = channel.loan(FRAME)?;
        frame.write::<u64>(0, &n)?;
        frame.write::<u32>(8, &u32::try_from(WIDTH)?)?;
        frame.write::<u32>(12, &u32::try_from(HEIGHT)?)?;
        // Rows go straight into the ring; the last row is shorter by the header.
        for y in 0..HEIGHT {
            for (x, p) in row.iter_mut().enumerate() {
                *p = pixel(n, x, y);
            }
            let at = HEADER + y * WIDTH;
            let len = WIDTH.min(FRAME - at);
            frame.write_at(at, &row[..len])?;
        }
        frame.commit()?;
    }
    Ok(())
}

fn consumer(frames: &str) -> Result<()> {
    let frames: u64 = frames.parse()?;
    let name = IpcName::unique("ipcrs-example-frames")?;
    let mut channel = options().create_consumer(&name)?;
    let mut child = spawn_self(
        &["producer", name.as_str(), &frames.to_string()],
        Stdio::null(),
        Stdio::inherit(),
    )?;
    let start = Instant::now();
    let mut seen = 0u64;
    loop {
        let frame = match channel.borrow_timeout(Duration::from_secs(10)) {
            Ok(frame) => frame,
            Err(err) if err.is_peer_gone() => break,
            Err(err) => return Err(err.into()),
        };
        let n: u64 = frame.read(0)?;
        let (width, height): (u32, u32) = (frame.read(8)?, frame.read(12)?);
        if n != seen || width as usize != WIDTH || height as usize != HEIGHT {
            return Err(
                format!("frame {n} ({width}x{height}) arrived where frame {seen} was due").into(),
            );
        }
        for (x, y) in [(0, 0), (WIDTH - 1, 0), (17, 400), (WIDTH / 2, HEIGHT - 2)] {
            let mut got = [0u8; 1];
            frame.read_at(HEADER + y * WIDTH + x, &mut got)?;
            if got[0] != pixel(n, x, y) {
                return Err(format!("frame {n} has a wrong pixel at ({x}, {y})").into());
            }
        }
        seen += 1;
        // Dropping `frame` gives its megabyte back to the producer.
    }
    let elapsed = start.elapsed();
    if !child.wait()?.success() {
        return Err("the producer failed".into());
    }
    if seen != frames {
        return Err(format!("{} frames lost", frames - seen).into());
    }
    println!("consumer: {seen} frames of 1 MiB, in order, checked in place");
    println!(
        "consumer: {:.0} frames/s ({:.1} GiB/s)",
        seen as f64 / elapsed.as_secs_f64(),
        seen as f64 * FRAME as f64 / elapsed.as_secs_f64() / (1u64 << 30) as f64
    );
    Ok(())
}
