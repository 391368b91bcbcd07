//! Removing an object, only when no live process uses it.

use ipc_core::{Error, Result};

use crate::object::{Kind, Object, State};
use crate::sys::{self, SysvKind};
use crate::{ListOptions, list};

/// What [`remove`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Removed, for this reason (why it was not live).
    Removed(String),
    /// Kept, for this reason (who uses it).
    Kept(String),
}

/// Removes `object` (from a [`list`] made with `options`) if no live process uses it,
/// deciding again from a fresh look at `/proc` first: an object that came to life since it
/// was listed is kept. A stale or kept object is removed; a live one never is.
///
/// Between that last look and the removal, a process may still open the object: removing
/// a name does not take it from processes that already hold it, so they go on unharmed,
/// but a process that opens the name later finds nothing.
///
/// # Errors
///
/// `NotFound` if the object is gone; the error of the removal (`shm_unlink`,
/// `mq_unlink`, `unlink`, `IPC_RMID`), naming the object.
pub fn remove(object: &Object, options: &ListOptions) -> Result<Removal> {
    let mut again = options.clone();
    again.kinds(&[object.kind]);
    if let Some(parent) = object.path.as_deref().and_then(std::path::Path::parent) {
        again.search(parent);
    }
    let fresh = list(&again)?
        .objects
        .into_iter()
        .find(|found| found.name == object.name)
        .ok_or_else(|| {
            Error::new(
                "remove",
                std::io::ErrorKind::NotFound,
                "it no longer exists",
            )
            .with_subject(describe(object))
        })?;
    if fresh.state == State::Live {
        return Ok(Removal::Kept(fresh.reason));
    }
    unlink(&fresh).map_err(|e| e.with_subject(describe(&fresh)))?;
    Ok(Removal::Removed(fresh.reason))
}

/// `kind name`, as errors and reports name an object.
pub(crate) fn describe(object: &Object) -> String {
    format!("{} {}", object.kind, object.name)
}

fn unlink(object: &Object) -> Result<()> {
    let sysv = |kind: SysvKind| -> Result<()> {
        let id: i32 = object.name.parse().map_err(|_| {
            Error::new(
                "IPC_RMID",
                std::io::ErrorKind::InvalidInput,
                "not a System V id",
            )
        })?;
        sys::remove(kind, id).map_err(|e| Error::from(e).with_op("IPC_RMID"))
    };
    match object.kind {
        Kind::Shm | Kind::Channel => nix::sys::mman::shm_unlink(object.name.as_str())
            .map_err(|e| Error::from_errno("shm_unlink", e)),
        Kind::Mq => nix::mqueue::mq_unlink(object.name.as_str())
            .map_err(|e| Error::from_errno("mq_unlink", e)),
        Kind::SysvSem => sysv(SysvKind::Sem),
        Kind::SysvShm => sysv(SysvKind::Shm),
        Kind::SysvMsg => sysv(SysvKind::Msg),
        // A named semaphore is its file in /dev/shm (what `sem_unlink` removes); FIFOs are
        // files; a listener's lock file goes with its socket.
        Kind::Sem | Kind::Fifo | Kind::Socket => match &object.path {
            Some(path) if object.kind == Kind::Socket => ipc_socket::remove_socket_file(path),
            Some(path) => std::fs::remove_file(path).map_err(|e| Error::from(e).with_op("unlink")),
            None => Err(Error::new(
                "unlink",
                std::io::ErrorKind::Unsupported,
                "an abstract socket has no file: it goes when its last holder closes it",
            )),
        },
    }
}
