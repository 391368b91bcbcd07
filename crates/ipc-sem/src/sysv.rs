//! System V semaphores with `SEM_UNDO`: permits that return when their holder dies.

use std::io;
use std::time::Duration;

use ipc_core::internal::{Backoff, await_name};
use ipc_core::{Deadline, Error, IpcName, Limit, OpenIntent, Result, Unlink, UnlinkOnDrop};

use crate::SemaphoreOptions;
use crate::permit::{Release, Sealed};
use crate::sys::{self, SemGet};

/// The largest value of a System V semaphore (`SEMVMX`).
pub const SEMVMX: u32 = 32767;

/// The set's semaphores. Only `VALUE` is ever waited on; the others are records that every
/// process can read with `semctl(GETVAL)`: `TAG` says the set is ready and was made for this
/// name, `STAMP` says this crate made it and whether its creator persisted it, and the
/// creator's pid is split over two semaphores because a value stops at [`SEMVMX`] (15 bits)
/// while a pid can take 22.
const VALUE: u16 = 0;
const TAG: libc::c_int = 1;
const STAMP: libc::c_int = 2;
const CREATOR_LOW: libc::c_int = 3;
const CREATOR_HIGH: libc::c_int = 4;
const SET_SIZE: libc::c_int = 5;

/// `STAMP` of a set whose creator removes it on drop: if the creator is gone, so is the
/// reason to keep it. Arbitrary values below [`SEMVMX`], unlikely in other programs' sets.
const STAMP_OWNED: libc::c_int = 0x1e5e;
/// `STAMP` of a set its creator persisted: kept whatever happens to the creator.
const STAMP_PERSISTED: libc::c_int = 0x1e5f;

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
                sys::semget(key, SET_SIZE, flags | mode)
                    .map_err(|e| e.with_op(op).with_subject(name.as_str()))
            },
            || {
                let id = sys::semget(key, 0, 0)
                    .map_err(|e| e.with_op(op).with_subject(name.as_str()))?;
                sys::sem_remove(id).map_err(|e| e.with_op("semctl").with_subject(name.as_str()))
            },
        )?;
        let id = opened.object;
        let set = UndoSemaphore::new(id, name, opened.created);
        if opened.created {
            let initial = libc::c_int::try_from(self.initial_value()).unwrap_or(0);
            let (low, high) = split_pid(std::process::id());
            // The tag goes last: it tells waiting openers that everything else is set.
            [
                (CREATOR_LOW, low),
                (CREATOR_HIGH, high),
                (STAMP, STAMP_OWNED),
                (libc::c_int::from(VALUE), initial),
                (TAG, tag),
            ]
            .into_iter()
            .try_for_each(|(num, value)| sys::sem_setval(id, num, value))
            .map_err(|e| set.err("semctl", e))?;
            Ok(set)
        } else {
            set.check_existing(self, tag, Deadline::after(self.open_timeout()))?;
            Ok(set)
        }
    }

    /// Opens the System V semaphore for `name`, waiting up to the
    /// [`timeout`](SemaphoreOptions::timeout) for its creator to initialise it.
    ///
    /// # Errors
    ///
    /// `NotFound` if none appeared in time; `PermissionDenied` if this user may not use it,
    /// or it belongs to another user (unless accepted); `TimedOut` if it was not
    /// initialised in time; `InvalidInput` for an [`initial`](SemaphoreOptions::initial)
    /// value set in these options; `InvalidData` if the key belongs to a set made for another name.
    pub fn open_undo(&self, name: &IpcName) -> Result<UndoSemaphore> {
        self.check_undo(name)?;
        self.refuse_initial("semget", name.as_str())?;
        let (key, tag) = key_and_tag(name);
        let deadline = Deadline::after(self.open_timeout());
        let id = await_name(
            "semaphore set for this name",
            "SemaphoreOptions::timeout",
            self.open_timeout(),
            deadline,
            || sys::semget(key, 0, 0).map_err(|e| e.with_op("semget").with_subject(name.as_str())),
        )?;
        let set = UndoSemaphore::new(id, name, false);
        set.check_existing(self, tag, deadline)?;
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
            e.with_op("semctl(IPC_RMID)")
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
/// (`/proc/sys/kernel/sem`). The kernel does not remove a set whose creator crashed:
/// [`remove_stale_undo_sets`] does (the set records its creator's pid), as does a creation
/// with [`CreationMode::PurgeAndCreate`](ipc_core::CreationMode::PurgeAndCreate) or
/// `ipcrm`.
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
    fn check_existing(
        &self,
        options: &SemaphoreOptions,
        tag: libc::c_int,
        deadline: Deadline,
    ) -> Result<()> {
        let (owner, _mode) = sys::sem_owner(self.id).map_err(|e| self.err("semctl", e))?;
        ipc_core::internal::check_owner(
            "semget",
            self.subject(),
            owner,
            options.accepts_other_owner(),
            "SemaphoreOptions",
        )?;
        let mut backoff = Backoff::new(Duration::from_millis(5));
        loop {
            match sys::sem_get(self.id, TAG, SemGet::Value).map_err(|e| self.err("semctl", e))? {
                found if found == tag => return Ok(()),
                0 if backoff
                    .pause(deadline, "semget")
                    .map_err(|e| e.with_subject(self.subject()))? => {}
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

    /// Keeps the set after the creator's handle is dropped, and after the creator exits:
    /// [`remove_stale_undo_sets`] leaves it alone from now on.
    pub fn persist(&mut self) {
        if self.set.is_owned() {
            // SETVAL fails only if the set is already gone, leaving nothing to keep.
            let _ = sys::sem_setval(self.id, STAMP, STAMP_PERSISTED);
        }
        self.set.persist();
    }

    /// Removes the set now (`semctl(IPC_RMID)`; named `unlink` like every named object's
    /// removal in this toolkit): every process using it gets a peer-gone error.
    ///
    /// # Errors
    ///
    /// The error of `semctl(IPC_RMID)`.
    #[doc(alias = "remove")]
    #[doc(alias = "IPC_RMID")]
    pub fn unlink(&mut self) -> Result<()> {
        self.set.unlink()
    }

    fn subject(&self) -> &str {
        self.name().as_str()
    }

    fn err(&self, op: &'static str, e: Error) -> Error {
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
            _ => e.with_op(op).with_subject(self.subject()),
        }
    }

    #[inline]
    fn op(&self, delta: i16, flags: libc::c_int, timeout: Option<&libc::timespec>) -> Result<()> {
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
        ipc_core::internal::retry_eintr(|| self.op(1, 0, None).map_err(|e| self.err("semop", e)))
    }

    /// Takes one permit, waiting as long as it takes; it returns by itself if this process
    /// exits without posting it.
    ///
    /// # Errors
    ///
    /// Peer-gone if the set was removed.
    #[inline]
    pub fn wait(&self) -> Result<()> {
        self.take(Deadline::NEVER)
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; peer-gone if the set was removed.
    pub fn try_wait(&self) -> Result<()> {
        ipc_core::internal::retry_eintr(|| {
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
        self.take(Deadline::after(timeout))
    }

    /// Takes one permit, waiting until `deadline` (a slice at a time while a cancellation
    /// token is watched: `semop` has no descriptor to poll beside it), each `semtimedop`
    /// resumed after `EINTR` for the time left.
    fn take(&self, deadline: Deadline) -> Result<()> {
        ipc_core::internal::sliced_wait(deadline, "semtimedop", |slice| {
            slice.retry(|slice| {
                let Some(left) = slice.relative_timespec() else {
                    return self.op(-1, 0, None).map_err(|e| self.err("semop", e));
                };
                self.op(-1, 0, Some(&left))
                    .map_err(|e| match e.raw_os_error() {
                        Some(libc::EAGAIN) => {
                            Error::timed_out("semtimedop").with_subject(self.subject())
                        }
                        _ => self.err("semtimedop", e),
                    })
            })
        })
    }

    /// The current value.
    ///
    /// # Errors
    ///
    /// Peer-gone if the set was removed.
    pub fn value(&self) -> Result<u32> {
        let value = sys::sem_get(self.id, libc::c_int::from(VALUE), SemGet::Value)
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

/// Splits a pid into two semaphore values of 15 bits and the rest.
fn split_pid(pid: u32) -> (libc::c_int, libc::c_int) {
    let low = libc::c_int::try_from(pid & SEMVMX).unwrap_or(0);
    let high = libc::c_int::try_from(pid >> 15).unwrap_or(0);
    (low, high)
}

/// A System V set that [`SemaphoreOptions::create_undo`] made, whose creator exited
/// (crashed, most likely) without removing or persisting it: found by
/// [`stale_undo_sets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleUndoSet {
    id: i32,
    key: i32,
    creator: u32,
}

impl StaleUndoSet {
    /// The System V id of the set (as `ipcs -s` shows it).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The System V key of the set.
    pub fn key(&self) -> i32 {
        self.key
    }

    /// The pid of the process that created the set, which has exited.
    pub fn creator_pid(&self) -> u32 {
        self.creator
    }

    /// Removes the set. Its id is not reused until the kernel's sequence number for the
    /// slot wraps, so between finding and removing it, another set cannot take its place.
    ///
    /// # Errors
    ///
    /// The error of `semctl(IPC_RMID)` (a set removed meanwhile by someone else is not an
    /// error).
    #[doc(alias = "remove")]
    pub fn unlink(&self) -> Result<()> {
        match sys::sem_remove(self.id) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIDRM | libc::EINVAL)) => Ok(()),
            Err(e) => Err(e
                .with_op("semctl(IPC_RMID)")
                .with_subject(format!("System V semaphore set {}", self.id))),
        }
    }
}

/// The sets made by [`SemaphoreOptions::create_undo`] that nobody will remove: their
/// creator exited without removing or [`persist`](UndoSemaphore::persist)ing them, and the
/// last process to change any of its semaphores has exited too, and no process is blocked
/// waiting on it (a set still used by survivors is kept, to be removed once they are
/// done). The kernel cannot name a live process that holds a permit it took before the
/// last change by another one: such a set is stale once that other process is gone.
///
/// Sets this user may not read are skipped. Pids are those of the caller's pid namespace:
/// run it in the namespace of the processes that use the sets. A creator pid that was
/// reused keeps the set (the check errs on the side of keeping).
///
/// # Errors
///
/// If `/proc/sysvipc/sem` cannot be read.
pub fn stale_undo_sets() -> Result<Vec<StaleUndoSet>> {
    const LIST: &str = "/proc/sysvipc/sem";
    let table = std::fs::read_to_string(LIST)
        .map_err(|e| Error::from(e).with_op("read").with_subject(LIST))?;
    // Columns: key semid perms nsems uid gid cuid cgid otime ctime, after a header line.
    Ok(table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let key = fields.next()?.parse().ok()?;
            let id = fields.next()?.parse().ok()?;
            let nsems: libc::c_int = fields.nth(1)?.parse().ok()?;
            (nsems == SET_SIZE).then_some((key, id))
        })
        .filter_map(|(key, id)| stale_set(key, id))
        .collect())
}

/// What a System V set made by [`SemaphoreOptions::create_undo`] records about itself:
/// read by tools that list every set on a machine (`ipc ls`), to tell this crate's sets
/// from other programs' and a persisted set from one that is a crash's leftover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndoSetRecord {
    creator: u32,
    persisted: bool,
}

