//! How named objects are created, who may open them, and who removes them.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;

use crate::{Error, Result};

/// What to do when the named object to create may already exist.
///
/// ```
/// use ipc_core::CreationMode;
///
/// assert_eq!(CreationMode::default(), CreationMode::CreateExclusive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CreationMode {
    /// Create a new object; fail with [`io::ErrorKind::AlreadyExists`] if the name is taken.
    /// The safe default: nobody else can have prepared the object.
    #[default]
    CreateExclusive,
    /// Open the object if it exists, create it otherwise. The caller learns which happened
    /// (see [`Opened::created`]) and owns the name only if it created the object.
    OpenOrCreate,
    /// Remove an object of the same name first (a stale one left by a crash), then create
    /// exclusively. Use it only for names that no live process may be using.
    PurgeAndCreate,
}

/// How [`CreationMode::open_with`] asks the caller to open the object in one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenIntent {
    /// Create the object, failing if it exists (`O_CREAT | O_EXCL`).
    Create,
    /// Open the object only if it exists (no `O_CREAT`).
    OpenExisting,
}

impl OpenIntent {
    /// The `open`-style flags for this intent: `O_CREAT | O_EXCL` or nothing.
    pub fn flags(self) -> libc::c_int {
        match self {
            OpenIntent::Create => libc::O_CREAT | libc::O_EXCL,
            OpenIntent::OpenExisting => 0,
        }
    }
}

/// The result of [`CreationMode::open_with`]: the opened object, and whether this call
/// created it.
#[derive(Debug)]
pub struct Opened<T> {
    /// The opened object.
    pub object: T,
    /// True if this call created the object: the caller then initialises it and owns its name.
    pub created: bool,
}

impl CreationMode {
    /// Opens or creates a named object according to the mode, never guessing whether it
    /// was created.
    ///
    /// `open` performs one attempt with the given [`OpenIntent`]; `purge` removes the name
    /// (for [`CreationMode::PurgeAndCreate`]; its `NotFound` error is ignored).
    /// [`CreationMode::OpenOrCreate`] first tries an exclusive create and then an open of the
    /// existing object; if the object vanishes between the two it starts again, a bounded
    /// number of times. This is how `created` stays exact when several processes race to
    /// create the same object, which a plain `O_CREAT` cannot tell.
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::io::ErrorKind;
    /// use ipc_core::{CreationMode, Error, OpenIntent};
    ///
    /// let mut existing: HashSet<&str> = HashSet::from(["/taken"]);
    /// let mut open = |name: &'static str, mode: CreationMode, existing: &mut HashSet<&str>| {
    ///     mode.open_with(
    ///         |intent| match (intent, existing.contains(name)) {
    ///             (OpenIntent::Create, true) => Err(Error::from_raw_os_error("open", libc::EEXIST)),
    ///             (OpenIntent::Create, false) => Ok(existing.insert(name)),
    ///             (OpenIntent::OpenExisting, true) => Ok(false),
    ///             (OpenIntent::OpenExisting, false) => Err(Error::from_raw_os_error("open", libc::ENOENT)),
    ///         },
    ///         || Ok(()),
    ///     )
    /// };
    /// assert!(open("/new", CreationMode::CreateExclusive, &mut existing).unwrap().created);
    /// let err = open("/taken", CreationMode::CreateExclusive, &mut existing).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    /// assert!(!open("/taken", CreationMode::OpenOrCreate, &mut existing).unwrap().created);
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] for an exclusive create of a taken name; any other
    /// error of `open` or `purge`; for [`CreationMode::OpenOrCreate`], the `NotFound` of the
    /// last open if the object vanished in every round.
    pub fn open_with<T>(
        self,
        mut open: impl FnMut(OpenIntent) -> Result<T>,
        mut purge: impl FnMut() -> Result<()>,
    ) -> Result<Opened<T>> {
        /// How often an object may vanish between a failed exclusive create and the open
        /// that follows before we give up; each round needs another process to create and
        /// remove the object in the window, so a handful is plenty.
        const ROUNDS: usize = 16;
        let created = |object| Opened {
            object,
            created: true,
        };
        match self {
            CreationMode::CreateExclusive => open(OpenIntent::Create).map(created),
            CreationMode::PurgeAndCreate => {
                match purge() {
                    Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
                open(OpenIntent::Create).map(created)
            }
            CreationMode::OpenOrCreate => {
                let mut last = None;
                for _ in 0..ROUNDS {
                    match open(OpenIntent::Create) {
                        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                        other => return other.map(created),
                    }
                    match open(OpenIntent::OpenExisting) {
                        Err(err) if err.kind() == io::ErrorKind::NotFound => last = Some(err),
                        other => {
                            return other.map(|object| Opened {
                                object,
                                created: false,
                            });
                        }
                    }
                }
                Err(last.unwrap_or_else(|| Error::from_raw_os_error("open", libc::ENOENT)))
            }
        }
    }
}

