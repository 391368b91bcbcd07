//! RAII permits, shared by every semaphore of the crate.

use std::fmt;

use ipc_core::Result;

mod sealed {
    pub trait Sealed {}
}

/// A semaphore that a [`Permit`] returns its permit to. Implemented by this crate's
/// semaphores only.
pub trait Release: sealed::Sealed {
    /// Returns one permit (posts).
    ///
    /// # Errors
    ///
    /// The semaphore's post error.
    fn release_one(&self) -> Result<()>;
}

pub(crate) use sealed::Sealed;

/// One permit taken from a semaphore, returned (posted) when dropped.
///
/// Made by `acquire`, `try_acquire` and `acquire_timeout`. [`forget`](Permit::forget) keeps
/// the permit taken (for a permit handed over to another process, which posts it there);
/// [`release`](Permit::release) returns it and reports a failed post, which a drop cannot.
#[must_use = "a permit is returned as soon as it is dropped"]
pub struct Permit<'a, S: Release + ?Sized> {
    semaphore: &'a S,
}

impl<'a, S: Release + ?Sized> Permit<'a, S> {
    pub(crate) fn new(semaphore: &'a S) -> Self {
        Permit { semaphore }
    }

    /// Keeps the permit taken: nothing is posted.
    pub fn forget(self) {
        std::mem::forget(self);
    }

    /// Returns the permit now.
    ///
    /// # Errors
    ///
    /// The post error (for a bounded semaphore, a limit error if other posts already
    /// brought it to its maximum; the permit is then gone).
    pub fn release(self) -> Result<()> {
        let semaphore = self.semaphore;
        std::mem::forget(self);
        semaphore.release_one()
    }
}

impl<S: Release + ?Sized> Drop for Permit<'_, S> {
    fn drop(&mut self) {
        // A drop cannot report a failed post; `release` can.
        let _ = self.semaphore.release_one();
    }
}

impl<S: Release + ?Sized> fmt::Debug for Permit<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// The `acquire` family of a semaphore type that has `wait`, `try_wait` and
/// `wait_timeout`: written once for every semaphore of the crate.
macro_rules! acquire_methods {
    () => {
        /// Takes a permit that is posted back when the returned guard is dropped.
        ///
        /// # Errors
        ///
        /// As [`wait`](Self::wait).
        pub fn acquire(&self) -> ipc_core::Result<$crate::Permit<'_, Self>> {
            self.wait()?;
            Ok($crate::permit::Permit::new(self))
        }

        /// [`acquire`](Self::acquire) if a permit is available now.
        ///
        /// # Errors
        ///
        /// `WouldBlock` if none is.
        pub fn try_acquire(&self) -> ipc_core::Result<$crate::Permit<'_, Self>> {
            self.try_wait()?;
            Ok($crate::permit::Permit::new(self))
        }

        /// [`acquire`](Self::acquire), waiting at most `timeout`.
        ///
        /// # Errors
        ///
        /// `TimedOut` if no permit came in time.
        pub fn acquire_timeout(
            &self,
            timeout: std::time::Duration,
        ) -> ipc_core::Result<$crate::Permit<'_, Self>> {
            self.wait_timeout(timeout)?;
            Ok($crate::permit::Permit::new(self))
        }
    };
}

pub(crate) use acquire_methods;
