//! Two processes talking in real-time signals with payloads: each value travels as the
//! integer of a `sigqueue`, is read with its sender through a `SignalFd`, and comes back
//! doubled on another signal.
//!
//! ```text
//! cargo run -p ipc-examples --bin signal_payloads -- [COUNT]
//! ```
//!
//! Real-time signals are queued by the kernel (up to `RLIMIT_SIGPENDING`), so none is
//! lost and they arrive in order; standard signals would coalesce. Each process blocks
//! the signals it reads before it starts any thread (here it has none), so no thread takes
//! them by their default action.

use std::io::{BufRead, BufReader};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_signal::{Signal, SignalFd};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(10);

fn request() -> Result<Signal> {
    Ok(Signal::realtime(1)?)
}

fn reply() -> Result<Signal> {
    Ok(Signal::realtime(2)?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("doubler") => doubler(&args[1..]),
        count => asker(count.unwrap_or("10")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signal_payloads: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Answers `count` requests: doubles each payload and queues it back to the sender.
fn doubler(args: &[String]) -> Result<()> {
    let count: u32 = args.first().ok_or("no count")?.parse()?;
    let requests = SignalFd::new(&[request()?])?;
    println!("{}", std::process::id());
    for _ in 0..count {
        let info = requests.recv_timeout(WAIT)?;
        ipc_signal::queue(info.pid, reply()?, info.value * 2)?;
    }
    Ok(())
}

fn asker(count: &str) -> Result<()> {
    let count: u32 = count.parse()?;
    // Blocked before the child exists, so that an early reply waits for us.
    let replies = SignalFd::new(&[reply()?])?;
    let mut child = spawn_self(
        &["doubler", &count.to_string()],
        Stdio::null(),
        Stdio::piped(),
    )?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no child output")?).read_line(&mut line)?;
    let doubler: u32 = line.trim().parse()?;
    for value in 1..=i32::try_from(count)? {
        ipc_signal::queue(doubler, request()?, value)?;
        let info = replies.recv_timeout(WAIT)?;
        if info.pid != doubler || info.value != value * 2 {
            return Err(format!("asked {value}, got {} from pid {}", info.value, info.pid).into());
        }
        println!(
            "asker: sent {value} on {}, got {} back on {} from pid {}",
            request()?,
            info.value,
            info.signal,
            info.pid
        );
    }
    if !child.wait()?.success() {
        return Err("the doubler failed".into());
    }
    println!("asker: {count} payloads doubled, none lost, all in order");
    Ok(())
}
