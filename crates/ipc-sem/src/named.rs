//! Named POSIX semaphores (`sem_open`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ipc_core::internal::{ObjectId, await_name, check_creation_option, unlink_if_ours};
use ipc_core::{
    CreationMode, Deadline, Error, IpcName, Limit, OpenIntent, Permissions, Result, Unlink,
    UnlinkOnDrop,
};

use crate::permit::{Release, Sealed};
use crate::{sys, wait};

/// The largest value a POSIX semaphore holds on Linux (`SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// Options for creating or opening a [`NamedSemaphore`] (initial value, bound, creation
/// mode, permissions), or for placing an unnamed [`Semaphore`](crate::Semaphore) in a
/// shared region (initial value, bound).
///
/// ```
/// use ipc_sem::IpcName;
/// use ipc_sem::SemaphoreOptions;
///
/// let name = IpcName::unique("doc-slots")?;
/// let slots = SemaphoreOptions::new().initial(4).create(&name)?;
/// let _permit = slots.acquire()?; // posted back when dropped
/// assert_eq!(slots.value()?, 3);
/// # Ok::<(), ipc_sem::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SemaphoreOptions {
    /// `None`: the default, 0, or 1 for a binary semaphore.
    initial: Option<u32>,
    max: Option<u32>,
    mode: CreationMode,
    permissions: Permissions,
    accept_other_owner: bool,
    timeout: Duration,
}

impl Default for SemaphoreOptions {
    fn default() -> Self {
        SemaphoreOptions {
            initial: None,
            max: None,
            mode: CreationMode::default(),
            permissions: Permissions::default(),
            accept_other_owner: false,
            timeout: ipc_core::internal::OPEN_TIMEOUT,
        }
    }
}

impl SemaphoreOptions {
    ipc_core::named_object_setters!("semaphore");

    /// Initial value 0 (1 for a binary one), unbounded, exclusive creation, owner-only
    /// permissions.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value a created semaphore starts with: 0 by default, 1 for a
    /// [`binary`](SemaphoreOptions::binary) one. Only creation uses it: an `open` with it
    /// set fails (the semaphore has its own value by then), and a creation that opens an
    /// existing semaphore ([`CreationMode::OpenOrCreate`]) leaves that one's value alone.
    #[must_use]
    pub fn initial(mut self, value: u32) -> Self {
        self.initial = Some(value);
        self
    }

    /// The largest value posts may reach: a post that would exceed it fails with a limit
    /// error and changes nothing.
    ///
    /// The bound is recorded with the semaphore when it is created, and every handle opened
    /// on it enforces it: an opener need not repeat it, and one that sets another bound
    /// fails. (A named semaphore that another program made carries no record; the handle
    /// then enforces the bound its own options set.) Bounded posts are serialised with a
    /// file lock on the semaphore (released by the kernel if a poster dies), which makes
    /// them several times slower than plain ones.
    #[must_use]
    pub fn max(mut self, max: u32) -> Self {
        self.max = Some(max);
        self
    }

    /// A binary semaphore: [`max`](SemaphoreOptions::max) of 1, so a second post fails
    /// instead of letting two waiters through. It starts at 1 (free: usable as a lock at
    /// once) unless [`initial`](SemaphoreOptions::initial) says 0 (an event not yet
    /// signalled).
    #[must_use]
    pub fn binary(self) -> Self {
        self.max(1)
    }

    pub(crate) fn bound(&self) -> Option<u32> {
        self.max
    }

    pub(crate) fn initial_value(&self) -> u32 {
        // A binary semaphore is most often a lock: it starts free.
        self.initial.unwrap_or(u32::from(self.max == Some(1)))
    }

    pub(crate) fn mode_value(&self) -> CreationMode {
        self.mode
    }

    pub(crate) fn permission_bits(&self) -> u32 {
        self.permissions.mode()
    }

    pub(crate) fn accepts_other_owner(&self) -> bool {
        self.accept_other_owner
    }

    pub(crate) fn open_timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks the initial value against the bound.
    pub(crate) fn check_values(&self, op: &'static str) -> Result<()> {
        if self.max == Some(0) {
            return Err(Error::new(
                op,
                io::ErrorKind::InvalidInput,
                "a maximum of 0 would refuse every post",
            ));
        }
        let max = self.max.unwrap_or(SEM_VALUE_MAX).min(SEM_VALUE_MAX);
        if self.initial_value() > max {
            let limit = Limit::new("SemaphoreOptions::max", u64::from(max));
            return Err(Error::limit_exceeded(
                op,
                "initial value",
                u64::from(self.initial_value()),
                limit,
            ));
        }
        Ok(())
    }

