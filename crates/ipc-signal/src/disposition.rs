//! Setting a signal's disposition for a while and putting the previous one back.

use std::fmt;

use ipc_core::Result;

use crate::{Signal, sys};

/// What a signal does when no handler of signal-hook's takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The default action (terminate, core, stop, continue or ignore, per signal).
    Default,
    /// Nothing: the signal is discarded.
    Ignore,
}

/// Sets `signal`'s disposition and returns a guard that puts the previous one back when
/// dropped, whatever it was (a handler included): for code that must, say, ignore `SIGINT`
/// while it runs, or restore the default before starting a child that expects it.
///
/// The disposition is process-wide. Do not use it on a signal that signal-hook handlers
/// (a [`SignalReceiver`](crate::SignalReceiver), a [`Shutdown`](crate::Shutdown)) are
/// registered for while it is in force: it replaces their handler until restored.
///
/// ```no_run
/// use ipc_signal::{Disposition, Signal};
///
/// {
///     let _ignored = ipc_signal::set_disposition(Signal::USR1, Disposition::Ignore)?;
///     ipc_signal::raise(Signal::USR1)?; // discarded
/// }
/// // The previous disposition (here the default, which terminates) is back.
/// # Ok::<(), ipc_signal::Error>(())
/// ```
///
/// # Errors
///
/// `InvalidInput` for `SIGKILL` and `SIGSTOP`.
pub fn set_disposition(signal: Signal, disposition: Disposition) -> Result<DispositionGuard> {
    signal.catchable("sigaction")?;
    let saved = sys::set_disposition(signal.number(), disposition == Disposition::Ignore)
        .map_err(|e| e.with_subject(signal.to_string()))?;
    Ok(DispositionGuard { signal, saved })
}

/// Puts a signal's previous disposition back when dropped (see [`set_disposition`]).
#[must_use = "the previous disposition comes back as soon as this is dropped"]
pub struct DispositionGuard {
    signal: Signal,
    saved: sys::SavedAction,
}

impl Drop for DispositionGuard {
    fn drop(&mut self) {
        // Restoring an action sigaction returned does not fail.
        let _ = sys::restore_disposition(self.signal.number(), &self.saved);
    }
}

impl fmt::Debug for DispositionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispositionGuard")
            .field("signal", &self.signal)
            .finish_non_exhaustive()
    }
}