impl UndoSetRecord {
    /// The pid of the process that created the set.
    pub fn creator_pid(&self) -> u32 {
        self.creator
    }

    /// Whether its creator [`persist`](UndoSemaphore::persist)ed it: it is meant to outlive
    /// its creator.
    pub fn persisted(&self) -> bool {
        self.persisted
    }
}

/// The record of System V set `id` if this crate made it; `None` for another program's set
/// or one this user may not read. The records are semaphores any process with write access
/// could change: a tool may show them, and errs on the side of keeping a set.
pub fn undo_set_record(id: i32) -> Option<UndoSetRecord> {
    let persisted = match sys::sem_get(id, STAMP, SemGet::Value).ok()? {
        STAMP_OWNED => false,
        STAMP_PERSISTED => true,
        _ => return None,
    };
    // A set of ours has exactly these semaphores: one past them does not exist.
    if sys::sem_get(id, SET_SIZE, SemGet::Value).is_ok() {
        return None;
    }
    let low = u32::try_from(sys::sem_get(id, CREATOR_LOW, SemGet::Value).ok()?).ok()?;
    let high = u32::try_from(sys::sem_get(id, CREATOR_HIGH, SemGet::Value).ok()?).ok()?;
    Some(UndoSetRecord {
        creator: (high << 15) | low,
        persisted,
    })
}

