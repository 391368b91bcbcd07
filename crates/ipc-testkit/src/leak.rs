//! Checking that a test leaves no descriptors or named objects behind.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ipc_core::IpcName;
use nix::sys::stat::Mode;

use crate::peer::{kit_fds, spawned_pids};
use crate::{TEST_PREFIX, unique_name};

const SHM_DIR: &str = "/dev/shm";
const MQUEUE_DIR: &str = "/dev/mqueue";
/// The wake FIFOs of `ipc-shm`'s polled channel ends, named after their creator the way
/// [`IpcName::unique`] names are.
const WAKE_PREFIX: &str = "ipcrs-wake-";

/// Fails the test if it leaves anything behind: open descriptors, objects in `/dev/shm`
/// (segments and semaphores), message queues, or files in its scratch directory. It also
/// removes what was left, so that a failing test does not leave litter either.
///
/// Create it first in a test, so that it is dropped last:
///
/// ```
/// use ipc_testkit::LeakGuard;
///
/// let guard = LeakGuard::new();
/// let name = guard.name("segment"); // a unique name the guard watches
/// let socket_path = guard.dir().join("server.sock");
/// // ... create, use and remove objects called `name` and `socket_path` ...
/// # let _ = (name, socket_path);
/// guard.check().unwrap(); // or let the drop check
/// ```
///
/// What it sees:
///
/// - names made by [`LeakGuard::name`] or passed to [`LeakGuard::track`], whatever the
///   process runs: no shared-memory object, semaphore or queue of that name may exist,
///   nor an object in `/dev/shm` named after it (`{name}-0`, `{name}-1` …);
/// - the guard's [`dir`](LeakGuard::dir), which must be empty;
/// - when the process runs one test at a time (nextest's process-per-test mode, which
///   `cargo xtask test` uses, `RUST_TEST_THREADS=1`, or a peer process): descriptors
///   opened and not closed since the guard was made, and new objects in `/dev/shm` and a
///   mounted `/dev/mqueue` (the wake FIFOs of polled channel ends among them) whose
///   [`IpcName::unique`] name says this process or one of its peers created them. With
///   several tests in one process these are skipped, because other tests' descriptors and
///   objects cannot be told apart.
///
/// Dropping the guard checks and panics with a [`LeakReport`], unless the thread is
/// already panicking (it then only cleans up).
#[derive(Debug)]
pub struct LeakGuard {
    names: Mutex<Vec<IpcName>>,
    dir: OnceLock<PathBuf>,
    exclusive: Option<Snapshot>,
    peers_before: usize,
}

/// What existed when the guard was made, in single-test mode.
#[derive(Debug)]
struct Snapshot {
    fds: BTreeSet<(i32, String)>,
    objects: BTreeSet<PathBuf>,
}

impl Default for LeakGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl LeakGuard {
    /// Starts watching.
    pub fn new() -> Self {
        let exclusive = runs_one_test_per_process().then(|| Snapshot {
            fds: open_fds(),
            objects: object_files(),
        });
        LeakGuard {
            names: Mutex::new(Vec::new()),
            dir: OnceLock::new(),
            exclusive,
            peers_before: spawned_pids().len(),
        }
    }

    /// A unique name for an object of this test (see [`unique_name`]), watched by the guard.
    pub fn name(&self, tag: &str) -> IpcName {
        let name = unique_name(tag);
        self.track(&name);
        name
    }

