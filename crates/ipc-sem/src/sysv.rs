//! System V semaphores with `SEM_UNDO`: permits that return when their holder dies.

use std::io;
use std::time::Duration;

use ipc_core::{Deadline, Error, IpcName, Limit, OpenIntent, Result, Unlink, UnlinkOnDrop};

use crate::permit::{Release, Sealed};
use crate::{SemaphoreOptions, sys};

/// The largest value of a System V semaphore (`SEMVMX`).
pub const SEMVMX: u32 = 32767;

/// The set's semaphores: the value, and a tag that says the set is ready and is ours.
const VALUE: u16 = 0;
const TAG: libc::c_int = 1;

/// The System V key and tag for `name`: FNV-1a of the name, split in two. Two names can
/// share a key; the tag (stored in the set's second semaphore) tells them apart.
fn key_and_tag(name: &IpcName) -> (libc::key_t, libc::c_int) {
    let hash = name
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let low = hash.to_le_bytes();
    // Positive and never 0 (IPC_PRIVATE).
    let key = i32::from_le_bytes([low[0] | 1, low[1], low[2], low[3] & 0x7f]);
    let tag = i32::from(u16::from_le_bytes([low[4], low[5]]) % 32767) + 1;
    (key, tag)
}

impl SemaphoreOptions {
    /// Creates (or opens, as the creation mode allows) the System V semaphore for `name`,
    /// whose permits return when the process holding them dies. The creator removes it on
    /// drop unless [`persist`](UndoSemaphore::persist)ed.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` for an exclusive creation of a taken name; a limit error for an
    /// initial value above [`SEMVMX`]; `InvalidInput` for a bound (not supported: see
    /// [`UndoSemaphore`]); the errors of `semget` and `semctl` (`ENOSPC` when the system's
    /// semaphore sets run out).
    pub fn create_undo(&self, name: &IpcName) -> Result<UndoSemaphore> {
        let op = "semget";
        self.check_undo(name)?;
        let (key, tag) = key_and_tag(name);
        let mode = self.permission_bits();
        let opened = self.mode_value().open_with(
            |intent| {
                let flags = match intent {
                    OpenIntent::Create => libc::IPC_CREAT | libc::IPC_EXCL,
                    OpenIntent::OpenExisting => 0,
                };
                let mode = libc::c_int::try_from(mode).unwrap_or(0o600);
                sys::semget(key, 2, flags | mode)
                    .map_err(|e| Error::from(e).with_op(op).with_subject(name.as_str()))
            },
            || {
                let id = sys::semget(key, 0, 0)
                    .map_err(|e| Error::from(e).with_op(op).with_subject(name.as_str()))?;
                sys::sem_remove(id)
                    .map_err(|e| Error::from(e).with_op("semctl").with_subject(name.as_str()))
            },
        )?;
        let id = opened.object;
        let set = UndoSemaphore::new(id, name, opened.created);
        if opened.created {
            let initial = libc::c_int::try_from(self.initial_value()).unwrap_or(0);
            sys::sem_setval(id, libc::c_int::from(VALUE), initial)
                .and_then(|()| sys::sem_setval(id, TAG, tag))
                .map_err(|e| set.err("semctl", e))?;
            Ok(set)
        } else {
            set.check_existing(self, tag)?;
            Ok(set)
        }
    }

    /// Opens the System V semaphore for `name`, waiting up to the
    /// [`timeout`](SemaphoreOptions::timeout) for its creator to initialise it.
    ///
    /// # Errors
    ///
    /// `NotFound` if there is none; `PermissionDenied` if this user may not use it, or it
    /// belongs to another user (unless accepted); `TimedOut` if it was not initialised in
    /// time; `InvalidData` if the key belongs to a set made for another name.
    pub fn open_undo(&self, name: &IpcName) -> Result<UndoSemaphore> {
        self.check_undo(name)?;
        let (key, tag) = key_and_tag(name);
        let id = sys::semget(key, 0, 0)
            .map_err(|e| Error::from(e).with_op("semget").with_subject(name.as_str()))?;
        let set = UndoSemaphore::new(id, name, false);
        set.check_existing(self, tag)?;
        Ok(set)
    }