    /// Creates the semaphore `name` (or opens it, as the creation mode allows). The process
    /// that created it removes the name on drop, unless
    /// [`persist`](NamedSemaphore::persist)ed.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` for an exclusive creation of a taken name; a limit error for an
    /// initial value above the maximum; `PermissionDenied` for an existing semaphore this
    /// user may not open, or one owned by another user (unless accepted); the errors of
    /// `sem_open`.
    pub fn create(&self, name: &IpcName) -> Result<NamedSemaphore> {
        self.check_values("sem_open")
            .map_err(|e| e.with_subject(name.as_str()))?;
        let opened = self.mode.open_with(
            |intent| match intent {
                OpenIntent::Create => self.create_new(name),
                OpenIntent::OpenExisting => open_existing(name),
            },
            || {
                sys::sem_unlink(name.as_cstr())
                    .map_err(|e| e.with_op("sem_unlink").with_subject(name.as_str()))
            },
        )?;
        let (sem, file) = opened.object;
        if !opened.created {
            file.check_owner(name, self.accept_other_owner)?;
        }
        let max = self.agreed_bound(&file, name)?;
        Ok(NamedSemaphore::new(sem, file, name, max, opened.created))
    }

    /// Makes the semaphore's file complete (the `sem_t`, then the bound record) as an
    /// unnamed file with its permissions, and only then links it to the name, so that an
    /// opener never sees it without its bound. The C library makes its files the same way.
    fn create_new(&self, name: &IpcName) -> Result<(sys::NamedSem, SemFile)> {
        let subject = |e: Error| e.with_subject(name.as_str());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(SEM_DIR)
            .map_err(|e| subject(Error::from(e).with_op("open(O_TMPFILE)")))?;
        self.permissions.apply(file.as_fd()).map_err(subject)?;
        let mut contents = sys::shared_sem_bytes(self.initial_value()).map_err(subject)?;
        contents.resize(BOUND_AT, 0);
        contents.extend_from_slice(&encode_bound(self.max));
        file.write_all_at(&contents, 0)
            .map_err(|e| subject(Error::from(e).with_op("write")))?;
        let made = file
            .metadata()
            .map(|meta| ObjectId::of(&meta))
            .map_err(|e| subject(Error::from(e).with_op("fstat")))?;
        let path = sem_path(name);
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            subject(Error::new(
                "sem_open",
                io::ErrorKind::InvalidInput,
                "a NUL in the name",
            ))
        })?;
        // `EEXIST` (`AlreadyExists`) for a taken name, as `sem_open(O_CREAT | O_EXCL)` says.
        sys::link_open_file(file.as_fd(), &c_path).map_err(|e| subject(e.with_op("sem_open")))?;
        // The name is ours from here: if opening it fails, it goes (only if still ours).
        let ours = SemName {
            name: name.clone(),
            path,
            id: made,
        };
        let opened = open_existing(name).and_then(|(sem, found)| {
            if found.id == made {
                Ok((sem, found))
            } else {
                Err(subject(Error::new(
                    "sem_open",
                    io::ErrorKind::AddrInUse,
                    "another process replaced the semaphore while it was being created",
                )))
            }
        });
        if opened.is_err() {
            // Best effort: the error that stopped the creation is the one to report.
            let _ = ours.unlink();
        }
        opened
    }

    /// The bound a handle on `file` enforces: the one recorded at creation, which these
    /// options may repeat but not contradict, or (for a semaphore another program made,
    /// with no record) the one these options set.
    fn agreed_bound(&self, file: &SemFile, name: &IpcName) -> Result<Option<u32>> {
        let Some(recorded) = file.recorded_bound(name)? else {
            return Ok(self.max);
        };
        // Unbounded is the largest value a semaphore holds.
        let as_value = |bound: Option<u32>| bound.map_or(SEM_VALUE_MAX, |max| max) as usize;
        check_creation_option(
            "sem_open",
            name.as_str(),
            "SemaphoreOptions::max",
            self.max.map(|max| max as usize),
            as_value(recorded),
        )?;
        Ok(recorded)
    }

    /// Refuses an initial value on an open: the semaphore has its own value by then.
    pub(crate) fn refuse_initial(&self, op: &'static str, subject: &str) -> Result<()> {
        if self.initial.is_none() {
            return Ok(());
        }
        Err(Error::new(
            op,
            io::ErrorKind::InvalidInput,
            "SemaphoreOptions::initial applies only when creating (an existing semaphore has \
             its own value); leave it unset to open",
        )
        .with_subject(subject))
    }

    /// Opens the existing semaphore `name`, waiting up to the
    /// [`timeout`](SemaphoreOptions::timeout) for a creator that has not made it yet. The
    /// handle enforces the bound the creator set.
    ///
    /// # Errors
    ///
    /// `NotFound` if none appeared in time; `PermissionDenied` if this user may not open
    /// it, or it belongs to another user (unless accepted); `InvalidInput` if these options
    /// set an [`initial`](SemaphoreOptions::initial) value, or a
    /// [`max`](SemaphoreOptions::max) other than the creator's; the errors of `sem_open`.
    pub fn open(&self, name: &IpcName) -> Result<NamedSemaphore> {
        self.check_values("sem_open")
            .map_err(|e| e.with_subject(name.as_str()))?;
        self.refuse_initial("sem_open", name.as_str())?;
        let (sem, file) = await_name(
            "semaphore of this name",
            "SemaphoreOptions::timeout",
            self.timeout,
            Deadline::after(self.timeout),
            || open_existing(name),
        )?;
        file.check_owner(name, self.accept_other_owner)?;
        let max = self.agreed_bound(&file, name)?;
        Ok(NamedSemaphore::new(sem, file, name, max, false))
    }
}