    /// Watches a name made elsewhere.
    pub fn track(&self, name: &IpcName) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
    }

    /// A fresh scratch directory for socket files and FIFOs, created on first use (mode
    /// `0755`); it must be empty when the test ends, and is then removed.
    ///
    /// # Panics
    ///
    /// If the directory cannot be created.
    pub fn dir(&self) -> &Path {
        self.dir.get_or_init(|| {
            let name = unique_name("dir");
            let path = std::env::temp_dir().join(name.file_name());
            fs::create_dir(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
            path
        })
    }

    /// Looks for leaks now.
    ///
    /// # Errors
    ///
    /// A [`LeakReport`] listing everything left behind.
    pub fn check(&self) -> Result<(), LeakReport> {
        let leaks = self.find_leaks();
        if leaks.is_empty() {
            Ok(())
        } else {
            Err(LeakReport { leaks })
        }
    }

    fn find_leaks(&self) -> Vec<Leak> {
        let mut leaks = Vec::new();
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for name in &names {
            for file in [
                format!("{SHM_DIR}/{}", name.file_name()),
                format!("{SHM_DIR}/sem.{}", name.file_name()),
            ] {
                if Path::new(&file).exists() {
                    leaks.push(Leak::File(PathBuf::from(file)));
                }
            }
            if queue_exists(name) {
                leaks.push(Leak::Queue(name.clone()));
            }
        }
        // Names a test derives from one of its own (`{name}-0`, `{name}-1` …).
        let derived: Vec<String> = names
            .iter()
            .map(|name| format!("{}-", name.file_name()))
            .collect();
        for file in object_files() {
            let Some(object) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let object = object.strip_prefix("sem.").unwrap_or(object);
            if derived.iter().any(|prefix| object.starts_with(prefix)) {
                leaks.push(Leak::File(file));
            }
        }
        if let Some(dir) = self.dir.get() {
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    leaks.push(Leak::File(entry.path()));
                }
            }
        }
        if let Some(before) = &self.exclusive {
            let mut creators: BTreeSet<u32> =
                spawned_pids().into_iter().skip(self.peers_before).collect();
            creators.insert(std::process::id());
            for file in object_files().difference(&before.objects) {
                let created_here = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(IpcName::creator_pid_of)
                    .is_some_and(|pid| creators.contains(&pid));
                let already = leaks
                    .iter()
                    .any(|l| matches!(l, Leak::File(f) if f == file));
                if created_here && !already {
                    leaks.push(Leak::File(file.clone()));
                }
            }
            let kit = kit_fds();
            // The process's cancellation token, once made (a shutdown handler makes it),
            // keeps its descriptor for the life of the process: no leak.
            let token = ipc_core::internal::process_token_fd();
            // So do the relay thread's epoll set and timer, once started.
            let relay = ipc_core::internal::relay_fds();
            for (fd, target) in open_fds().difference(&before.fds) {
                if !kit.contains(fd) && token != Some(*fd) && !relay.contains(fd) {
                    leaks.push(Leak::Fd(*fd, target.clone()));
                }
            }
        }
        leaks
    }

    fn clean_up(&self, leaks: &[Leak]) {
        // Best effort: whatever cannot be removed is already named in the report.
        for leak in leaks {
            match leak {
                Leak::File(path) => {
                    let _ = fs::remove_file(path);
                }
                Leak::Queue(name) => {
                    let _ = nix::mqueue::mq_unlink(name.as_cstr());
                }
                Leak::Fd(..) => {}
            }
        }
        if let Some(dir) = self.dir.get() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Drop for LeakGuard {
    fn drop(&mut self) {
        let leaks = self.find_leaks();
        self.clean_up(&leaks);
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("{}", LeakReport { leaks });
        }
    }
}

/// What a test left behind, found by [`LeakGuard`].
#[derive(Debug)]
pub struct LeakReport {
    leaks: Vec<Leak>,
}

impl LeakReport {
    /// One line per leaked item.
    pub fn items(&self) -> Vec<String> {
        self.leaks.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the test left {} thing(s) behind:", self.leaks.len())?;
        for leak in &self.leaks {
            writeln!(f, "  - {leak}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LeakReport {}

#[derive(Debug)]
enum Leak {
    Fd(i32, String),
    File(PathBuf),
    Queue(IpcName),
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leak::Fd(fd, target) => write!(f, "descriptor {fd} ({target}) is still open"),
            Leak::File(path) => write!(f, "{} still exists", path.display()),
            Leak::Queue(name) => write!(f, "message queue {name} still exists"),
        }
    }
}

/// True when this process runs a single test, so that process-wide state belongs to it.
fn runs_one_test_per_process() -> bool {
    let var = |name: &str| std::env::var(name).ok();
    var("NEXTEST_EXECUTION_MODE").as_deref() == Some("process-per-test")
        || var("RUST_TEST_THREADS").as_deref() == Some("1")
        || var("IPC_TESTKIT_ROLE").is_some()
}

/// The open descriptors of this process with what they refer to, without the one that
/// lists them.
fn open_fds() -> BTreeSet<(i32, String)> {
    let own_listing = format!("/proc/{}/fd", std::process::id());
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (target != own_listing).then_some((fd, target))
        })
        .collect()
}

/// The test kit's objects in `/dev/shm` and, if mounted, `/dev/mqueue`.
fn object_files() -> BTreeSet<PathBuf> {
    [SHM_DIR, MQUEUE_DIR]
        .iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let name = name.strip_prefix("sem.").unwrap_or(&name);
            name.starts_with(TEST_PREFIX) || name.starts_with(WAKE_PREFIX)
        })
        .map(|entry| entry.path())
        .collect()
}

fn queue_exists(name: &IpcName) -> bool {
    match nix::mqueue::mq_open(
        name.as_cstr(),
        nix::mqueue::MQ_OFlag::O_RDONLY,
        Mode::empty(),
        None,
    ) {
        Ok(mqd) => {
            let _ = nix::mqueue::mq_close(mqd);
            true
        }
        // EACCES also means it exists; only ENOENT means it does not.
        Err(errno) => errno != nix::errno::Errno::ENOENT,
    }
}
