//! Waiting on a POSIX semaphore without blocking or with a deadline, shared by the named
//! and the unnamed semaphore.

use std::time::Duration;

use ipc_core::{Clock, Deadline, Error, Result};

use crate::sys::{self, RawSem};

/// `sem_trywait`, with `EAGAIN` as `WouldBlock` and `EINTR` retried.
pub(crate) fn try_wait(sem: RawSem<'_>, subject: &str) -> Result<()> {
    ipc_core::internal::retry_eintr(|| {
        sem.try_wait().map_err(|e| match e.raw_os_error() {
            Some(libc::EAGAIN) => Error::would_block("sem_trywait").with_subject(subject),
            _ => e.with_subject(subject),
        })
    })
}

/// How long one sleep lasts at most while a cancellation token is watched: semaphores have
/// no descriptor to poll beside it, and a signal interrupts only the thread it lands on.
pub(crate) const CANCEL_SLICE: Duration = Duration::from_millis(20);

/// `sem_wait`, with `EINTR` retried; in slices while a cancellation token is watched.
#[inline]
pub(crate) fn wait(sem: RawSem<'_>, subject: &str) -> Result<()> {
    if !ipc_core::internal::cancellation_watched() {
        return ipc_core::internal::retry_eintr(|| sem.wait().map_err(|e| e.with_subject(subject)));
    }
    wait_until(sem, Deadline::NEVER, subject)
}

/// `sem_clockwait` (or `sem_timedwait`) until `timeout` from now, resumed after `EINTR`
/// for the time left.
pub(crate) fn wait_timeout(sem: RawSem<'_>, timeout: Duration, subject: &str) -> Result<()> {
    wait_until(sem, Deadline::after(timeout), subject)
}

/// Waits until `deadline`, a slice at a time while a cancellation token is watched,
/// checking it between slices.
fn wait_until(sem: RawSem<'_>, deadline: Deadline, subject: &str) -> Result<()> {
    let op = match sys::wait_clock() {
        Clock::Monotonic => "sem_clockwait",
        Clock::Realtime => "sem_timedwait",
    };
    loop {
        let slice = if ipc_core::internal::cancellation_watched() {
            deadline.earlier(Deadline::after(CANCEL_SLICE))
        } else {
            deadline
        };
        match timed_wait(sem, slice, op, subject) {
            Err(err) if err.is_timeout() && !deadline.has_expired() => {
                ipc_core::internal::check_cancelled(op).map_err(|e| e.with_subject(subject))?;
            }
            outcome => return outcome,
        }
    }
}

/// One wait until `deadline`, resumed after `EINTR` for the time left.
fn timed_wait(sem: RawSem<'_>, deadline: Deadline, op: &'static str, subject: &str) -> Result<()> {
    let clock = sys::wait_clock();
    deadline.retry(|deadline| {
        // The absolute time is computed for every attempt from the time left, so that on
        // the wall clock, a clock set between two attempts moves the end of only one.
        let Some(at) = deadline.absolute_timespec(clock)? else {
            return sem.wait().map_err(|e| e.with_subject(subject));
        };
        sem.timed_wait(&at).map_err(|e| match e.raw_os_error() {
            Some(libc::ETIMEDOUT) => Error::timed_out(op).with_subject(subject),
            _ => e.with_op(op).with_subject(subject),
        })
    })
}

/// `sem_getvalue`, as a count (Linux reports 0, not a negative count, while processes wait).
pub(crate) fn value(sem: RawSem<'_>, subject: &str) -> Result<u32> {
    let value = sem
        .value()
        .map_err(|e| e.with_op("sem_getvalue").with_subject(subject))?;
    Ok(u32::try_from(value).unwrap_or(0))
}
