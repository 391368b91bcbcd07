//! Ending waits from outside: a cancellation token, the process's own token that a
//! shutdown signal cancels, and the check every wait of the toolkit makes.
//!
//! A token ends *waits*, not operations: a call that can complete at once still does after
//! a cancellation (a receive finds the message that is there, a `try_` form works as
//! always); one that would wait returns [`Error::cancelled`] instead. So nothing already
//! accepted is lost, and a program that is shutting down can still drain what it holds.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::{Deadline, Error, Result, sys};

/// A cancellation token: [`cancel`](Cancel::cancel) ends the waits that watch it, from any
/// thread (or a signal handler): a wait on a descriptor at once, a futex wait within its
/// 20 ms slice.
///
/// A wait that watches tokens watches the [process token](Cancel::process) and those of
/// the enclosing [`watch`](Cancel::watch) scopes of its thread. Those that do: the
/// shared-memory channel's sends, receives, loans and borrows; message queue sends,
/// receives and readiness waits; pipe and FIFO reads and writes and FIFO writer opens;
/// named, unnamed and System V semaphore waits and robust mutex locks; seqpacket and
/// datagram sends and receives, and accepts; pidfd process waits and signal waits. Not
/// yet: reads and writes of std's stream types (`UnixStream`, `TcpStream`), which are
/// std's own calls. Waits without a descriptor (futexes, semaphores) check the tokens
/// every 20 ms while one is watched; a process that watches none makes its one blocking
/// call as before.
///
/// Clones share the token. Its descriptor ([`AsFd`]) becomes readable once it is
/// cancelled, so that a poller can watch it beside other work.
///
/// ```
/// use std::os::fd::AsFd;
/// use ipc_core::Cancel;
///
/// let stop = Cancel::new()?;
/// let remote = stop.clone();
/// std::thread::spawn(move || remote.cancel()).join().unwrap();
/// assert!(stop.is_cancelled());
/// let _readable_now = stop.as_fd(); // for a poller
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cancelled: AtomicBool,
    /// An eventfd, written once on cancellation: readable from then on.
    event: OwnedFd,
}

static PROCESS: OnceLock<Cancel> = OnceLock::new();

thread_local! {
    /// The tokens [`Cancel::watch`] scopes on this thread, innermost last.
    static WATCHED: RefCell<Vec<Cancel>> = const { RefCell::new(Vec::new()) };
}

impl Cancel {
    /// A new token, not cancelled.
    ///
    /// # Errors
    ///
    /// The `eventfd` error (descriptors exhausted).
    pub fn new() -> Result<Cancel> {
        Ok(Cancel {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                event: sys::eventfd()?,
            }),
        })
    }

    /// The process's token, which the toolkit's waits watch (those listed above), made on
    /// first use. `ipc_signal`'s shutdown handler cancels it when a shutdown signal arrives.
    ///
    /// # Errors
    ///
    /// The `eventfd` error of its first use.
    pub fn process() -> Result<&'static Cancel> {
        if let Some(token) = PROCESS.get() {
            return Ok(token);
        }
        let token = Cancel::new()?;
        Ok(PROCESS.get_or_init(|| token))
    }

    /// Cancels the token: the waits that watch it end with [`Error::cancelled`], now and
    /// from now on. Only an atomic store and a `write(2)`: safe to call from a signal
    /// handler.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        sys::eventfd_signal(self.inner.event.as_raw_fd());
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `f` with this token watched, beside the process's, by every wait `f` makes on
    /// this thread.
    pub fn watch<T>(&self, f: impl FnOnce() -> T) -> T {
        /// Pops the token even if `f` panics.
        struct Unwatch;
        impl Drop for Unwatch {
            fn drop(&mut self) {
                WATCHED.with(|watched| watched.borrow_mut().pop());
            }
        }
        WATCHED.with(|watched| watched.borrow_mut().push(self.clone()));
        let _unwatch = Unwatch;
        f()
    }
}

impl AsFd for Cancel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.event.as_fd()
    }
}

impl AsRawFd for Cancel {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.event.as_raw_fd()
    }
}

/// Fails with [`Error::cancelled`] if a token the calling thread's waits watch is
/// cancelled: the check a wait makes before each slice and after each interruption.
///
/// # Errors
///
/// [`Error::cancelled`] for the operation `op`.
pub fn check_cancelled(op: &'static str) -> Result<()> {
    let process = PROCESS.get().is_some_and(Cancel::is_cancelled);
    if process || WATCHED.with(|watched| watched.borrow().iter().any(Cancel::is_cancelled)) {
        return Err(Error::cancelled(op));
    }
    Ok(())
}

