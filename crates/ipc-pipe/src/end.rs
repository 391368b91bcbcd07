//! What both ends of a pipe share: waiting, blocking mode, capacity.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use ipc_core::{Deadline, Error, Limit, Result};
use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::sys;

/// The file that holds the largest capacity an unprivileged process may give a pipe.
pub(crate) const PIPE_MAX_SIZE: &str = "/proc/sys/fs/pipe-max-size";

pub(crate) use ipc_core::internal::Wait;

/// A description of a pipe end for error messages: `pipe (fd 5)`.
pub(crate) fn subject(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    format!("pipe (fd {})", fd.as_raw_fd())
}

/// Waits for events on a descriptor with a deadline, retrying `EINTR`.
pub(crate) use ipc_core::internal::poll_fd as wait_for;

/// `F_DUPFD_CLOEXEC`: a second descriptor for the same pipe end.
pub(crate) fn try_clone(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().map_err(|e| {
        Error::from(e)
            .with_op("fcntl(F_DUPFD_CLOEXEC)")
            .with_subject(subject(fd))
    })
}

/// Turns `O_NONBLOCK` on or off. The flag belongs to the open file description, so it
/// also changes the mode of duplicates of the descriptor, including ones in other
/// processes.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)
        .map_err(|e| Error::from_errno("fcntl(F_GETFL)", e).with_subject(subject(fd)))?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags))
        .map(drop)
        .map_err(|e| Error::from_errno("fcntl(F_SETFL)", e).with_subject(subject(fd)))
}

/// Opens the pipe behind `fd` anew (`/proc/self/fd/N`, `O_NONBLOCK`, which also keeps
/// the open of a writing end from waiting for a reader) and puts the new description
/// behind `fd`'s number.
fn reopen_nonblocking(fd: BorrowedFd<'_>, access: OFlag) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = access | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let reopened = nix::fcntl::open(path.as_str(), flags, nix::sys::stat::Mode::empty())?;
    sys::replace_description(fd, reopened)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Whether `O_NONBLOCK` is set.
pub(crate) fn is_nonblocking(fd: BorrowedFd<'_>) -> Result<bool> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)
        .map_err(|e| Error::from_errno("fcntl(F_GETFL)", e).with_subject(subject(fd)))?;
    Ok(OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK))
}

/// `F_GETPIPE_SZ`.
pub(crate) fn capacity(fd: BorrowedFd<'_>) -> Result<usize> {
    let size = fcntl(fd, FcntlArg::F_GETPIPE_SZ)
        .map_err(|e| Error::from_errno("fcntl(F_GETPIPE_SZ)", e).with_subject(subject(fd)))?;
    usize::try_from(size).map_err(|_| Error::corrupted("fcntl(F_GETPIPE_SZ)", "negative capacity"))
}

/// Reads `/proc/sys/fs/pipe-max-size`.
pub(crate) fn max_capacity() -> Result<u64> {
    let text = std::fs::read_to_string(PIPE_MAX_SIZE)
        .map_err(|e| Error::from(e).with_op("read").with_subject(PIPE_MAX_SIZE))?;
    text.trim().parse().map_err(|_| {
        Error::corrupted(
            "read",
            format!("{PIPE_MAX_SIZE} holds {text:?}, not a number"),
        )
    })
}

