//! A table in shared memory: a producer writes it, consumers read it, twice over.
//!
//! ```text
//! cargo run -p ipc-examples --bin shm_table
//! ```
//!
//! 1. A named segment (`shm_open`): the producer creates it with a layout header, fills the
//!    table and only then marks it ready; a consumer process opens it by name, read-only,
//!    waits for the ready mark, checks the layout and prints the table. The producer's
//!    drop removes the name.
//! 2. A sealed memfd: the producer fills an anonymous segment, seals it so that its size is
//!    fixed and only the producer can write, and hands the descriptor to a child as its
//!    stdin. The child verifies the seals before mapping it, so nothing it receives could
//!    crash it.

use std::os::fd::{AsFd, OwnedFd};
use std::process::{ExitCode, Stdio};

use ipc_examples::spawn_self;
use ipc_shm::{IpcName, Layout, MemfdOptions, Seals, SharedMemory, ShmOptions, ShmSafe};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// "QUOTES" and the table's layout version.
const TABLE: Layout = Layout::new(u64::from_le_bytes(*b"QUOTES\0\0"), 1);
const ROWS: usize = 5;

/// One row of the table, laid out the same in every process.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Quote {
    symbol: [u8; 8],
    price_cents: u64,
    volume: u64,
}

// Declaring a type safe for shared memory is a promise the compiler cannot check, hence
// `unsafe`; this is the only unsafe line of the example.
// SAFETY: `repr(C)`, only integers and a byte array, no padding (8 + 8 + 8 bytes), and every
// bit pattern is a valid value.
#[allow(unsafe_code)]
unsafe impl ShmSafe for Quote {}
const _: () = assert!(std::mem::size_of::<Quote>() == 24);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("consumer") => args
            .get(1)
            .ok_or_else(|| "missing segment name".into())
            .and_then(|name| consume_named(name)),
        Some("memfd-child") => consume_memfd(),
        _ => produce(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shm_table: {err}");
            ExitCode::FAILURE
        }
    }
}

fn quotes() -> [Quote; ROWS] {
    let names = [
        b"ACME\0\0\0\0",
        b"GLOBEX\0\0",
        b"INITECH\0",
        b"UMBRELLA",
        b"HOOLI\0\0\0",
    ];
    std::array::from_fn(|i| Quote {
        symbol: *names[i],
        price_cents: 10_000 + 137 * i as u64,
        volume: 1_000 * (i as u64 + 1),
    })
}

fn write_table(segment: &SharedMemory) -> ipc_shm::Result<()> {
    let base = segment.data_offset();
    for (i, quote) in quotes().iter().enumerate() {
        segment.write(base + i * std::mem::size_of::<Quote>(), quote)?;
    }
    Ok(())
}

fn print_table(who: &str, segment: &SharedMemory) -> Result<()> {
    let base = segment.data_offset();
    for i in 0..ROWS {
        // Whatever bytes are there, a `Quote` read from them is a valid value.
        let quote: Quote = segment.read(base + i * std::mem::size_of::<Quote>())?;
        let symbol = String::from_utf8_lossy(&quote.symbol)
            .trim_end_matches('\0')
            .to_owned();
        println!(
            "{who}: {symbol:<8} {:>8.2} x {}",
            quote.price_cents as f64 / 100.0,
            quote.volume
        );
    }
    Ok(())
}

fn produce() -> Result<()> {
    // 1. A named segment, opened by name in another process.
    let name = IpcName::unique("ipcrs-example-quotes")?;
    let segment = ShmOptions::new()
        .size(4096)
        .layout(TABLE)
        .create_with(&name, write_table)?;
    println!("producer: wrote {ROWS} rows into {name}");
    let status = spawn_self(
        &["consumer", name.as_str()],
        Stdio::null(),
        Stdio::inherit(),
    )?
    .wait()?;
    if !status.success() {
        return Err("the named-segment consumer failed".into());
    }
    drop(segment);
    println!(
        "producer: {name} removed: {}",
        !std::path::Path::new("/dev/shm")
            .join(name.file_name())
            .exists()
    );

    // 2. A sealed memfd handed to a child as its stdin.
    let memfd = MemfdOptions::new(4096)
        .layout(TABLE)
        .seals(Seals::default().with(Seals::FUTURE_WRITE))
        .create_with(write_table)?;
    let fd: OwnedFd = memfd.as_fd().try_clone_to_owned()?;
    let status = spawn_self(&["memfd-child"], Stdio::from(fd), Stdio::inherit())?.wait()?;
    if !status.success() {
        return Err("the memfd child failed".into());
    }
    Ok(())
}

fn consume_named(name: &str) -> Result<()> {
    let segment = ShmOptions::new()
        .layout(TABLE)
        .read_only(true)
        .open(&IpcName::new(name)?)?;
    print_table("consumer", &segment)
}

fn consume_memfd() -> Result<()> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    // Refuses anything that is not a memfd sealed against shrinking; maps read-only here
    // because the producer sealed it against writes by others.
    let segment = ipc_shm::ReceiveOptions::new().layout(TABLE).map(fd)?;
    println!(
        "child: seals {:?}, writable here: {}",
        segment.seals()?,
        segment.is_writable()
    );
    print_table("child", &segment)
}
