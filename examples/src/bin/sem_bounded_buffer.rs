//! The producer-consumer problem the classic way: a bounded buffer in shared memory,
//! guarded by two counting semaphores (empty and full slots) and a mutex, between two
//! processes.
//!
//! ```text
//! cargo run --release -p ipc-examples --bin sem_bounded_buffer -- [ITEMS]
//! ```
//!
//! The consumer creates a named segment holding the semaphores, the mutex (which guards the
//! ring's two positions) and the slots, and starts the producer as a separate process,
//! which opens the segment by name and the objects in it by offset. Every item carries its
//! sequence number and a checksum; the consumer checks both. Waits have timeouts, so a
//! producer that dies leaves the consumer with an error, not a hang.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ipc_examples::spawn_self;
use ipc_sem::{IpcName, MutexOptions, RobustMutex, Semaphore, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Slots in the buffer, and where everything lives in the segment.
const SLOTS: u32 = 16;
const EMPTY_AT: usize = 0;
const FULL_AT: usize = 64;
const POSITIONS_AT: usize = 128;
const SLOTS_AT: usize = 256;
const SLOT: usize = 16;
const SIZE: usize = SLOTS_AT + SLOTS as usize * SLOT;

const WAIT: Duration = Duration::from_secs(10);

/// The buffer's shared state, as this process sees it.
struct Buffer<'a> {
    segment: &'a SharedMemory,
    /// Free slots: the producer takes one, the consumer gives it back.
    empty: Semaphore<&'a SharedMemory>,
    /// Filled slots: the producer gives one, the consumer takes it.
    full: Semaphore<&'a SharedMemory>,
    /// The next slot to fill and the next to empty.
    positions: RobustMutex<&'a SharedMemory, [u64; 2]>,
}

impl<'a> Buffer<'a> {
    fn create(segment: &'a SharedMemory) -> Result<Self> {
        Ok(Buffer {
            segment,
            empty: SemaphoreOptions::new()
                .initial(SLOTS)
                .max(SLOTS)
                .init_in(segment, EMPTY_AT)?,
            full: SemaphoreOptions::new()
                .max(SLOTS)
                .init_in(segment, FULL_AT)?,
            positions: MutexOptions::new().init_in(segment, POSITIONS_AT, [0, 0])?,
        })
    }

    fn open(segment: &'a SharedMemory) -> Result<Self> {
        Ok(Buffer {
            segment,
            empty: SemaphoreOptions::new().open_in(segment, EMPTY_AT)?,
            full: SemaphoreOptions::new().open_in(segment, FULL_AT)?,
            positions: MutexOptions::new().open_in(segment, POSITIONS_AT)?,
        })
    }

    /// Takes the next position of `which` (0 to fill, 1 to empty) under the mutex. A holder
    /// that died between reading and advancing a position left it unchanged, so the value
    /// is still right: mark it consistent and go on.
    fn next(&self, which: usize) -> Result<usize> {
        let guard = match self.positions.lock_timeout(WAIT)? {
            ipc_sem::Locked::Clean(guard) => guard,
            ipc_sem::Locked::OwnerDied(recovery) => recovery.mark_consistent()?,
        };
        let mut positions = guard.get();
        let slot = positions[which] % u64::from(SLOTS);
        positions[which] += 1;
        guard.set(positions);
        Ok(SLOTS_AT + usize::try_from(slot)? * SLOT)
    }

    fn put(&self, item: u64) -> Result<()> {
        self.empty.wait_timeout(WAIT)?;
        let at = self.next(0)?;
        self.segment.write(at, &item)?;
        self.segment.write(at + 8, &checksum(item))?;
        self.full.post()?;
        Ok(())
    }

    fn take(&self) -> Result<u64> {
        self.full.wait_timeout(WAIT)?;
        let at = self.next(1)?;
        let item: u64 = self.segment.read(at)?;
        let sum: u64 = self.segment.read(at + 8)?;
        self.empty.post()?;
        if sum != checksum(item) {
            return Err(format!("item {item} is damaged").into());
        }
        Ok(item)
    }
}

fn checksum(item: u64) -> u64 {
    item.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(&args[1..]),
        count => consumer(count.unwrap_or("200000")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sem_bounded_buffer: {err}");
            ExitCode::FAILURE
        }
    }
}

fn producer(args: &[String]) -> Result<()> {
    let name = IpcName::new(args.first().ok_or("missing segment name")?.as_str())?;
    let count: u64 = args.get(1).ok_or("missing count")?.parse()?;
    let segment = ShmOptions::new().open(&name)?;
    let buffer = Buffer::open(&segment)?;
    for item in 0..count {
        buffer.put(item)?;
    }
    Ok(())
}

fn consumer(count: &str) -> Result<()> {
    let count: u64 = count.parse()?;
    let name = IpcName::unique("ipcrs-example-buffer")?;
    let segment = ShmOptions::new().size(SIZE).create(&name)?;
    let buffer = Buffer::create(&segment)?;
    let mut child = spawn_self(
        &["producer", name.as_str(), &count.to_string()],
        Stdio::null(),
        Stdio::inherit(),
    )?;
    let start = Instant::now();
    for expected in 0..count {
        let item = buffer.take()?;
        if item != expected {
            return Err(format!("item {item} arrived where {expected} was due").into());
        }
    }
    let elapsed = start.elapsed();
    if !child.wait()?.success() {
        return Err("the producer failed".into());
    }
    println!("consumer: {count} items through {SLOTS} slots, all in order and intact");
    println!(
        "consumer: {:.0} thousand items/s (two semaphore operations and a lock per item)",
        count as f64 / elapsed.as_secs_f64() / 1e3
    );
    Ok(())
}
