//! A server that shuts down cleanly on SIGTERM: it stops taking work, finishes what it
//! has, and its named objects are removed on the way out.
//!
//! ```text
//! cargo run -p ipc-examples --bin signal_shutdown
//! ```
//!
//! The program starts the server as a separate process, which creates a request queue and
//! a named semaphore and serves requests until a shutdown signal arrives. It waits in a
//! plain blocking receive: the shutdown handler cancels the process's waits, so the signal
//! ends the receive with a cancelled error, and the server serves what is still queued
//! (only waits are cancelled) and leaves. The supervisor sends a few requests, then asks
//! the server to terminate (SIGTERM, with SIGKILL after a grace period), and checks that
//! both names are gone.

use std::io::{BufRead, BufReader};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_mq::{Direction, IpcName, QueueOptions};
use ipc_sem::SemaphoreOptions;
use ipc_signal::{Process, ShutdownOptions, Termination};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(&args[1..]),
        _ => supervisor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("signal_shutdown: {err}");
            ExitCode::FAILURE
        }
    }
}

fn server(args: &[String]) -> Result<()> {
    let queue_name = IpcName::new(args.first().ok_or("no queue name")?.as_str())?;
    let sem_name = IpcName::new(args.get(1).ok_or("no semaphore name")?.as_str())?;
    // Installed before the objects exist, so that no signal can find them half made.
    let shutdown = ShutdownOptions::new().force_exit_on_second(2).install()?;
    let requests = QueueOptions::new()
        .max_message_size(64)
        .create(&queue_name)?;
    let served = SemaphoreOptions::new().create(&sem_name)?;
    println!("ready");
    let mut count = 0u32;
    let mut buf = vec![0u8; requests.max_message_size()];
    let mut handle = |request: &[u8]| -> Result<()> {
        count += 1;
        println!("server: handled {:?}", String::from_utf8_lossy(request));
        Ok(served.post()?)
    };
    loop {
        match requests.recv(&mut buf) {
            Ok(len) => handle(&buf[..len])?,
            // The shutdown signal ended the wait.
            Err(err) if err.is_cancelled() => break,
            Err(err) => return Err(err.into()),
        }
    }
    // What is queued is still served: only waits are cancelled.
    while let Ok(len) = requests.try_recv(&mut buf) {
        handle(&buf[..len])?;
    }
    let signal = shutdown.signal().map_or("?".into(), |s| s.to_string());
    println!("server: {signal} received after {count} requests; removing my queue and semaphore");
    // `requests` and `served` are dropped here: their creator removes their names.
    Ok(())
}

fn supervisor() -> Result<()> {
    let queue_name = IpcName::unique("ipcrs-example-requests")?;
    let sem_name = IpcName::unique("ipcrs-example-served")?;
    let mut child = spawn_self(
        &["server", queue_name.as_str(), sem_name.as_str()],
        Stdio::null(),
        Stdio::piped(),
    )?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no server output")?).lines();
    if lines.next().transpose()?.as_deref() != Some("ready") {
        return Err("the server did not start".into());
    }
    let requests = QueueOptions::new().open(&queue_name, Direction::Send)?;
    let served = SemaphoreOptions::new().open(&sem_name)?;
    for job in ["first", "second", "third"] {
        requests.send(job.as_bytes())?;
        served.wait_timeout(Duration::from_secs(5))?;
    }
    let server = Process::open(child.id())?;
    let how = server.terminate(Duration::from_secs(5))?;
    for line in lines {
        println!("{}", line?);
    }
    let status = child.wait()?;
    println!(
        "supervisor: the server ended {} ({status})",
        match how {
            Termination::Graceful => "gracefully",
            Termination::Killed => "killed after the grace period",
        }
    );
    // A zero timeout: look at the names now instead of waiting for them to appear.
    let not_found = |err: &ipc_mq::Error| err.kind() == std::io::ErrorKind::NotFound;
    let queue_gone = QueueOptions::new()
        .timeout(Duration::ZERO)
        .open(&queue_name, Direction::Send)
        .is_err_and(|err| not_found(&err));
    let sem_gone = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open(&sem_name)
        .is_err_and(|err| not_found(&err));
    println!("supervisor: queue removed: {queue_gone}, semaphore removed: {sem_gone}");
    if !(status.success() && queue_gone && sem_gone) {
        return Err("the server did not shut down cleanly".into());
    }
    Ok(())
}