/// `F_SETPIPE_SZ`, refusing sizes above `pipe-max-size` with an error that names it.
pub(crate) fn set_capacity(fd: BorrowedFd<'_>, bytes: usize) -> Result<usize> {
    const OP: &str = "fcntl(F_SETPIPE_SZ)";
    let max = max_capacity()?;
    let requested = u64::try_from(bytes).unwrap_or(u64::MAX);
    if requested > max {
        return Err(Error::limit_exceeded(
            OP,
            "pipe capacity",
            requested,
            Limit::new(PIPE_MAX_SIZE, max),
        )
        .with_subject(subject(fd)));
    }
    let arg = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    match fcntl(fd, FcntlArg::F_SETPIPE_SZ(arg)) {
        Ok(size) => usize::try_from(size).map_err(|_| Error::corrupted(OP, "negative capacity")),
        Err(nix::errno::Errno::EPERM) => Err(Error::new(
            OP,
            io::ErrorKind::PermissionDenied,
            "this user's pipes already hold as much memory as /proc/sys/fs/pipe-user-pages-soft (or -hard) allows",
        )
        .with_subject(subject(fd))),
        Err(nix::errno::Errno::EBUSY) => Err(Error::new(
            OP,
            io::ErrorKind::ResourceBusy,
            format!("the pipe holds more data than {bytes} bytes"),
        )
        .with_subject(subject(fd))),
        Err(errno) => Err(Error::from_errno(OP, errno).with_subject(subject(fd))),
    }
}

/// `FIONREAD`: bytes written to the pipe and not read yet.
pub(crate) fn unread_bytes(fd: BorrowedFd<'_>) -> Result<usize> {
    sys::unread_bytes(fd).map_err(|e| {
        Error::from(e)
            .with_op("ioctl(FIONREAD)")
            .with_subject(subject(fd))
    })
}

/// How an end waits. Anonymous pipes support `RWF_NOWAIT`, so their descriptors stay in
/// the blocking mode the user chose and the `try_` forms pass the flag per call. FIFOs
/// opened by path do not (`EOPNOTSUPP`), so theirs are kept in `O_NONBLOCK` mode and a
/// blocking call waits with `poll`; the user's choice of mode is then kept here. An
/// anonymous end that a poller watches is given an `O_NONBLOCK` description of its own
/// and waits the same way ([`Mode::detach`]).
#[derive(Debug, Default)]
pub(crate) struct Mode {
    /// The descriptor is `O_NONBLOCK` and blocking is emulated.
    emulated: AtomicBool,
    /// With emulation: whether the user asked for non-blocking mode.
    user_nonblocking: AtomicBool,
    /// [`Mode::detach`] is replacing the description: the descriptor may be either one.
    detaching: AtomicBool,
}

impl Mode {
    /// The mode of an end whose descriptor is already `O_NONBLOCK` and should stay so.
    pub(crate) fn emulated() -> Self {
        Mode {
            emulated: AtomicBool::new(true),
            ..Mode::default()
        }
    }

