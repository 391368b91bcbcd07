//! ipc-core against the real kernel, across processes.

mod deadline;
mod modes;
mod names;
mod permissions;

ipc_testkit::peer_roles! {
    "umask" => permissions::umask_role,
    "open-shm" => permissions::open_shm_role,
    "race-create" => modes::race_create_role,
}

use ipc_core::{Error, IpcName, OpenIntent, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::os::fd::OwnedFd;

/// One `shm_open` attempt as `CreationMode::open_with` asks for it; the pattern every
/// mechanism crate follows.
pub(crate) fn shm_attempt(name: &IpcName, intent: OpenIntent) -> Result<OwnedFd> {
    let flags = OFlag::from_bits_truncate(intent.flags()) | OFlag::O_RDWR | OFlag::O_CLOEXEC;
    nix::sys::mman::shm_open(name.as_cstr(), flags, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|errno| Error::from_errno("shm_open", errno).with_subject(name))
}

/// Removes a shared-memory object by name.
pub(crate) fn shm_unlink(name: &IpcName) -> Result<()> {
    nix::sys::mman::shm_unlink(name.as_cstr())
        .map_err(|errno| Error::from_errno("shm_unlink", errno).with_subject(name))
}
