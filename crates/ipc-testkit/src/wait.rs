//! Waiting for a condition that another process or thread brings about, with a deadline,
//! instead of sleeping for a time that is usually long enough.

use std::io;
use std::time::{Duration, Instant};

use ipc_core::Deadline;

/// Waits until `condition` holds, checking it often (yielding at first, then every
/// millisecond), at most until `deadline`.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let done = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     s.spawn(|| done.store(true, Ordering::SeqCst));
///     ipc_testkit::wait_until(ipc_testkit::test_deadline(), || done.load(Ordering::SeqCst))
///         .expect("the thread never finished");
/// });
/// ```
///
/// # Errors
///
/// `TimedOut` if it still does not hold at the deadline.
pub fn wait_until(deadline: Deadline, mut condition: impl FnMut() -> bool) -> io::Result<()> {
    let started = Instant::now();
    loop {
        if condition() {
            return Ok(());
        }
        if deadline.has_expired() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the condition did not hold within {:?}", started.elapsed()),
            ));
        }
        // A condition that another process sets usually holds within microseconds: yield
        // for the first millisecond, then poll gently.
        if started.elapsed() < Duration::from_millis(1) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(
                Duration::from_millis(1)
                    .min(deadline.remaining().unwrap_or(Duration::from_millis(1))),
            );
        }
    }
}

/// Pauses for `duration`: for the timing of fault injection (kill a process at a random
/// moment) and for pacing a flood, never for ordering events, which [`wait_until`] does.
pub fn pause(duration: Duration) {
    std::thread::sleep(duration);
}
