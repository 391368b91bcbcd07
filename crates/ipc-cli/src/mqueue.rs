//! Where POSIX message queues can be seen: they are files only in an `mqueue` file system.

use std::path::{Path, PathBuf};

use ipc_core::{Error, Result};

/// The usual mount point of the `mqueue` file system.
const MOUNT_POINT: &str = "/dev/mqueue";

/// A directory that shows the machine's POSIX message queues: `/dev/mqueue` if an
/// `mqueue` file system is mounted there, otherwise one mounted for this process alone in a
/// mount namespace of its own, removed on drop.
#[derive(Debug)]
pub struct MqueueDir {
    path: PathBuf,
    private: bool,
}

impl MqueueDir {
    /// Finds or mounts the directory.
    ///
    /// A private mount moves the whole process into a new mount namespace, which the kernel
    /// allows only while the process has one thread: call this first thing in `main`.
    ///
    /// # Errors
    ///
    /// Without a mount at `/dev/mqueue`: the error of `unshare(CLONE_NEWNS)` (not root, or
    /// threads already started) or of the mount.
    pub fn open() -> Result<MqueueDir> {
        if let Some(path) = mounted() {
            return Ok(MqueueDir {
                path,
                private: false,
            });
        }
        use nix::mount::{MsFlags, mount};
        use nix::sched::{CloneFlags, unshare};
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| {
            Error::from_errno("unshare(CLONE_NEWNS)", e)
                .with_subject("a private mqueue mount (needs root and a single thread)")
        })?;
        // Keep the mount from propagating back into the machine's namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| Error::from_errno("mount(MS_PRIVATE)", e).with_subject("/"))?;
        let path = std::env::temp_dir().join(format!("ipc-mqueue-{}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| {
            Error::from(e)
                .with_op("mkdir")
                .with_subject(path.display().to_string())
        })?;
        if let Err(e) = mount(
            Some("mqueue"),
            &path,
            Some("mqueue"),
            MsFlags::empty(),
            None::<&str>,
        ) {
            // Nothing was mounted: the empty directory is all there is to undo.
            let _ = std::fs::remove_dir(&path);
            return Err(
                Error::from_errno("mount -t mqueue", e).with_subject(path.display().to_string())
            );
        }
        Ok(MqueueDir {
            path,
            private: true,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MqueueDir {
    fn drop(&mut self) {
        if self.private {
            // The mount lives in this process's namespace only and ends with it anyway; the
            // directory is all that would remain, and a failure leaves just that.
            let _ = nix::mount::umount(&self.path);
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// `/dev/mqueue`, if an `mqueue` file system is mounted there.
pub(crate) fn mounted() -> Option<PathBuf> {
    // The file system magic number of `mqueue`, which nix does not name.
    const MQUEUE_MAGIC: u32 = 0x1980_0202;
    let is_mqueue = nix::sys::statfs::statfs(MOUNT_POINT)
        .is_ok_and(|fs| u32::try_from(fs.filesystem_type().0) == Ok(MQUEUE_MAGIC));
    is_mqueue.then(|| PathBuf::from(MOUNT_POINT))
}