/// Where this crate records a named semaphore's bound in its file, past the `sem_t` (which
/// the C library maps alone, whatever follows): `IPCRSSEM`, the bound as a little-endian
/// `u32` (0: unbounded), 4 zero bytes. A semaphore another program made has none.
const BOUND_AT: usize = 64;
const BOUND_MAGIC: [u8; 8] = *b"IPCRSSEM";

fn encode_bound(max: Option<u32>) -> [u8; 16] {
    let mut record = [0u8; 16];
    record[..8].copy_from_slice(&BOUND_MAGIC);
    record[8..12].copy_from_slice(&max.unwrap_or(0).to_le_bytes());
    record
}

/// The path of the file behind the semaphore `name`.
fn sem_path(name: &IpcName) -> PathBuf {
    Path::new(SEM_DIR).join(format!("sem.{}", &name.as_str()[1..]))
}

/// Opens the semaphore `name` if it exists, with its file. A name replaced meanwhile is
/// `NotFound` too: an open that waits for a name then waits for its successor.
fn open_existing(name: &IpcName) -> Result<(sys::NamedSem, SemFile)> {
    let sem = sys::NamedSem::open(name.as_cstr(), OpenIntent::OpenExisting.flags(), 0, 0)
        .map_err(|e| e.with_op("sem_open").with_subject(name.as_str()))?;
    let file = SemFile::find(&sem, name)?;
    Ok((sem, file))
}

/// The file behind a named semaphore (`/dev/shm/sem.<name>` with glibc): kept open to lock
/// bounded posts, set permissions, check the owner and recognise the object at unlink.
#[derive(Debug)]
struct SemFile {
    file: File,
    path: PathBuf,
    id: ObjectId,
}

impl SemFile {
    /// Opens the semaphore's file, `/dev/shm/sem.<name>` (where glibc and musl keep named
    /// semaphores), checking that it is the file mapped at the semaphore's address (device
    /// and inode in `/proc/self/maps`): the name may have been replaced meanwhile.
    fn find(sem: &sys::NamedSem, name: &IpcName) -> Result<SemFile> {
        let not_found = |why: String| {
            Error::new("sem_open", io::ErrorKind::NotFound, why).with_subject(name.as_str())
        };
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|e| Error::from(e).with_op("read /proc/self/maps"))?;
        let address = sem.address();
        let (dev, ino) = maps
            .lines()
            .find_map(|line| mapping_at(line, address))
            .ok_or_else(|| not_found("the semaphore's mapping is not in /proc/self/maps".into()))?;
        let path = sem_path(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                Error::from(e)
                    .with_op("open")
                    .with_subject(path.display().to_string())
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::from(e).with_op("fstat").with_subject(name.as_str()))?;
        if (meta.dev(), meta.ino()) != (dev, ino) {
            return Err(not_found(format!(
                "{} was replaced while the semaphore was being opened",
                path.display()
            )));
        }
        Ok(SemFile {
            file,
            path,
            id: ObjectId::new(dev, ino),
        })
    }

    /// The bound recorded at creation (`Some(None)`: unbounded), or `None` for a file
    /// without a record. A record is as trustworthy as the `sem_t` beside it: every process
    /// that can open the semaphore can write both.
    fn recorded_bound(&self, name: &IpcName) -> Result<Option<Option<u32>>> {
        let mut record = [0u8; 16];
        let mut filled = 0;
        while filled < record.len() {
            match self
                .file
                .read_at(&mut record[filled..], (BOUND_AT + filled) as u64)
            {
                Ok(0) => return Ok(None),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e).with_op("read").with_subject(name.as_str())),
            }
        }
        if record[..8] != BOUND_MAGIC {
            return Ok(None);
        }
        let max = u32::from_le_bytes([record[8], record[9], record[10], record[11]]);
        match max {
            0 => Ok(Some(None)),
            max if max <= SEM_VALUE_MAX => Ok(Some(Some(max))),
            max => Err(Error::corrupted(
                "sem_open",
                format!("the semaphore's file records a bound of {max}, above SEM_VALUE_MAX"),
            )
            .with_subject(name.as_str())),
        }
    }

    fn check_owner(&self, name: &IpcName, accept_other_owner: bool) -> Result<()> {
        let owner = self
            .file
            .metadata()
            .map_err(|e| Error::from(e).with_op("fstat").with_subject(name.as_str()))?
            .uid();
        ipc_core::internal::check_owner(
            "sem_open",
            name.as_str(),
            owner,
            accept_other_owner,
            "SemaphoreOptions",
        )
    }
}