    fn check_undo(&self, name: &IpcName) -> Result<()> {
        if self.bound().is_some() {
            return Err(Error::new(
                "semget",
                io::ErrorKind::InvalidInput,
                "System V semaphores cannot be bounded; use an initial value and \
                 acquire/release pairs",
            )
            .with_subject(name.as_str()));
        }
        if self.initial_value() > SEMVMX {
            let limit = Limit::new("SEMVMX", u64::from(SEMVMX));
            return Err(Error::limit_exceeded(
                "semget",
                "initial value",
                u64::from(self.initial_value()),
                limit,
            )
            .with_subject(name.as_str()));
        }
        Ok(())
    }
}

/// The id of a set this process created, removed on drop.
#[derive(Debug)]
struct SetId {
    id: libc::c_int,
    name: IpcName,
}

impl Unlink for SetId {
    fn unlink(&self) -> Result<()> {
        sys::sem_remove(self.id).map_err(|e| {
            Error::from(e)
                .with_op("semctl(IPC_RMID)")
                .with_subject(self.name.as_str())
        })
    }
}

/// A System V semaphore whose permits return when the process holding them dies: every
/// wait and post is made with `SEM_UNDO`, so the kernel keeps, per process, the sum of what
/// it took and gave back, and undoes it when the process exits, whatever the way.
///
/// That makes it the semaphore for permits that are *held and returned* (locks, pools of
/// resources), and the wrong one for signalling: a process that waits for a permit posted
/// by another and then exits gives it back, and one that posts without having waited takes
/// its posts back when it exits. Use a [`NamedSemaphore`](crate::NamedSemaphore) there.
///
/// Named by an [`IpcName`]: the System V key is derived from it, and a tag stored in the
/// set tells a set made for another name with the same key apart. Unlike a POSIX name,
/// removing it (the creator's drop) ends it for everyone: waiting processes get a
/// peer-gone error. Values are limited to [`SEMVMX`], a process's balance of waits and
/// posts to ±32767 (`SEMAEM`: past it, operations fail with a limit error), and sets to the
/// system's `SEMMNI`
/// (`/proc/sys/kernel/sem`); a set left behind by a crashed creator stays until removed
/// (`ipcrm`, or a creation with
/// [`CreationMode::PurgeAndCreate`](ipc_core::CreationMode::PurgeAndCreate)).
#[derive(Debug)]
pub struct UndoSemaphore {
    id: libc::c_int,
    set: UnlinkOnDrop<SetId>,
}

impl UndoSemaphore {
    fn new(id: libc::c_int, name: &IpcName, created: bool) -> Self {
        let target = SetId {
            id,
            name: name.clone(),
        };
        UndoSemaphore {
            id,
            set: if created {
                UnlinkOnDrop::owned(target)
            } else {
                UnlinkOnDrop::not_owned(target)
            },
        }
    }

    /// Checks the owner of an existing set and waits until its creator has marked it ours.
    fn check_existing(&self, options: &SemaphoreOptions, tag: libc::c_int) -> Result<()> {
        let (owner, _mode) = sys::sem_owner(self.id).map_err(|e| self.err("semctl", e))?;
        let me = nix::unistd::geteuid().as_raw();
        if owner != me && !options.accepts_other_owner() {
            return Err(Error::new(
                "semget",
                io::ErrorKind::PermissionDenied,
                format!("owned by uid {owner}, not {me}; see SemaphoreOptions::accept_other_owner"),
            )
            .with_subject(self.subject()));
        }
        let deadline = Deadline::after(options.open_timeout());
        loop {
            match sys::sem_getval(self.id, TAG).map_err(|e| self.err("semctl", e))? {
                found if found == tag => return Ok(()),
                0 if !deadline.has_expired() => std::thread::sleep(Duration::from_millis(1)),
                0 => {
                    return Err(Error::new(
                        "semget",
                        io::ErrorKind::TimedOut,
                        "the semaphore set was not initialised in time",
                    )
                    .with_subject(self.subject()));
                }
                _ => {
                    return Err(Error::new(
                        "semget",
                        io::ErrorKind::InvalidData,
                        "the System V key belongs to a set made for another name",
                    )
                    .with_subject(self.subject()));
                }
            }
        }
    }

