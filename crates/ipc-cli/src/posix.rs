//! POSIX objects: segments and named semaphores in `/dev/shm`, message queues in an
//! `mqueue` file system.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ipc_core::IpcName;

use crate::object::{Kind, Object};
use crate::procs::{How, Processes, Target};

/// Where `shm_open` and `sem_open` keep their objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The first eight bytes of an ipc-shm channel segment (its layout's magic number).
const CHANNEL_MAGIC: &[u8; 8] = b"IPCRSCHN";

/// The segments and named semaphores in `dir` (normally [`SHM_DIR`]).
pub(crate) fn shm_objects(dir: &Path, procs: &Processes) -> Vec<Object> {
    let mut objects = Vec::new();
    for (path, meta, file_name) in regular_files(dir) {
        let (kind, bare) = match file_name.strip_prefix("sem.") {
            Some(bare) => (Kind::Sem, bare.to_owned()),
            None if starts_with(&path, CHANNEL_MAGIC) => (Kind::Channel, file_name.clone()),
            None => (Kind::Shm, file_name.clone()),
        };
        let mut object = Object::new(kind, format!("/{bare}"));
        fill_from_file(&mut object, &path, &meta);
        object.holders = procs.holders(&Target::Path(path.clone()));
        if let Some(pid) = IpcName::creator_pid_of(&bare) {
            object.set_creator(pid);
        }
        if kind == Kind::Sem {
            object.summary = semaphore_summary(&path);
        }
        if kind == Kind::Channel {
            object.summary = channel_summary(&object.name);
        }
        object.decide(None);
        objects.push(object);
    }
    objects
}

/// A channel's fill level and sides, in a phrase.
fn channel_summary(name: &str) -> String {
    use ipc_shm::{ChannelStatus, EndpointState};
    let Ok(status) = IpcName::new(name).and_then(|name| ChannelStatus::read(&name)) else {
        return "ipc-shm channel (unreadable)".to_owned();
    };
    let side = |role: &str, side: ipc_shm::SideStatus| {
        let state = match side.state() {
            EndpointState::Never => return format!("no {role} yet"),
            EndpointState::Attaching => "attaching",
            EndpointState::Attached => "attached",
            EndpointState::HandedOff => "handed off",
            EndpointState::Closed => "closed",
            EndpointState::Dead => "dead",
        };
        format!("{role} {} {state}", side.pid().unwrap_or_default())
    };
    let queued = status.queued().map_or_else(
        || "impossible positions".to_owned(),
        |q| format!("{q} B queued"),
    );
    format!(
        "{queued} of {}; {}, {}",
        status.capacity(),
        side("producer", status.producer()),
        side("consumer", status.consumer())
    )
}

/// The message queues in `dir`, a mounted `mqueue` file system.
pub(crate) fn queues(dir: &Path, procs: &Processes) -> Vec<Object> {
    let mut objects = Vec::new();
    for (path, meta, file_name) in regular_files(dir) {
        let name = format!("/{file_name}");
        let mut object = Object::new(Kind::Mq, name.clone());
        fill_from_file(&mut object, &path, &meta);
        // The file's one line: `QSIZE:n NOTIFY:n SIGNO:n NOTIFY_PID:n`.
        let status = fs::read_to_string(&path).unwrap_or_default();
        let field = |key: &str| -> Option<u64> {
            status
                .split_whitespace()
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix(':')?.parse().ok())
        };
        object.size = field("QSIZE").unwrap_or(0);
        // A queue's descriptor is named `/name` in `/proc/PID/fd`.
        object.holders = procs.holders(&Target::Path(PathBuf::from(&name)));
        if let Some(pid) = field("NOTIFY_PID")
            .and_then(|pid| u32::try_from(pid).ok())
            .and_then(|pid| procs.live(pid, How::Waiting))
        {
            object.holders.push(pid);
        }
        if let Some(pid) = IpcName::creator_pid_of(&file_name) {
            object.set_creator(pid);
        }
        object.summary = queue_summary(&name);
        object.decide(None);
        objects.push(object);
    }
    objects
}

/// A queue's fill level, read with `mq_getattr` on a descriptor that neither sends nor
/// receives. Empty if this user may not open it.
fn queue_summary(name: &str) -> String {
    use nix::mqueue::{MQ_OFlag, mq_close, mq_getattr, mq_open};
    use nix::sys::stat::Mode;
    let Ok(queue) = mq_open(
        name,
        MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC,
        Mode::empty(),
        None,
    ) else {
        return String::new();
    };
    let summary = mq_getattr(&queue).map(|attr| {
        format!(
            "{} of {} messages (up to {} B each)",
            attr.curmsgs(),
            attr.maxmsg(),
            attr.msgsize()
        )
    });
    // Closing a descriptor this tool opened to read; nothing to report if it fails.
    let _ = mq_close(queue);
    summary.unwrap_or_default()
}

/// A glibc named semaphore's value and waiters, read from the file as bytes (the object
/// is never handed to glibc: whatever the file holds, this only prints numbers).
///
/// glibc on 64-bit targets keeps the value in the low 32 bits of the first word and the
/// number of waiters in the high 32.
fn semaphore_summary(path: &Path) -> String {
    let mut word = [0u8; 8];
    let read = File::open(path).and_then(|mut file| file.read_exact(&mut word));
    if read.is_err() {
        return String::new();
    }
    let data = u64::from_ne_bytes(word);
    let value = data & u64::from(u32::MAX);
    let waiters = data >> 32;
    format!("value {value}, {waiters} waiting")
}

/// The regular files in `dir` (symbolic links are not followed), with their metadata and
/// file names.
fn regular_files(dir: &Path) -> Vec<(PathBuf, fs::Metadata, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            meta.file_type().is_file().then_some((path, meta, name))
        })
        .collect()
}

/// Owner, mode, size and creation time from the file's metadata.
pub(crate) fn fill_from_file(object: &mut Object, path: &Path, meta: &fs::Metadata) {
    object.path = Some(path.to_path_buf());
    object.uid = meta.uid();
    object.user = user_name(meta.uid());
    object.mode = meta.mode() & 0o7777;
    object.size = meta.len();
    object.created = meta
        .created()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .or(Some(meta.ctime()));
    if meta.file_type().is_fifo() || meta.file_type().is_socket() {
        object.size = 0;
    }
}

/// The user name of `uid`, if the user database has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

fn starts_with(path: &Path, magic: &[u8]) -> bool {
    let mut head = vec![0u8; magic.len()];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut head))
        .is_ok_and(|()| head == magic)
}