/// Access granted to one class of users (group or others) by [`Permissions`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// No access (the default for group and others).
    #[default]
    None,
    /// Read-only: open a segment or queue for reading.
    Read,
    /// Read and write.
    ReadWrite,
}

impl Access {
    /// The `rwx` bits of one user class (`r-` or `rw`, the execute bit is never needed).
    const fn bits(self) -> u32 {
        match self {
            Access::None => 0,
            Access::Read => 0o4,
            Access::ReadWrite => 0o6,
        }
    }
}

/// The permission bits of a new named object: owner-only (`0600`) unless widened.
///
/// The toolkit applies them with `fchmod` on the new object's descriptor right after
/// creating it, so the process umask neither narrows them nor has to be changed (changing
/// the umask is process-wide and would race with other threads).
///
/// ```
/// use ipc_core::{Access, Permissions};
///
/// assert_eq!(Permissions::default().mode(), 0o600);
/// let shared = Permissions::owner_only().group(Access::ReadWrite).others(Access::Read);
/// assert_eq!(shared.mode(), 0o664);
/// assert_eq!(Permissions::from_mode(0o640)?.mode(), 0o640);
/// assert!(Permissions::from_mode(0o4600).is_err());
/// # Ok::<(), ipc_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions {
    mode: u32,
}

impl Default for Permissions {
    fn default() -> Self {
        Self::owner_only()
    }
}

impl Permissions {
    /// Read and write for the owner, nothing for anyone else (`0600`).
    pub const fn owner_only() -> Self {
        Permissions { mode: 0o600 }
    }

    /// Exact mode bits, such as `0o640`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `mode` has bits outside `0o777` (set-user-id,
    /// set-group-id, sticky or file-type bits).
    pub fn from_mode(mode: u32) -> Result<Self> {
        if mode & !0o777 != 0 {
            return Err(Error::new(
                "Permissions::from_mode",
                io::ErrorKind::InvalidInput,
                format!("mode {mode:#o} has bits outside 0o777"),
            ));
        }
        Ok(Permissions { mode })
    }

    /// Sets the access of the owning group.
    #[must_use]
    pub const fn group(self, access: Access) -> Self {
        Permissions {
            mode: (self.mode & !0o070) | (access.bits() << 3),
        }
    }

    /// Sets the access of all other users.
    #[must_use]
    pub const fn others(self, access: Access) -> Self {
        Permissions {
            mode: (self.mode & !0o007) | access.bits(),
        }
    }

    /// The mode bits, as passed to `open` or `fchmod`.
    pub const fn mode(self) -> u32 {
        self.mode
    }

    /// Sets these bits on an open object with `fchmod`, ignoring the umask.
    ///
    /// # Errors
    ///
    /// The `fchmod` error (`EPERM` if the caller does not own the object).
    pub fn apply(self, fd: BorrowedFd<'_>) -> Result<()> {
        let mode = nix::sys::stat::Mode::from_bits_truncate(self.mode as libc::mode_t);
        nix::sys::stat::fchmod(fd, mode).map_err(|errno| Error::from_errno("fchmod", errno))
    }