    /// The mode for a duplicate of the descriptor, which shares its flags.
    pub(crate) fn duplicate(&self) -> Self {
        Mode {
            emulated: AtomicBool::new(self.is_emulated()),
            user_nonblocking: AtomicBool::new(self.user_nonblocking.load(Ordering::SeqCst)),
            detaching: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_emulated(&self) -> bool {
        self.emulated.load(Ordering::SeqCst)
    }

    fn is_detaching(&self) -> bool {
        self.detaching.load(Ordering::SeqCst)
    }

    /// Gives the end an open file description of its own in `O_NONBLOCK` mode, once, before
    /// a poller or a runtime first watches it. Its `try_` calls are then plain `read` and
    /// `write`: `preadv2`/`pwritev2` cost ~25% more at 4 KiB, with or without
    /// `RWF_NOWAIT`, and an `O_NONBLOCK` flag on the description it had would also change
    /// copies of the end held elsewhere (a child's stdin). The pipe is reopened through
    /// `/proc/self/fd` and the new description takes over the descriptor's number
    /// (`dup3`), so the number stays valid; copies made earlier keep the old description.
    ///
    /// Nothing changes where the reopen fails (no `/proc`, a writing end without
    /// readers, no descriptor left): the end then keeps passing `RWF_NOWAIT`.
    pub(crate) fn detach(&self, fd: BorrowedFd<'_>, access: OFlag) {
        if self.is_emulated() || self.detaching.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(user_nonblocking) = is_nonblocking(fd) {
            self.user_nonblocking
                .store(user_nonblocking, Ordering::SeqCst);
            if reopen_nonblocking(fd, access).is_ok() {
                self.emulated.store(true, Ordering::SeqCst);
            }
        }
        self.detaching.store(false, Ordering::SeqCst);
    }

    /// Readies a descriptor handed out of the end (into an `OwnedFd`, to a child): where
    /// emulation had set `O_NONBLOCK` without the user asking, it gets a description of
    /// its own in blocking mode. Its own, because clones of this end may share the
    /// emulated description, whose `try_` calls would block if it became blocking. Where
    /// the reopen fails (a FIFO's writing end without readers), it stays non-blocking,
    /// which the receiver's calls report as `WouldBlock` rather than hang.
    pub(crate) fn restore(&self, fd: BorrowedFd<'_>, access: OFlag) {
        if self.is_emulated()
            && !self.user_nonblocking.load(Ordering::SeqCst)
            && reopen_nonblocking(fd, access).is_ok()
        {
            let _ = set_nonblocking(fd, false);
        }
    }

    /// Switches to emulation after the kernel refused `RWF_NOWAIT`.
    pub(crate) fn emulate(&self, fd: BorrowedFd<'_>) -> Result<()> {
        let user_nonblocking = is_nonblocking(fd)?;
        set_nonblocking(fd, true)?;
        self.user_nonblocking
            .store(user_nonblocking, Ordering::SeqCst);
        self.emulated.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn set_nonblocking(&self, fd: BorrowedFd<'_>, on: bool) -> Result<()> {
        if self.is_emulated() {
            self.user_nonblocking.store(on, Ordering::SeqCst);
            Ok(())
        } else {
            set_nonblocking(fd, on)
        }
    }

    pub(crate) fn is_nonblocking(&self, fd: BorrowedFd<'_>) -> Result<bool> {
        if self.is_emulated() {
            Ok(self.user_nonblocking.load(Ordering::SeqCst))
        } else {
            is_nonblocking(fd)
        }
    }

    /// Whether a call with `wait` may pass `RWF_NOWAIT`. A blocking call does too while a
    /// cancellation token is watched, and then waits in a `poll` that watches the tokens:
    /// a shutdown ends it, where a blocking `read` would be restarted.
    pub(crate) fn nowait(&self, wait: Wait) -> bool {
        // While detaching, the descriptor may be either description: `RWF_NOWAIT` is right
        // for both.
        (!self.is_emulated() || self.is_detaching())
            && (!matches!(wait, Wait::Block) || ipc_core::internal::cancellation_watched())
    }

    /// What a call with `wait` does when the descriptor said `EAGAIN`: `None` to fail with
    /// `WouldBlock`, or the deadline to wait for.
    ///
    /// # Errors
    ///
    /// The `fcntl` error of looking at the descriptor's mode.
    pub(crate) fn on_would_block(
        &self,
        wait: Wait,
        fd: BorrowedFd<'_>,
    ) -> Result<Option<Deadline>> {
        Ok(match wait {
            Wait::Try => None,
            Wait::Until(deadline) => Some(deadline),
            // A blocking call that met the new description of a detach under way waits
            // as an emulated one does.
            Wait::Block if self.is_emulated() || self.is_detaching() => {
                (!self.user_nonblocking.load(Ordering::SeqCst)).then_some(Deadline::NEVER)
            }
            // From a blocking descriptor only after `RWF_NOWAIT`: wait, unless the user has
            // made the descriptor non-blocking since.
            Wait::Block => (!is_nonblocking(fd)?).then_some(Deadline::NEVER),
        })
    }
}

/// The methods and conversions both pipe ends have.
macro_rules! pipe_end {
    ($ty:ident, $access:ident) => {
        impl $ty {
            /// A second handle to the same pipe end (`F_DUPFD_CLOEXEC`).
            ///
            /// # Errors
            ///
            /// The `fcntl` error, such as `EMFILE` when the process has too many
            /// descriptors.
            pub fn try_clone(&self) -> Result<Self> {
                Ok($ty {
                    fd: crate::end::try_clone(self.fd.as_fd())?,
                    mode: self.mode.duplicate(),
                })
            }

            /// Turns non-blocking mode (`O_NONBLOCK`) on or off.
            ///
            /// In non-blocking mode the `std::io` methods fail with `WouldBlock` instead
            /// of waiting. The `try_` and `_timeout` methods work the same in either mode.
            /// The mode belongs to the open pipe end, not to this handle: clones and copies
            /// given to other processes change with it. Except for an end opened from a
            /// FIFO or watched by a [`Selector`](ipc_core::Selector) or an `Async`: such
            /// an end has an `O_NONBLOCK` open file description of its own (copies made
            /// before it was watched keep the old one), the mode is this handle's, and
            /// the descriptor leaves it (into an `OwnedFd`, to a child) in that mode.
            ///
            /// # Errors
            ///
            /// The `fcntl` error.
            pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
                self.mode.set_nonblocking(self.fd.as_fd(), nonblocking)
            }

            /// Whether non-blocking mode is on.
            ///
            /// # Errors
            ///
            /// The `fcntl` error.
            pub fn is_nonblocking(&self) -> Result<bool> {
                self.mode.is_nonblocking(self.fd.as_fd())
            }

            /// The pipe's capacity in bytes (`F_GETPIPE_SZ`); 64 KiB for a new pipe.
            ///
            /// # Errors
            ///
            /// The `fcntl` error.
            #[doc(alias = "F_GETPIPE_SZ")]
            pub fn capacity(&self) -> Result<usize> {
                crate::end::capacity(self.fd.as_fd())
            }

            /// Sets the pipe's capacity (`F_SETPIPE_SZ`) to at least `bytes` and returns the
            /// capacity set, which the kernel rounds up to a power-of-two number of pages.
            ///
            /// Requests above `/proc/sys/fs/pipe-max-size` (1 MiB by default) are refused,
            /// also for privileged processes that the kernel would let exceed it, so that a
            /// program behaves alike under every user.
            ///
            /// # Errors
            ///
            /// [`Error::is_limit_exceeded`] above `pipe-max-size`, with the limit named;
            /// `PermissionDenied` when the user's pipes hold too much memory
            /// (`pipe-user-pages-soft`); `ResourceBusy` when the pipe holds more data than
            /// the new size.
            #[doc(alias = "F_SETPIPE_SZ")]
            pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
                crate::end::set_capacity(self.fd.as_fd(), bytes)
            }

            /// Bytes in the pipe that no one has read yet (`FIONREAD`).
            ///
            /// # Errors
            ///
            /// The `ioctl` error.
            #[doc(alias = "FIONREAD")]
            pub fn unread_bytes(&self) -> Result<usize> {
                crate::end::unread_bytes(self.fd.as_fd())
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.fd)
            }
        }

        impl From<std::os::fd::OwnedFd> for $ty {
            /// Wraps a descriptor that must be the matching end of a pipe or FIFO; other
            /// descriptors make every call fail or misbehave.
            fn from(fd: std::os::fd::OwnedFd) -> Self {
                $ty {
                    fd,
                    mode: crate::end::Mode::default(),
                }
            }
        }

        impl From<$ty> for std::os::fd::OwnedFd {
            /// The descriptor in the blocking mode the user chose (see
            /// `set_nonblocking`).
            fn from(end: $ty) -> Self {
                end.mode.restore(end.fd.as_fd(), nix::fcntl::OFlag::$access);
                end.fd
            }
        }

        impl From<$ty> for std::process::Stdio {
            /// Hands the pipe end to a child process as its stdin, stdout or stderr.
            fn from(end: $ty) -> Self {
                std::process::Stdio::from(std::os::fd::OwnedFd::from(end))
            }
        }
    };
}

pub(crate) use pipe_end;