    /// The name the semaphore was made for.
    pub fn name(&self) -> &IpcName {
        &self.set.get().name
    }

    /// The System V id of the set (as `ipcs -s` shows it).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Keeps the set after the creator's handle is dropped.
    pub fn persist(&mut self) {
        self.set.persist();
    }

    /// Removes the set now: every process using it gets a peer-gone error.
    ///
    /// # Errors
    ///
    /// The error of `semctl(IPC_RMID)`.
    pub fn remove(&mut self) -> Result<()> {
        self.set.unlink()
    }

    fn subject(&self) -> &str {
        self.name().as_str()
    }

    fn err(&self, op: &'static str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::EIDRM | libc::EINVAL) => {
                Error::peer_gone(op, "the semaphore set was removed").with_subject(self.subject())
            }
            // The value would pass SEMVMX, or this process's undo balance SEMAEM (both
            // 32767).
            Some(libc::ERANGE) => Error::limit_exceeded(
                op,
                "semaphore value or this process's undo balance",
                u64::from(SEMVMX) + 1,
                Limit::new("SEMVMX, SEMAEM", u64::from(SEMVMX)),
            )
            .with_subject(self.subject()),
            _ => Error::from(e).with_op(op).with_subject(self.subject()),
        }
    }

    #[inline]
    fn op(
        &self,
        delta: i16,
        flags: libc::c_int,
        timeout: Option<&libc::timespec>,
    ) -> io::Result<()> {
        sys::semop(self.id, VALUE, delta, flags | libc::SEM_UNDO, timeout)
    }

    /// Returns one permit (adds 1, recorded for undo).
    ///
    /// # Errors
    ///
    /// A limit error at [`SEMVMX`], or when this process has posted 32767 more times than it
    /// waited (`SEMAEM`); peer-gone if the set was removed.
    #[inline]
    pub fn post(&self) -> Result<()> {
        ipc_core::retry_eintr(|| self.op(1, 0, None).map_err(|e| self.err("semop", e)))
    }

    /// Takes one permit, waiting as long as it takes; it returns by itself if this process
    /// exits without posting it.
    ///
    /// # Errors
    ///
    /// Peer-gone if the set was removed.
    #[inline]
    pub fn wait(&self) -> Result<()> {
        ipc_core::retry_eintr(|| self.op(-1, 0, None).map_err(|e| self.err("semop", e)))
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; peer-gone if the set was removed.
    pub fn try_wait(&self) -> Result<()> {
        ipc_core::retry_eintr(|| {
            self.op(-1, libc::IPC_NOWAIT, None)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EAGAIN) => Error::would_block("semop").with_subject(self.subject()),
                    _ => self.err("semop", e),
                })
        })
    }

    /// Takes one permit, waiting at most `timeout` (on the monotonic clock; signals do not
    /// end the wait early).
    ///
    /// # Errors
    ///
    /// `TimedOut` if none came in time; peer-gone if the set was removed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        Deadline::after(timeout).retry(|deadline| {
            let Some(left) = deadline.relative_timespec() else {
                return self.wait();
            };
            self.op(-1, 0, Some(&left))
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        Error::timed_out("semtimedop").with_subject(self.subject())
                    }
                    _ => self.err("semtimedop", e),
                })
        })
    }

    /// The current value.
    ///
    /// # Errors
    ///
    /// Peer-gone if the set was removed.
    pub fn value(&self) -> Result<u32> {
        let value = sys::sem_getval(self.id, libc::c_int::from(VALUE))
            .map_err(|e| self.err("semctl", e))?;
        Ok(u32::try_from(value).unwrap_or(0))
    }

    crate::permit::acquire_methods!();
}

impl Sealed for UndoSemaphore {}

impl Release for UndoSemaphore {
    fn release_one(&self) -> Result<()> {
        self.post()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_positive_and_tags_fit_a_semaphore() {
        for i in 0..1000 {
            let name = IpcName::new(format!("/key-{i}")).unwrap();
            let (key, tag) = key_and_tag(&name);
            assert!(key > 0);
            assert!((1..=32767).contains(&tag));
        }
    }
}