/// The longest sleep of a wait without a descriptor while a token is watched: such a wait
/// has nothing to poll beside it, and a signal interrupts only the thread it lands on.
pub const CANCEL_SLICE: Duration = Duration::from_millis(20);

/// Runs a wait without a descriptor until `deadline`: `attempt` waits until the deadline
/// it is given and fails with `TimedOut` there. While a token is watched it is given a
/// [`CANCEL_SLICE`] at a time and the tokens are checked between slices; otherwise it
/// waits once, for all of it.
///
/// # Errors
///
/// [`Error::cancelled`] for the operation `op`; `attempt`'s errors, its `TimedOut` once
/// `deadline` has passed.
pub fn sliced_wait<T>(
    deadline: Deadline,
    op: &'static str,
    mut attempt: impl FnMut(Deadline) -> Result<T>,
) -> Result<T> {
    loop {
        let watched = cancellation_watched();
        let slice = if watched {
            deadline.earlier(Deadline::after(CANCEL_SLICE))
        } else {
            deadline
        };
        match attempt(slice) {
            Err(err) if watched && err.is_timeout() && !deadline.has_expired() => {
                check_cancelled(op).map_err(|e| match err.subject() {
                    Some(subject) => e.with_subject(subject),
                    None => e,
                })?;
            }
            outcome => return outcome,
        }
    }
}

/// Whether the calling thread's waits watch any token: a wait that cannot watch a
/// descriptor then sleeps in slices, to check it; one that watches none need not.
pub fn cancellation_watched() -> bool {
    PROCESS.get().is_some() || WATCHED.with(|watched| !watched.borrow().is_empty())
}

/// The descriptor of the process token if it has been made (without making it): it lives
/// as long as the process, which a leak check must know.
pub fn process_token_fd() -> Option<RawFd> {
    PROCESS.get().map(Cancel::as_raw_fd)
}

/// The tokens the calling thread's waits watch (the process's, if made, and those of
/// [`Cancel::watch`]), for a wait on descriptors to poll theirs beside its own: each is
/// readable once its token is cancelled.
pub fn watched_tokens() -> Vec<Cancel> {
    let mut tokens: Vec<Cancel> = PROCESS.get().cloned().into_iter().collect();
    WATCHED.with(|watched| tokens.extend(watched.borrow().iter().cloned()));
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_cancels_only_the_waits_that_watch_it() {
        let token = Cancel::new().unwrap();
        let other = Cancel::new().unwrap();
        token.cancel();
        assert!(token.is_cancelled() && token.clone().is_cancelled());
        check_cancelled("wait").unwrap();
        let err = token.watch(|| check_cancelled("wait")).unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        other.watch(|| check_cancelled("wait")).unwrap();
        // The scope ends with the closure.
        check_cancelled("wait").unwrap();
        let tokens = token.watch(watched_tokens);
        assert!(tokens.iter().any(|t| t.as_raw_fd() == token.as_raw_fd()));
    }
}

#[cfg(test)]
mod wait_tests {
    use std::time::Duration;

    use nix::poll::PollFlags;

    use super::*;
    use crate::Deadline;

    #[test]
    fn a_cancel_from_another_thread_ends_a_descriptor_wait_but_not_a_ready_one() {
        let (reader, writer) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let stop = Cancel::new().unwrap();
        let remote = stop.clone();
        let waiter = std::thread::spawn(move || {
            remote.watch(|| {
                crate::internal::poll_fd(
                    &reader,
                    PollFlags::POLLIN,
                    Deadline::after(Duration::from_secs(60)),
                    "poll",
                )
                .map(|_| reader)
            })
        });
        stop.cancel();
        let err = waiter.join().unwrap().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        // A descriptor that is ready is reported even under a cancelled token: only waits end.
        let (reader, other) = std::os::unix::net::UnixDatagram::pair().unwrap();
        other.send(b"x").unwrap();
        drop(writer);
        let ready = stop
            .watch(|| crate::internal::poll_fd(&reader, PollFlags::POLLIN, Deadline::NEVER, "poll"))
            .unwrap();
        assert!(ready.contains(PollFlags::POLLIN));
    }
}
