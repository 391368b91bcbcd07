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

/// Why an accept did not give a connection.
pub(crate) enum Refused {
    /// The call's error (`EAGAIN`, `EINTR`, ...), or out of descriptors with no client
    /// turned away (the reserve could not be had).
    Errno(Errno),
    /// Out of descriptors: a waiting client was turned away; the error says so.
    TurnedAway(Error),
}

/// Runs one non-blocking `accept`. If it fails for want of descriptors, turns the waiting
/// client away through the reserve: closes the reserve, accepts into the slot that freed,
/// closes that connection at once and takes the reserve back. Every accept of the
/// process's listeners runs under the reserve's lock, so none takes the slot the reserve
/// frees; a reserve lost to another opener is taken back at the next accept.
pub(crate) fn accept<T>(
    op: &'static str,
    mut accept: impl FnMut() -> std::result::Result<T, Errno>,
) -> std::result::Result<T, Refused> {
    let mut reserve = reserve();
    if reserve.fd.is_none() && reserve.holders > 0 {
        reserve.fd = open();
    }
    let errno = match accept() {
        Err(errno @ (Errno::EMFILE | Errno::ENFILE)) => errno,
        other => return other.map_err(Refused::Errno),
    };
    let Some(fd) = reserve.fd.take() else {
        return Err(Refused::Errno(errno));
    };
    drop(fd);
    let turned = accept();
    reserve.fd = open();
    match turned {
        // Closed at once: the client's next receive reports the peer gone.
        Ok(connection) => drop(connection),
        // Nobody waits any more (another process's client gave up).
        Err(errno) => return Err(Refused::Errno(errno)),
    }
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
    Err(Refused::TurnedAway(Error::limit_exceeded(
        op,
        "out of descriptors, a waiting client was turned away (its connection closed at once); open descriptors",
        limit.saturating_add(1),
        Limit::new(what, limit),
    )))
}
