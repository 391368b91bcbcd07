//! The System V calls nix does not wrap: reading a semaphore's records and removing
//! objects by id.

use std::io;

/// What `semctl` can tell about one semaphore of a set.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SemField {
    /// Its value (`GETVAL`).
    Value,
    /// The pid of the last process to operate on it (`GETPID`).
    LastPid,
    /// How many processes wait for it to rise (`GETNCNT`).
    Waiting,
    /// How many processes wait for it to reach zero (`GETZCNT`).
    WaitingForZero,
}

/// Reads `field` of semaphore `num` of set `id`.
pub(crate) fn sem_field(id: i32, num: i32, field: SemField) -> io::Result<i32> {
    let cmd = match field {
        SemField::Value => libc::GETVAL,
        SemField::LastPid => libc::GETPID,
        SemField::Waiting => libc::GETNCNT,
        SemField::WaitingForZero => libc::GETZCNT,
    };
    // SAFETY: these four commands take no fourth argument and only read the set; a bad id
    // or number is reported as an error.
    let value = unsafe { libc::semctl(id, num, cmd) };
    if value < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// The System V object kinds, for removal.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SysvKind {
    Sem,
    Shm,
    Msg,
}

/// Removes System V object `id` (`IPC_RMID`).
pub(crate) fn remove(kind: SysvKind, id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer (a null one for shmctl and msgctl, none for
    // semctl); a bad id is reported as an error.
    let result = unsafe {
        match kind {
            SysvKind::Sem => libc::semctl(id, 0, libc::IPC_RMID),
            SysvKind::Shm => libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()),
            SysvKind::Msg => libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()),
        }
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
