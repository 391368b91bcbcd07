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

/// `sem_wait`, with `EINTR` retried; in slices while a cancellation token is watched.
#[inline]
pub(crate) fn wait(sem: RawSem<'_>, subject: &str) -> Result<()> {
    wait_until(sem, Deadline::NEVER, subject)
}

/// `sem_clockwait` (or `sem_timedwait`) until `timeout` from now, resumed after `EINTR`
/// for the time left.
pub(crate) fn wait_timeout(sem: RawSem<'_>, timeout: Duration, subject: &str) -> Result<()> {
    wait_until(sem, Deadline::after(timeout), subject)
}

/// Waits until `deadline` (a slice at a time while a cancellation token is watched: a
/// semaphore has no descriptor to poll beside it).
fn wait_until(sem: RawSem<'_>, deadline: Deadline, subject: &str) -> Result<()> {
    let clock = sys::wait_clock();
    let op = match clock {
        Clock::Monotonic => "sem_clockwait",
        Clock::Realtime => "sem_timedwait",
    };
    ipc_core::internal::sliced_wait(deadline, op, |slice| {
        slice.retry(|slice| {
            // The absolute time is computed for every attempt from the time left, so that
            // on the wall clock, a clock set between two attempts moves the end of only one.
            let Some(at) = slice.absolute_timespec(clock)? else {
                return sem.wait().map_err(|e| e.with_subject(subject));
            };
            sem.timed_wait(&at).map_err(|e| match e.raw_os_error() {
                Some(libc::ETIMEDOUT) => Error::timed_out(op).with_subject(subject),
                _ => e.with_op(op).with_subject(subject),
            })
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
