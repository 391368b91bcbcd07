//! Absolute deadlines for blocking calls, and retrying `EINTR` against them.

use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

use crate::{Error, Result};

/// The clock a system call measures an absolute timeout against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_REALTIME`: wall-clock time, used by `mq_timedsend`, `mq_timedreceive`,
    /// `sem_timedwait` and `pthread_mutex_timedlock`. It can jump when the clock is set.
    Realtime,
    /// `CLOCK_MONOTONIC`: time since boot that never jumps, used by `futex` with
    /// `FUTEX_CLOCK_MONOTONIC`-style absolute waits, `clock_nanosleep`, `sem_clockwait` and
    /// `pthread_mutex_clocklock`.
    Monotonic,
}

impl Clock {
    fn id(self) -> ClockId {
        match self {
            Clock::Realtime => ClockId::CLOCK_REALTIME,
            Clock::Monotonic => ClockId::CLOCK_MONOTONIC,
        }
    }
}

/// A point in time by which a blocking operation must finish, or [`Deadline::NEVER`].
///
/// Blocking calls come in three forms: `op()` waits without limit, `try_op()` does not wait,
/// and `op_timeout(d)` waits at most `d`. The timeout form turns `d` into a `Deadline` once, at
/// the start, and every retry after `EINTR` waits only for what is left of it (see
/// [`Deadline::retry`]), so a signal storm can neither fail the call nor stretch the wait.
///
/// ```
/// use std::time::Duration;
/// use ipc_core::Deadline;
///
/// let deadline = Deadline::after(Duration::from_millis(50));
/// assert!(deadline.remaining().unwrap() <= Duration::from_millis(50));
/// assert_eq!(Deadline::NEVER.remaining(), None);
/// assert_eq!(Deadline::NEVER.poll_timeout_ms(), -1);
/// // A timeout too large to represent means "never", not a panic.
/// assert!(Deadline::after(Duration::MAX).is_never());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline: wait as long as it takes.
    pub const NEVER: Deadline = Deadline { at: None };

    /// The deadline `timeout` from now; [`Deadline::NEVER`] if that is beyond what
    /// [`Instant`] can represent.
    pub fn after(timeout: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(timeout),
        }
    }

    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline { at: Some(instant) }
    }

    /// `Some(timeout)` as [`Deadline::after`], `None` as [`Deadline::NEVER`].
    pub fn from_timeout(timeout: Option<Duration>) -> Self {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }

    /// The earlier of two deadlines ([`Deadline::NEVER`] is later than any other).
    #[must_use]
    pub fn earlier(self, other: Deadline) -> Deadline {
        match (self.at, other.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (Some(_), None) => self,
            (None, _) => other,
        }
    }

    /// True for [`Deadline::NEVER`].
    pub fn is_never(&self) -> bool {
        self.at.is_none()
    }

    /// The instant of the deadline, `None` for [`Deadline::NEVER`].
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// The time left, zero once the deadline has passed, `None` for [`Deadline::NEVER`].
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// True once the deadline has passed (never for [`Deadline::NEVER`]).
    pub fn has_expired(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// The time left in whole milliseconds, rounded up so that a wait never ends early, for
    /// `poll` and `epoll_wait`; `-1` (wait forever) for [`Deadline::NEVER`], and at most
    /// `i32::MAX`.
    pub fn poll_timeout_ms(&self) -> i32 {
        match self.remaining() {
            None => -1,
            Some(left) => {
                let ms = left.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        }
    }

    /// The time left as a relative `timespec`, for calls such as `ppoll`, `sigtimedwait`
    /// and relative `futex` waits; `None` for [`Deadline::NEVER`].
    pub fn relative_timespec(&self) -> Option<libc::timespec> {
        self.remaining()
            .map(|left| *TimeSpec::from_duration(left).as_ref())
    }

    /// The deadline as an absolute `timespec` on `clock`, for calls such as
    /// `mq_timedreceive` and `sem_timedwait`; `None` for [`Deadline::NEVER`].
    ///
    /// It is computed from the time left now, so call it again for every attempt: a
    /// [`Clock::Realtime`] deadline computed once would move if the wall clock were set.
    ///
    /// # Errors
    ///
    /// The error of `clock_gettime`, which does not fail for these clocks on Linux.
    pub fn absolute_timespec(&self, clock: Clock) -> Result<Option<libc::timespec>> {
        let Some(left) = self.remaining() else {
            return Ok(None);
        };
        let now = clock_gettime(clock.id()).map_err(|e| Error::from_errno("clock_gettime", e))?;
        let now = Duration::new(
            u64::try_from(now.tv_sec()).unwrap_or(0),
            u32::try_from(now.tv_nsec()).unwrap_or(0),
        );
        // Saturate far in the future rather than overflow `time_t`.
        let at = now.checked_add(left).unwrap_or(Duration::MAX);
        let spec = libc::timespec {
            tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(at.subsec_nanos()),
        };
        Ok(Some(spec))
    }

    /// Runs `attempt` until it returns anything but an `EINTR` error, handing it this
    /// deadline each time so that it waits only for what is left.
    ///
    /// If a call is interrupted after the deadline has passed, the result is a
    /// [`TimedOut`](std::io::ErrorKind::TimedOut) error for the same operation and subject:
    /// the caller asked to wait no longer, and the interruption was the wait's end.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ipc_core::{Deadline, Error};
    ///
    /// let mut interruptions = 2;
    /// let value = Deadline::after(Duration::from_secs(5)).retry(|_deadline| {
    ///     if interruptions > 0 {
    ///         interruptions -= 1;
    ///         return Err(Error::from_raw_os_error("read", libc::EINTR));
    ///     }
    ///     Ok(42)
    /// })?;
    /// assert_eq!(value, 42);
    /// # Ok::<(), ipc_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error of `attempt` other than `EINTR`, or `TimedOut` as above.
    pub fn retry<T>(&self, mut attempt: impl FnMut(&Deadline) -> Result<T>) -> Result<T> {
        loop {
            match attempt(self) {
                Err(err) if err.is_interrupted() => {
                    if self.has_expired() {
                        let timed_out = Error::timed_out(err.op());
                        return Err(match err.subject() {
                            Some(subject) => timed_out.with_subject(subject),
                            None => timed_out,
                        });
                    }
                }
                other => return other,
            }
        }
    }
}

/// Growing pauses for a wait with no event to block on (a name that does not exist yet, a
/// creator still initialising, a full Unix backlog): 50 µs, doubling up to a cap, never
/// past the deadline.
#[derive(Debug)]
pub struct Backoff {
    pause: Duration,
    cap: Duration,
}

impl Backoff {
    /// Pauses that grow from 50 µs to `cap`.
    pub fn new(cap: Duration) -> Backoff {
        Backoff {
            pause: Duration::from_micros(50).min(cap),
            cap,
        }
    }

    /// Sleeps for the next pause, cut short at `deadline`, and returns true; returns false
    /// at once if `deadline` has passed. The pauses are a wait: a cancelled token that the
    /// thread watches ends them.
    ///
    /// # Errors
    ///
    /// [`Error::cancelled`] for the operation `op`.
    pub fn pause(&mut self, deadline: Deadline, op: &'static str) -> Result<bool> {
        crate::cancel::check_cancelled(op)?;
        let pause = match deadline.remaining() {
            Some(left) if left.is_zero() => return Ok(false),
            Some(left) => self.pause.min(left),
            None => self.pause,
        };
        std::thread::sleep(pause);
        self.pause = (self.pause * 2).min(self.cap);
        Ok(true)
    }
}

/// Runs `attempt` until it returns anything but an `EINTR` error: [`Deadline::retry`] with
/// [`Deadline::NEVER`], for calls that do not block or have no deadline.
///
/// # Errors
///
/// The first error of `attempt` other than `EINTR`.
pub fn retry_eintr<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    Deadline::NEVER.retry(|_| attempt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeout_rounds_up() {
        let d = Deadline::after(Duration::from_micros(1500));
        let ms = d.poll_timeout_ms();
        assert!((1..=2).contains(&ms), "{ms}");
        assert_eq!(Deadline::after(Duration::ZERO).poll_timeout_ms(), 0);
        assert_eq!(
            Deadline::after(Duration::from_secs(10_000_000)).poll_timeout_ms(),
            i32::MAX
        );
    }

    #[test]
    fn expired_deadline_has_zero_left() {
        let d = Deadline::at(Instant::now() - Duration::from_millis(1));
        assert!(d.has_expired());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
        let spec = d.relative_timespec().unwrap();
        assert_eq!((spec.tv_sec, spec.tv_nsec), (0, 0));
        assert!(!Deadline::NEVER.has_expired());
        assert!(Deadline::NEVER.relative_timespec().is_none());
        assert!(Deadline::from_timeout(None).is_never());
        assert!(!Deadline::from_timeout(Some(Duration::ZERO)).is_never());
    }

    #[test]
    fn absolute_timespec_lies_ahead_on_each_clock() {
        for clock in [Clock::Realtime, Clock::Monotonic] {
            let before = clock_gettime(clock.id()).unwrap();
            let spec = Deadline::after(Duration::from_secs(30))
                .absolute_timespec(clock)
                .unwrap()
                .unwrap();
            assert!(spec.tv_sec >= before.tv_sec() + 29, "{clock:?}");
            assert!((0..1_000_000_000).contains(&spec.tv_nsec));
            assert!(Deadline::NEVER.absolute_timespec(clock).unwrap().is_none());
        }
    }

    #[test]
    fn absolute_timespec_saturates() {
        let far = Deadline::after(Duration::from_secs(u64::MAX / 4));
        if let Some(spec) = far.absolute_timespec(Clock::Realtime).unwrap() {
            assert!(spec.tv_sec > 0);
        }
    }

    #[test]
    fn retry_turns_late_eintr_into_timeout() {
        let d = Deadline::at(Instant::now() - Duration::from_millis(1));
        let err = d
            .retry(|_| -> Result<()> {
                Err(Error::from_raw_os_error("sem_timedwait", libc::EINTR).with_subject("/s"))
            })
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(err.op(), "sem_timedwait");
        assert_eq!(err.subject(), Some("/s"));
    }

    #[test]
    fn retry_passes_other_errors_and_values_through() {
        let err = Deadline::NEVER
            .retry(|_| -> Result<()> { Err(Error::from_raw_os_error("read", libc::EBADF)) })
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        let mut calls = 0;
        let v = retry_eintr(|| {
            calls += 1;
            if calls < 3 {
                Err(Error::from_raw_os_error("read", libc::EINTR))
            } else {
                Ok(calls)
            }
        })
        .unwrap();
        assert_eq!(v, 3);
    }
}