/// Whether set `id` is a stale one of ours. Its pid records never change after creation;
/// only `STAMP` can (to persisted, by a live creator), so reading it again after finding
/// the creator gone makes the answer final.
fn stale_set(key: i32, id: libc::c_int) -> Option<StaleUndoSet> {
    let owned = || sys::sem_get(id, STAMP, SemGet::Value).ok() == Some(STAMP_OWNED);
    let record = undo_set_record(id)?;
    if record.persisted {
        return None;
    }
    let creator = record.creator;
    let gone = |pid: u32| pid == 0 || !ipc_core::internal::process_is_alive(pid);
    if creator == 0 || !gone(creator) {
        return None;
    }
    // Every live user the kernel can name keeps the set: a process blocked in a wait on
    // any of its semaphores (for a permit or for zero), or the last to change any of them.
    for num in 0..SET_SIZE {
        let waiting = sys::sem_get(id, num, SemGet::Waiting).ok()?
            + sys::sem_get(id, num, SemGet::WaitingForZero).ok()?;
        let last_user = u32::try_from(sys::sem_get(id, num, SemGet::LastPid).ok()?).ok()?;
        if waiting > 0 || !gone(last_user) {
            return None;
        }
    }
    owned().then_some(StaleUndoSet { id, key, creator })
}

/// Removes the sets [`stale_undo_sets`] finds, and returns them.
///
/// # Errors
///
/// As [`stale_undo_sets`] and [`StaleUndoSet::unlink`].
pub fn remove_stale_undo_sets() -> Result<Vec<StaleUndoSet>> {
    let stale = stale_undo_sets()?;
    stale.iter().try_for_each(StaleUndoSet::unlink)?;
    Ok(stale)
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

    #[test]
    fn pids_split_into_semaphore_values() {
        // 4194304 is the largest pid_max Linux allows.
        for pid in [1, 32767, 32768, 65535, 4_194_304] {
            let (low, high) = split_pid(pid);
            assert!((0..=32767).contains(&low) && (0..=32767).contains(&high));
            let joined = (u32::try_from(high).unwrap() << 15) | u32::try_from(low).unwrap();
            assert_eq!(joined, pid);
        }
    }
}
