//! What every named object shares: its identity in the file system, the removal that never
//! takes a successor's object, and the owner check.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::deadline::Backoff;
use crate::{Deadline, Error, Result};

/// How long opening a named object waits by default, for its name to appear and for its
/// creator to finish setting it up.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A named object as the kernel knows it: the device and inode behind its name. Two opens
/// of a name reach the same object exactly when their identities are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    dev: u64,
    ino: u64,
}

impl ObjectId {
    /// The identity of the object on device `dev` with inode `ino`.
    pub fn new(dev: u64, ino: u64) -> ObjectId {
        ObjectId { dev, ino }
    }

    /// The identity of the object `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> ObjectId {
        ObjectId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity of the object open at `fd`.
    ///
    /// # Errors
    ///
    /// The `fstat` error.
    pub fn of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Result<ObjectId> {
        // One `fstat` on the descriptor itself (a `File` would need a duplicate first).
        let stat = nix::sys::stat::fstat(fd).map_err(|e| Error::from_errno("fstat", e))?;
        Ok(ObjectId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }
}

/// Removes the name `subject` (with `unlink`) only if it still leads to the object its
/// creator made, `ours`: `current` is what the name leads to now (`None` when it leads
/// nowhere or cannot be looked at, which `unlink` then reports). A creator's drop must never
/// take the name from under a successor created after a purge.
///
/// # Errors
///
/// `NotFound` ("left alone") when the name leads to another object of the kind `what`;
/// otherwise `unlink`'s error.
pub fn unlink_if_ours(
    op: &'static str,
    subject: &str,
    what: &str,
    ours: ObjectId,
    current: Option<ObjectId>,
    unlink: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if current.is_some_and(|current| current != ours) {
        return Err(Error::new(
            op,
            io::ErrorKind::NotFound,
            format!("the name now leads to another {what}; left alone"),
        )
        .with_subject(subject));
    }
    unlink()
}

/// Runs `open` until the name it opens exists or `deadline` (`timeout` from the start)
/// passes: an open with a timeout waits for a creator that has not started yet. Any other
/// outcome of `open` is returned as it is.
///
/// # Errors
///
/// `NotFound` once the deadline has passed, saying that no `what` ("queue of this name")
/// appeared within `timeout` and which `option` ("QueueOptions::timeout") sets it; with a
/// zero timeout, `open`'s own `NotFound`.
pub fn await_name<T>(
    what: &str,
    option: &str,
    timeout: Duration,
    deadline: Deadline,
    mut open: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut backoff = Backoff::new(Duration::from_millis(5));
    loop {
        match open() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let subject = |e: Error| match err.subject() {
                    Some(subject) => e.with_subject(subject),
                    None => e,
                };
                if backoff.pause(deadline, err.op()).map_err(subject)? {
                    continue;
                }
                if timeout.is_zero() {
                    return Err(err);
                }
                return Err(subject(Error::new(
                    err.op(),
                    io::ErrorKind::NotFound,
                    format!("no {what} appeared within {timeout:?} ({option})"),
                )));
            }
            outcome => return outcome,
        }
    }
}

/// Refuses an existing object whose size or count is `actual` where the creation-only
/// option `option` (such as `"QueueOptions::capacity"`) asks for `requested`: such options
/// shape an object when it is created, and an open must not ignore them silently. `None`
/// (the option left unset) accepts any value.
///
/// # Errors
///
/// `InvalidInput`, naming the object's value, the option, and the fix.
pub fn check_creation_option(
    op: &'static str,
    subject: &str,
    option: &str,
    requested: Option<usize>,
    actual: usize,
) -> Result<()> {
    match requested {
        Some(requested) if requested != actual => Err(Error::new(
            op,
            io::ErrorKind::InvalidInput,
            format!(
                "it exists with {actual} where {option} asks for {requested}: that option \
                 applies only when creating; leave it unset to open the object as it is"
            ),
        )
        .with_subject(subject)),
        _ => Ok(()),
    }
}

/// Refuses an object owned by a user other than this process's effective user, unless
/// `accept` (the `accept_other_owner` option of `options`, such as `"QueueOptions"`): its
/// owner decides who else may use it, so it is trusted only when the caller says so.
///
/// # Errors
///
/// `PermissionDenied`, naming both users and the option that accepts the object.
pub fn check_owner(
    op: &'static str,
    subject: &str,
    owner: u32,
    accept: bool,
    options: &str,
) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if owner == me || accept {
        return Ok(());
    }
    Err(Error::new(
        op,
        io::ErrorKind::PermissionDenied,
        format!(
            "belongs to uid {owner}, not to this user (uid {me}); if you trust that user, \
             use {options}::accept_other_owner(true)"
        ),
    )
    .with_subject(subject))
}