/// Where the C library keeps named semaphores.
const SEM_DIR: &str = "/dev/shm";

/// Parses one line of `/proc/self/maps`: the mapped file's device and inode if the mapping
/// contains `address`. (A creator's mapping shows the temporary file the C library created
/// and renamed, as deleted; the device and inode are those of the semaphore's file.)
fn mapping_at(line: &str, address: usize) -> Option<(u64, u64)> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    if !(start..end).contains(&address) {
        return None;
    }
    let _perms = fields.next()?;
    let _offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let dev = libc::makedev(
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    );
    let ino = fields.next()?.parse().ok()?;
    Some((dev, ino))
}

/// A semaphore's name and the file it led to when this process created it.
#[derive(Debug)]
struct SemName {
    name: IpcName,
    path: PathBuf,
    id: ObjectId,
}

impl Unlink for SemName {
    /// Removes the name, unless it now leads to another semaphore (one created after a purge).
    fn unlink(&self) -> Result<()> {
        let current = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|meta| ObjectId::of(&meta));
        let ours = self.id;
        unlink_if_ours(
            "sem_unlink",
            self.name.as_str(),
            "semaphore",
            ours,
            current,
            || {
                sys::sem_unlink(self.name.as_cstr())
                    .map_err(|e| e.with_op("sem_unlink").with_subject(self.name.as_str()))
            },
        )
    }
}

/// A named POSIX semaphore (`sem_open`), shared by every process that opens its name.
///
/// Counting by default; bounded or binary with [`SemaphoreOptions::max`] and
/// [`SemaphoreOptions::binary`]. Its creator removes the name on drop (the semaphore lives
/// on for processes that have it open). The handle may be shared between threads.
///
/// **A permit is lost if its holder dies**: POSIX semaphores do not know who took a permit.
/// For permits that return when their holder dies, use an [`UndoSemaphore`](crate::UndoSemaphore).
///
/// # Trusted peers only
///
/// This is glibc's semaphore, so that C programs can share it: its `sem_t` lives in a file
/// that every process allowed to open the name can write, and glibc aborts a process whose
/// wait finds a scribbled one. Every process that can open it is therefore trusted; set
/// [`permissions`](SemaphoreOptions::permissions) accordingly, or use an unnamed
/// [`Semaphore`](crate::Semaphore), whose words this crate validates, with peers you do
/// not trust.
#[derive(Debug)]
pub struct NamedSemaphore {
    sem: sys::NamedSem,
    file: SemFile,
    /// Serialises this process's bounded posts; the file lock serialises processes.
    posting: Mutex<()>,
    max: Option<u32>,
    name: UnlinkOnDrop<SemName>,
}

