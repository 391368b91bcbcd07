//! The descriptor held in reserve for listeners that run out of descriptors.

use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ipc_core::{Error, Limit};
use nix::errno::Errno;

/// One descriptor (of `/dev/null`), held while any listener lives. A listener whose
/// `accept` fails for want of descriptors closes it, accepts the waiting client into the
/// slot that freed and closes that connection at once, then takes the reserve again: the
/// client learns at once that it was turned away (its connection ends), instead of waiting
/// unanswered in the backlog while the server retries. One per process, not per listener.
static RESERVE: Mutex<Reserve> = Mutex::new(Reserve {
    fd: None,
    holders: 0,
});

struct Reserve {
    fd: Option<OwnedFd>,
    /// The listeners alive: the last one to go closes the reserve.
    holders: usize,
}

fn reserve() -> MutexGuard<'static, Reserve> {
    RESERVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A listener's share of the reserve: taken when it is made, while descriptors are still
/// to be had, and given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Hold(());

impl Drop for Hold {
    fn drop(&mut self) {
        let mut reserve = reserve();
        reserve.holders = reserve.holders.saturating_sub(1);
        if reserve.holders == 0 {
            reserve.fd = None;
        }
    }
}

fn open() -> Option<OwnedFd> {
    // std opens with O_CLOEXEC.
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

/// Opens the reserve descriptor if it is not open yet, for a new listener.
pub(crate) fn hold() -> Hold {
    let mut reserve = reserve();
    reserve.holders += 1;
    if reserve.fd.is_none() {
        reserve.fd = open();
    }
    Hold(())
}

/// Whether `errno` says the process or the system is out of descriptors.
pub(crate) fn is_out_of_descriptors(errno: Errno) -> bool {
    matches!(errno, Errno::EMFILE | Errno::ENFILE)
}

/// After `accept` failed with `errno` (out of descriptors): turns one waiting client away
/// through the reserve, with `accept`, and says so. Without the reserve (another thread
/// holds its slot) nobody is turned away and the error is `errno`'s.
pub(crate) fn turn_away(errno: Errno, op: &'static str, accept: impl FnOnce()) -> Error {
    let mut reserve = reserve();
    let Some(fd) = reserve.fd.take() else {
        return Error::from_errno(op, errno);
    };
    drop(fd);
    // Accepted into the freed slot and closed at once.
    accept();
    reserve.fd = open();
    let (what, limit) = if errno == Errno::EMFILE {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(0, |(soft, _)| soft);
        ("RLIMIT_NOFILE (ulimit -n)", soft)
    } else {
        let max = std::fs::read_to_string("/proc/sys/fs/file-max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        ("/proc/sys/fs/file-max", max)
    };
    Error::limit_exceeded(
        op,
        "out of descriptors, a waiting client was turned away (its connection closed at once); open descriptors",
        limit.saturating_add(1),
        Limit::new(what, limit),
    )
}