/// The setters every named kind's options share, so that they read and behave alike:
/// `creation_mode`, `permissions`, `accept_other_owner` and `timeout`, on fields of those
/// names (`mode` for the creation mode).
/// `$noun` names the object in the docs ("queue").
#[doc(hidden)]
#[macro_export]
macro_rules! named_object_setters {
    ($noun:literal) => {
        #[doc = concat!(
            "What creating a ", $noun, " does when the name exists: fail (the default, ",
            "`CreationMode::CreateExclusive`), open the existing one, or purge it and create ",
            "anew."
        )]
        #[must_use]
        pub fn creation_mode(mut self, mode: $crate::CreationMode) -> Self {
            self.mode = mode;
            self
        }

        #[doc = concat!(
            "The permissions of a created ", $noun, ", applied exactly (the umask does not ",
            "narrow them); owner-only by default."
        )]
        #[must_use]
        pub fn permissions(mut self, permissions: $crate::Permissions) -> Self {
            self.permissions = permissions;
            self
        }

        #[doc = concat!(
            "Whether opening accepts a ", $noun, " owned by another user. Refused by default: ",
            "its owner decides who else may use it, and a name another user took first may ",
            "be a trap."
        )]
        #[must_use]
        pub fn accept_other_owner(mut self, accept: bool) -> Self {
            self.accept_other_owner = accept;
            self
        }

        #[doc = concat!(
            "How long opening waits for the ", $noun, ": for its name to appear (its ",
            "creator may not have started yet) and for its creator to finish setting it up; ",
            "5 s by default. Zero opens only a ", $noun, " that is there and ready, and ",
            "fails with `NotFound` at once otherwise."
        )]
        #[must_use]
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeout = timeout;
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successors_object_is_left_alone_and_ours_is_removed() {
        let (ours, theirs) = (ObjectId { dev: 1, ino: 2 }, ObjectId { dev: 1, ino: 3 });
        let err = unlink_if_ours("unlink", "/x", "queue", ours, Some(theirs), || {
            panic!("must not unlink")
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("another queue"), "{err}");
        let mut removed = 0;
        for current in [Some(ours), None] {
            unlink_if_ours("unlink", "/x", "queue", ours, current, || {
                removed += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(removed, 2);
    }

    #[test]
    fn an_open_waits_for_its_name_until_the_deadline() {
        let not_found = || Error::new("mq_open", io::ErrorKind::NotFound, "no such queue");
        let mut tries = 0;
        let found = await_name(
            "queue of this name",
            "QueueOptions::timeout",
            OPEN_TIMEOUT,
            Deadline::NEVER,
            || {
                tries += 1;
                if tries < 3 {
                    Err(not_found().with_subject("/q"))
                } else {
                    Ok(tries)
                }
            },
        )
        .unwrap();
        assert_eq!(found, 3);

        let timeout = Duration::from_millis(20);
        let start = std::time::Instant::now();
        let err = await_name(
            "queue of this name",
            "QueueOptions::timeout",
            timeout,
            Deadline::after(timeout),
            || Err::<(), _>(not_found().with_subject("/q")),
        )
        .unwrap_err();
        assert!(start.elapsed() >= timeout);
        assert_eq!(
            (err.kind(), err.op(), err.subject()),
            (io::ErrorKind::NotFound, "mq_open", Some("/q"))
        );
        assert!(err.to_string().contains("QueueOptions::timeout"), "{err}");

        let err = await_name(
            "queue of this name",
            "QueueOptions::timeout",
            Duration::ZERO,
            Deadline::after(Duration::ZERO),
            || Err::<(), _>(not_found()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no such queue"), "{err}");
    }

    #[test]
    fn a_creation_option_that_disagrees_with_the_object_is_refused() {
        check_creation_option("mq_open", "/q", "QueueOptions::capacity", None, 10).unwrap();
        check_creation_option("mq_open", "/q", "QueueOptions::capacity", Some(10), 10).unwrap();
        let err = check_creation_option("mq_open", "/q", "QueueOptions::capacity", Some(8), 10)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains("with 10 where QueueOptions::capacity asks for 8"),
            "{err}"
        );
    }

    #[test]
    fn another_owner_is_refused_with_the_fix_named() {
        let me = nix::unistd::geteuid().as_raw();
        check_owner("open", "/x", me, false, "ShmOptions").unwrap();
        check_owner("open", "/x", me + 1, true, "ShmOptions").unwrap();
        let err = check_owner("open", "/x", me + 1, false, "ShmOptions").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string()
                .contains("ShmOptions::accept_other_owner(true)"),
            "{err}"
        );
    }
}