impl NamedSemaphore {
    fn new(
        sem: sys::NamedSem,
        file: SemFile,
        name: &IpcName,
        max: Option<u32>,
        created: bool,
    ) -> NamedSemaphore {
        let target = SemName {
            name: name.clone(),
            path: file.path.clone(),
            id: file.id,
        };
        NamedSemaphore {
            sem,
            file,
            posting: Mutex::new(()),
            max,
            name: if created {
                UnlinkOnDrop::owned(target)
            } else {
                UnlinkOnDrop::not_owned(target)
            },
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &IpcName {
        &self.name.get().name
    }

    /// The bound of posts through this handle, if any.
    pub fn max(&self) -> Option<u32> {
        self.max
    }

    /// Keeps the name after this handle is dropped (for semaphores meant to outlive their
    /// creator).
    pub fn persist(&mut self) {
        self.name.persist();
    }

    /// Removes the name now (whoever created it). Processes that have the semaphore open
    /// keep using it.
    ///
    /// # Errors
    ///
    /// The error of `sem_unlink`.
    pub fn unlink(&mut self) -> Result<()> {
        self.name.unlink()
    }

    fn subject(&self) -> &str {
        self.name().as_str()
    }

    fn err(&self, op: &'static str, e: Error) -> Error {
        e.with_op(op).with_subject(self.subject())
    }

    /// Adds one permit, waking a waiter.
    ///
    /// # Errors
    ///
    /// For a bounded semaphore, a limit error if the value is already at the maximum
    /// (nothing changes); `EOVERFLOW` at [`SEM_VALUE_MAX`].
    #[inline]
    pub fn post(&self) -> Result<()> {
        let Some(max) = self.max else {
            return self.sem.raw().post().map_err(|e| self.err("sem_post", e));
        };
        let _threads = self.posting.lock().unwrap_or_else(|e| e.into_inner());
        let _processes = PostLock::take(self)?;
        let value = self.value()?;
        if value >= max {
            let limit = Limit::new("SemaphoreOptions::max", u64::from(max));
            return Err(Error::limit_exceeded(
                "sem_post",
                "semaphore value",
                u64::from(value) + 1,
                limit,
            )
            .with_subject(self.subject()));
        }
        self.sem.raw().post().map_err(|e| self.err("sem_post", e))
    }

    /// Takes one permit, waiting as long as it takes. Interruptions by signals are retried.
    ///
    /// # Errors
    ///
    /// The errors of `sem_wait` other than `EINTR` (none for a valid semaphore).
    #[inline]
    pub fn wait(&self) -> Result<()> {
        wait::wait(self.sem.raw(), self.subject())
    }

    /// Takes one permit if one is available now.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the value is 0.
    pub fn try_wait(&self) -> Result<()> {
        wait::try_wait(self.sem.raw(), self.subject())
    }

    /// Takes one permit, waiting at most `timeout`; signals interrupt nothing (the wait
    /// resumes for the time left).
    ///
    /// The wait is measured on the monotonic clock (`sem_clockwait`), so setting the wall
    /// clock does not move it; see the crate's Limits for C libraries without it.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no permit came in time.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        wait::wait_timeout(self.sem.raw(), timeout, self.subject())
    }

    /// The current value (0 while processes wait).
    ///
    /// # Errors
    ///
    /// The error of `sem_getvalue` (none for a valid semaphore).
    pub fn value(&self) -> Result<u32> {
        wait::value(self.sem.raw(), self.subject())
    }

    crate::permit::acquire_methods!();

    /// The file behind the semaphore (`/dev/shm/sem.<name>` with glibc).
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

impl Sealed for NamedSemaphore {}

impl Release for NamedSemaphore {
    fn release_one(&self) -> Result<()> {
        self.post()
    }
}

/// An exclusive `flock` on the semaphore's file, held while a bounded post checks the value
/// and posts; the kernel drops it if the process dies.
struct PostLock<'a>(&'a NamedSemaphore);

impl<'a> PostLock<'a> {
    fn take(sem: &'a NamedSemaphore) -> Result<Self> {
        ipc_core::internal::retry_eintr(|| {
            sys::flock(sem.file.file.as_fd(), libc::LOCK_EX).map_err(|e| sem.err("flock", e))
        })?;
        Ok(PostLock(sem))
    }
}

impl Drop for PostLock<'_> {
    fn drop(&mut self) {
        // Unlocking an open descriptor does not fail; closing it would unlock as well.
        let _ = sys::flock(self.0.file.file.as_fd(), libc::LOCK_UN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let line = "7f00aa000000-7f00aa001000 rw-s 00000000 00:1a 4242                       /dev/shm/sem.Xy (deleted)";
        assert_eq!(
            mapping_at(line, 0x7f00_aa00_0010),
            Some((libc::makedev(0, 0x1a), 4242))
        );
        assert!(mapping_at(line, 0x7f00_aa00_1000).is_none());
        assert!(mapping_at("garbage", 0).is_none());
    }
}
