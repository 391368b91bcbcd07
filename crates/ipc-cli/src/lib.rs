//! The library behind `ipc`, the command-line tool that lists, inspects and cleans every
//! IPC object on a Linux machine: POSIX segments, semaphores and message queues of any
//! name, System V sets, segments and queues, FIFOs and Unix sockets, and the processes that
//! hold each of them.
//!
//! ```no_run
//! use ipc_cli::{ListOptions, State};
//!
//! let listing = ipc_cli::list(&ListOptions::new())?;
//! for object in listing.objects.iter().filter(|o| o.state == State::Stale) {
//!     println!("{} {}: {}", object.kind, object.name, object.reason);
//! }
//! # Ok::<(), ipc_cli::Error>(())
//! ```
//!
//! An object is *live* when a live process holds it (a descriptor, a mapping, a bound
//! socket, a System V attachment, a wait) or its recorded creator lives; *stale* when no
//! live process is known to use it; *kept* when no process is known to use it but removing
//! it would lose something the kernel cannot vouch for (a set its creator persisted, a
//! System V object nobody has used yet, whose creator the kernel does not record; for a
//! user other than root, another user's object, whose holders are private).
//! [`remove`] removes only what is not live, and decides again just before it does.
//!
//! What it cannot see: message queues without an `mqueue` mount it can make or find
//! ([`MqueueDir`]); FIFOs and socket files that no process holds outside the searched
//! directories; the holders of another user's objects without root (`/proc/PID/fd` and
//! `maps` are private).

#![deny(unsafe_code)]

mod files;
mod inspect;
mod mqueue;
mod object;
mod posix;
mod procs;
mod remove;
#[allow(unsafe_code)]
mod sys;
mod sysv;

use std::path::PathBuf;

pub use inspect::inspect;
pub use ipc_core::{Error, Result};
pub use mqueue::MqueueDir;
pub use object::{Kind, Object, State};
pub use procs::{Holder, How};
pub use remove::{Removal, remove};

/// What to list: the kinds, and where to look for FIFOs and sockets no process holds.
#[derive(Clone, Debug)]
pub struct ListOptions {
    kinds: Vec<Kind>,
    dirs: Vec<PathBuf>,
    mqueue: Option<PathBuf>,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions::new()
    }
}

impl ListOptions {
    /// Every kind; FIFOs and sockets searched for in the temporary directory, `/run` and
    /// `/dev/shm`; queues read from `/dev/mqueue` if an `mqueue` file system is mounted
    /// there.
    pub fn new() -> ListOptions {
        ListOptions {
            kinds: Kind::ALL.to_vec(),
            dirs: vec![
                std::env::temp_dir(),
                PathBuf::from("/run"),
                PathBuf::from(posix::SHM_DIR),
            ],
            mqueue: None,
        }
    }

    /// Only these kinds (all of them if `kinds` is empty).
    pub fn kinds(&mut self, kinds: &[Kind]) -> &mut Self {
        self.kinds = if kinds.is_empty() {
            Kind::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
        self
    }

    /// Also searches `dir` (and up to two levels below it) for FIFOs and sockets.
    pub fn search(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.dirs.push(dir.into());
        self
    }

    /// Reads message queues from `dir`, an `mqueue` file system (see [`MqueueDir`]).
    pub fn mqueue_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.mqueue = Some(dir.into());
        self
    }
}

/// What [`list`] found.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The objects, by kind, then name.
    pub objects: Vec<Object>,
    /// What could not be seen, and why: one sentence each.
    pub unseen: Vec<String>,
}

/// Lists the objects `options` asks for, each with its holders and state.
///
/// # Errors
///
/// Only if `/proc` cannot be read; a table or directory that cannot be read is named in
/// [`Listing::unseen`] instead.
pub fn list(options: &ListOptions) -> Result<Listing> {
    std::fs::read_dir("/proc")
        .map_err(|e| Error::from(e).with_op("read_dir").with_subject("/proc"))?;
    let procs = procs::Processes::snapshot();
    let wants = |kind: Kind| options.kinds.contains(&kind);
    let mut listing = Listing::default();
    if !nix::unistd::Uid::effective().is_root() {
        listing.unseen.push(
            "holders of other users' objects: /proc/PID/fd and maps are private to their \
             owner (run as root to see them)"
                .to_owned(),
        );
    }
    if [Kind::Shm, Kind::Channel, Kind::Sem].into_iter().any(wants) {
        let dir = std::path::Path::new(posix::SHM_DIR);
        if dir.is_dir() {
            listing.objects.extend(posix::shm_objects(dir, &procs));
        } else {
            listing.unseen.push(format!(
                "POSIX segments and semaphores: {} is missing",
                posix::SHM_DIR
            ));
        }
    }
    if wants(Kind::Mq) {
        let dir = options.mqueue.clone().or_else(mqueue::mounted);
        match dir {
            Some(dir) => listing.objects.extend(posix::queues(&dir, &procs)),
            None => listing.unseen.push(
                "POSIX message queues: no mqueue file system is mounted at /dev/mqueue, \
                 and none could be mounted privately (that needs root)"
                    .to_owned(),
            ),
        }
    }
    if wants(Kind::SysvSem) {
        listing.objects.extend(sysv::semaphore_sets(&procs));
    }
    if wants(Kind::SysvShm) {
        listing.objects.extend(sysv::segments(&procs));
    }
    if wants(Kind::SysvMsg) {
        listing.objects.extend(sysv::queues(&procs));
    }
    if wants(Kind::Fifo) || wants(Kind::Socket) {
        listing
            .objects
            .extend(files::fifos_and_sockets(&options.dirs, &procs));
    }
    listing.objects.retain(|object| wants(object.kind));
    // Another user's holders are invisible to this one: what looks unused may not be.
    let euid = nix::unistd::Uid::effective();
    if !euid.is_root() {
        for object in &mut listing.objects {
            if object.state == State::Stale && object.uid != euid.as_raw() {
                object.state = State::Kept;
                object.reason = "kept: another user's object, whose holders this user cannot \
                                 see (run as root to decide)"
                    .to_owned();
            }
        }
    }
    listing
        .objects
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(listing)
}