    /// Sets these bits on an object created with them, whose mode `fstat` read as
    /// `st_mode`, only if the umask took some away: the common case costs no `fchmod`.
    ///
    /// # Errors
    ///
    /// As [`Permissions::apply`].
    pub fn ensure(self, fd: BorrowedFd<'_>, st_mode: u32) -> Result<()> {
        if st_mode & 0o777 == self.mode {
            return Ok(());
        }
        self.apply(fd)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({:#05o})", self.mode)
    }
}

/// A named object that can be removed by name: `shm_unlink`, `sem_unlink`, `mq_unlink`,
/// or removing a FIFO or socket path.
pub trait Unlink {
    /// Removes the name. Processes that have the object open keep using it.
    ///
    /// # Errors
    ///
    /// The OS error of the removal, such as `NotFound` if someone else removed it.
    fn unlink(&self) -> Result<()>;
}

/// Ownership of a name: removes it when dropped, unless persisted.
///
/// Whoever creates a named object owns its name; a handle keeps an `UnlinkOnDrop` next to
/// its descriptor so that the name goes away with the creator's handle, including on early
/// returns and panics. A process that only opened the object holds a non-owning one
/// ([`UnlinkOnDrop::not_owned`]).
///
/// ```
/// use std::cell::Cell;
/// use ipc_core::{Result, Unlink, UnlinkOnDrop};
///
/// struct Counted<'a>(&'a Cell<u32>);
/// impl Unlink for Counted<'_> {
///     fn unlink(&self) -> Result<()> {
///         self.0.set(self.0.get() + 1);
///         Ok(())
///     }
/// }
///
/// let removed = Cell::new(0);
/// drop(UnlinkOnDrop::owned(Counted(&removed)));
/// assert_eq!(removed.get(), 1);
///
/// let mut kept = UnlinkOnDrop::owned(Counted(&removed));
/// kept.persist();
/// drop(kept);
/// assert_eq!(removed.get(), 1);
/// ```
pub struct UnlinkOnDrop<T: Unlink> {
    target: T,
    owned: bool,
}

impl<T: Unlink> UnlinkOnDrop<T> {
    /// Owns `target`: it is unlinked on drop.
    pub fn owned(target: T) -> Self {
        UnlinkOnDrop {
            target,
            owned: true,
        }
    }

    /// Refers to `target` without owning it: nothing happens on drop.
    pub fn not_owned(target: T) -> Self {
        UnlinkOnDrop {
            target,
            owned: false,
        }
    }

    /// True if the name will be removed on drop.
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Gives up ownership: the name outlives this handle (and this process) until someone
    /// unlinks it.
    pub fn persist(&mut self) {
        self.owned = false;
    }

    /// Removes the name now, whether owned or not, and reports the outcome.
    ///
    /// # Errors
    ///
    /// The error of [`Unlink::unlink`]; the name is no longer owned either way, so it is
    /// not removed a second time on drop.
    pub fn unlink(&mut self) -> Result<()> {
        self.owned = false;
        self.target.unlink()
    }

    /// The owned or referred-to object.
    pub fn get(&self) -> &T {
        &self.target
    }
}

impl<T: Unlink> Drop for UnlinkOnDrop<T> {
    fn drop(&mut self) {
        if self.owned {
            // A destructor cannot report failure, and the likely one (someone else already
            // removed the name) leaves nothing to clean up. Callers who care call `unlink`.
            let _ = self.target.unlink();
        }
    }
}

impl<T: Unlink + fmt::Debug> fmt::Debug for UnlinkOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlinkOnDrop")
            .field("target", &self.target)
            .field("owned", &self.owned)
            .finish()
    }
}
