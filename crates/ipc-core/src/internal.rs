//! Plumbing that the ipc-rs crates share and their users do not need: hidden from the
//! documentation and outside the semantic-versioning promise of the public API.
//!
//! A mechanism crate reaches it as `ipc_core::internal::…`; a user program never should.

use std::time::Duration;

use crate::Deadline;

pub use crate::futex::{ThreadIdentity, futex_wait, futex_wake};

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
