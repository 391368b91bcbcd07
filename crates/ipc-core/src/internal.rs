//! Plumbing that the ipc-rs crates share and their users do not need: hidden from the
//! documentation and outside the semantic-versioning promise of the public API.
//!
//! A mechanism crate reaches it as `ipc_core::internal::…`; a user program never should.
//! Signatures here may name nix types (`PollFlags`): nothing outside this module does, so
//! that a nix upgrade is never a breaking change for users.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::{Deadline, Error, Result};

pub use crate::cancel::{
    CANCEL_SLICE, cancellation_watched, check_cancelled, process_token_fd, sliced_wait,
    watched_tokens,
};
pub use crate::cleanup::{is_stale, objects_in_use, stale_entries};
pub use crate::deadline::{Backoff, retry_eintr};
pub use crate::error::{SyscallReturn, cvt};
pub use crate::futex::{ThreadIdentity, futex_wait, futex_wake};
pub use crate::named::{
    OPEN_TIMEOUT, ObjectId, await_name, check_creation_option, check_owner, unlink_if_ours,
};
pub use crate::process::{
    PeerProcess, pidfd_open, process_is_alive, process_start_time, process_state, this_process,
};
pub use crate::relay::{Relay, RelayTarget, relay_fds};
pub use crate::select::{readable_only, writable_only};
pub use crate::watcher::WordWaiter;

/// How one call of a blocking operation may wait: the three forms behind `op`, `try_op` and
/// `op_timeout` (or `op_deadline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// As long as it takes.
    Block,
    /// Not at all: `WouldBlock` if the operation cannot complete now.
    Try,
    /// Until the deadline: `TimedOut` after it.
    Until(Deadline),
}

impl Wait {
    /// Waiting at most `timeout` from now.
    pub fn after(timeout: Duration) -> Wait {
        Wait::Until(Deadline::after(timeout))
    }

    /// The deadline of a call that may wait ([`Deadline::NEVER`] for [`Wait::Block`]), or
    /// `None` for [`Wait::Try`].
    pub fn deadline(self) -> Option<Deadline> {
        match self {
            Wait::Block => Some(Deadline::NEVER),
            Wait::Try => None,
            Wait::Until(deadline) => Some(deadline),
        }
    }
}

/// Waits until `fd` reports one of `events` (or an error or hang-up, which `poll` always
/// reports) or `deadline` passes, and returns the events that occurred. `EINTR` is retried
/// against the same deadline.
///
/// The building block of every `_timeout` form in the mechanism crates.
///
/// ```
/// use std::time::Duration;
/// use nix::poll::PollFlags;
/// use ipc_core::Deadline;
/// use ipc_core::internal::poll_fd;
///
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// let err = poll_fd(&a, PollFlags::POLLIN, Deadline::after(Duration::from_millis(1)), "poll").unwrap_err();
/// assert!(err.is_timeout());
/// assert!(poll_fd(&b, PollFlags::POLLOUT, Deadline::NEVER, "poll")?.contains(PollFlags::POLLOUT));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `TimedOut` at the deadline (for the operation `op`); cancelled if a token the thread's
/// waits watch ([`check_cancelled`]) is cancelled while `fd` is not ready (a poll with no
/// time to wait is a check, which no token ends); the `poll` error.
pub fn poll_fd(
    fd: impl AsFd,
    events: PollFlags,
    deadline: Deadline,
    op: &'static str,
) -> Result<PollFlags> {
    // Waits end when a token they watch is cancelled: its descriptor is polled too.
    poll_watching(fd.as_fd(), events, deadline, op, &watched_tokens())
}

fn poll_watching(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Deadline,
    op: &'static str,
    tokens: &[crate::Cancel],
) -> Result<PollFlags> {
    // A poll that may not wait at all is a check, not a wait: no token ends it.
    let tokens = if deadline.remaining() == Some(Duration::ZERO) {
        &[]
    } else {
        tokens
    };
    deadline.retry(|deadline| {
        let timeout = PollTimeout::try_from(deadline.poll_timeout_ms()).unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(fd, events)];
        fds.extend(
            tokens
                .iter()
                .map(|token| PollFd::new(token.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, timeout) {
            Ok(0) => Err(Error::timed_out(op)),
            Ok(_) => {
                let ready = fds[0].revents().unwrap_or(PollFlags::empty());
                if ready.is_empty() {
                    // A token's descriptor is only ever readable once it is cancelled.
                    return Err(Error::cancelled(op));
                }
                Ok(ready)
            }
            Err(errno) => {
                // A signal that cancelled a watched token (a shutdown) ends the wait.
                if errno == nix::errno::Errno::EINTR && !tokens.is_empty() {
                    check_cancelled(op)?;
                }
                Err(Error::from_errno(op, errno))
            }
        }
    })
}

/// [`poll_fd`] watching no cancellation token: for the waits for a shutdown itself.
///
/// # Errors
///
/// `TimedOut` at the deadline; the `poll` error.
pub fn poll_fd_unwatched(
    fd: impl AsFd,
    events: PollFlags,
    deadline: Deadline,
    op: &'static str,
) -> Result<PollFlags> {
    poll_watching(fd.as_fd(), events, deadline, op, &[])
}

/// Whether `fd` has one of `events` right now, without waiting.
///
/// # Errors
///
/// The `poll` error.
pub fn poll_now(fd: impl AsFd, events: PollFlags, op: &'static str) -> Result<PollFlags> {
    match poll_fd(fd, events, Deadline::after(Duration::ZERO), op) {
        Err(err) if err.is_timeout() => Ok(PollFlags::empty()),
        other => other,
    }
}
