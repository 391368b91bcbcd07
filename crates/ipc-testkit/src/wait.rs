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

/// Checks what an open of a name that does not exist does with a short timeout: it waits
/// the whole timeout (a lower bound on time, never an upper one), then fails with
/// `NotFound` naming `option` (such as `"QueueOptions::timeout"`), the setter of the wait.
/// `open` opens with the timeout it is given.
///
/// # Panics
///
/// If the open succeeds, fails otherwise, or returns early.
pub fn assert_open_waits_then_not_found<T>(
    option: &str,
    open: impl FnOnce(std::time::Duration) -> ipc_core::Result<T>,
) {
    let timeout = std::time::Duration::from_millis(30);
    let started = std::time::Instant::now();
    let Err(err) = open(timeout) else {
        panic!("an open of a name nobody made succeeded");
    };
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(option), "{err}");
    assert!(
        started.elapsed() >= timeout,
        "the open returned before its timeout"
    );
}
