//! What happens when a process dies holding a lock: a worker crashes in the middle of a
//! transfer between two accounts in shared memory, and the next process to lock repairs
//! the books.
//!
//! ```text
//! cargo run -p ipc-examples --bin sem_crash_recovery
//! ```
//!
//! The accounts live in a named segment, guarded by a [`RobustMutex`]. Each transfer
//! records what it is doing before it touches the balances, so that whoever finds a dead
//! holder can roll the transfer back. The worker also holds a permit of an
//! [`UndoSemaphore`](ipc_sem::UndoSemaphore) (a pool of one "transfer slot"): the kernel gives it back when the
//! worker dies, where a POSIX semaphore would have lost it.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ipc_examples::spawn_self;
use ipc_sem::{IpcName, Locked, MutexOptions, RobustMutex, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The books: balance A, balance B, and the transfer in progress (amount, 0 if none).
type Books = [u64; 3];
const TOTAL: u64 = 1000;

fn books(segment: &SharedMemory) -> Result<RobustMutex<&SharedMemory, Books>> {
    Ok(MutexOptions::new().open_in(segment, 0)?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("worker") => worker(&args[1..]),
        _ => supervisor(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sem_crash_recovery: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the transfer slot and moves 300 from A to B, but crashes half-way: after the
/// debit, before the credit, holding both the lock and the permit.
fn worker(args: &[String]) -> Result<()> {
    let segment =
        ShmOptions::new().open(&IpcName::new(args.first().ok_or("no segment")?.as_str())?)?;
    let slots = SemaphoreOptions::new()
        .open_undo(&IpcName::new(args.get(1).ok_or("no pool")?.as_str())?)?;
    let books = books(&segment)?;
    slots.acquire()?.forget();
    let guard = books.lock()?.clean()?;
    let [a, b, _] = guard.get();
    guard.set([a, b, 300]); // the journal first
    guard.set([a - 300, b, 300]); // the debit
    println!("worker: debited 300 from A, crashing before the credit");
    // A crash as hard as it gets: no destructor, no unlock, no post.
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
    unreachable!("SIGKILL cannot be caught");
}

fn supervisor() -> Result<()> {
    let segment_name = IpcName::unique("ipcrs-example-books")?;
    let pool_name = IpcName::unique("ipcrs-example-slots")?;
    let segment = ShmOptions::new().size(4096).create(&segment_name)?;
    let books: RobustMutex<_, Books> = MutexOptions::new().init_in(&segment, 0, [TOTAL, 0, 0])?;
    let slots = SemaphoreOptions::new().initial(1).create_undo(&pool_name)?;

    let status = spawn_self(
        &["worker", segment_name.as_str(), pool_name.as_str()],
        Stdio::null(),
        Stdio::inherit(),
    )?
    .wait()?;
    println!("supervisor: the worker died ({status})");

    // The transfer slot came back with the worker's death.
    let _slot = slots.acquire_timeout(Duration::from_secs(5))?;
    println!("supervisor: the worker's transfer slot was returned by the kernel");

    match books.lock_timeout(Duration::from_secs(5))? {
        Locked::Clean(_) => return Err("the worker's death went unnoticed".into()),
        Locked::OwnerDied(recovery) => {
            let [a, b, pending] = recovery.get();
            println!(
                "supervisor: the lock's holder died; books read A={a} B={b} in flight={pending} (sum {})",
                a + b
            );
            // Roll the unfinished transfer back: it was journalled before the debit.
            recovery.set([a + pending, b, 0]);
            let guard = recovery.mark_consistent()?;
            let [a, b, _] = guard.get();
            println!("supervisor: rolled back; A={a} B={b} (sum {})", a + b);
            if a + b != TOTAL {
                return Err("the books do not balance".into());
            }
        }
    }

    // Business as usual: the mutex stayed usable.
    let guard = books.lock()?.clean()?;
    let [a, b, _] = guard.get();
    guard.set([a - 300, b + 300, 0]);
    let [a, b, _] = guard.get();
    println!("supervisor: transfer done; A={a} B={b} (sum {})", a + b);
    Ok(())
}
