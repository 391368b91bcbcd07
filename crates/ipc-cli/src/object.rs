//! What `ipc ls` reports about one object, and whether it may be removed.

use std::path::PathBuf;

use serde::Serialize;

use crate::procs::Holder;

/// The kinds of object the tool knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A POSIX shared-memory segment (`shm_open`, in `/dev/shm`).
    Shm,
    /// A segment holding an ipc-shm channel (recognised by its header).
    Channel,
    /// A POSIX named semaphore (`sem_open`, `/dev/shm/sem.NAME`).
    Sem,
    /// A POSIX message queue (`mq_open`).
    Mq,
    /// A System V semaphore set (`semget`).
    SysvSem,
    /// A System V shared-memory segment (`shmget`).
    SysvShm,
    /// A System V message queue (`msgget`).
    SysvMsg,
    /// A FIFO (`mkfifo`).
    Fifo,
    /// A Unix socket bound to a path, or to an abstract name (`@name`).
    Socket,
}

impl Kind {
    /// Every kind, in the order `ipc ls` lists them.
    pub const ALL: [Kind; 9] = [
        Kind::Shm,
        Kind::Channel,
        Kind::Sem,
        Kind::Mq,
        Kind::SysvSem,
        Kind::SysvShm,
        Kind::SysvMsg,
        Kind::Fifo,
        Kind::Socket,
    ];

    /// The name `--kind` takes and the listing shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shm => "shm",
            Kind::Channel => "channel",
            Kind::Sem => "sem",
            Kind::Mq => "mq",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvShm => "sysv-shm",
            Kind::SysvMsg => "sysv-msg",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind `{s}`: one of {}", names.join(", "))
            })
    }
}

/// Whether an object is in use, and whether `ipc rm`/`ipc clean` may remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// A live process holds or uses it: never removed.
    Live,
    /// No live process is known to use it: removed by `ipc clean --yes`.
    Stale,
    /// No live process is known to use it, but it is kept: its creator asked for it to
    /// outlive it (a persisted ipc-sem set), or its users cannot be named (a System V
    /// object nobody used yet; another user's object, to a user other than root).
    Kept,
}

/// One IPC object and what is known about it.
///
/// `ipc ls --json` prints these (see the crate's README for the schema, which only grows).
#[derive(Clone, Debug, Serialize)]
pub struct Object {
    /// Its kind.
    pub kind: Kind,
    /// Its name: `/name` for POSIX objects, the path for FIFOs and sockets (`@name` for an
    /// abstract socket), the id for System V objects.
    pub name: String,
    /// Where it is in the file system, if anywhere.
    pub path: Option<PathBuf>,
    /// The System V key (0 for a private object), for System V objects.
    pub key: Option<i32>,
    /// The owner's uid.
    pub uid: u32,
    /// The owner's user name, if the user database has one.
    pub user: Option<String>,
    /// The permission bits.
    pub mode: u32,
    /// Its size in bytes: the segment's length, the bytes queued in a message queue, a
    /// semaphore set's number of semaphores for `sysv-sem`.
    pub size: u64,
    /// When it was created, in seconds since the Unix epoch: the file system's birth time,
    /// else the last status change (for System V objects, the last `IPC_SET` or the
    /// creation).
    pub created: Option<i64>,
    /// The pid of its creator, where the object records it (System V segments, names made
    /// by `IpcName::unique`, ipc-sem sets, ipc-shm channels).
    pub creator: Option<u32>,
    /// Whether that creator is alive.
    pub creator_alive: Option<bool>,
    /// The live processes that hold or use it.
    pub holders: Vec<Holder>,
    /// In use, stale or kept.
    pub state: State,
    /// Why it is in that state, in a sentence.
    pub reason: String,
    /// A short description of what is inside (a queue's messages, a channel's ring).
    pub summary: String,
}

impl Object {
    /// An object of `kind` called `name`, with nothing known yet.
    pub(crate) fn new(kind: Kind, name: String) -> Object {
        Object {
            kind,
            name,
            path: None,
            key: None,
            uid: 0,
            user: None,
            mode: 0,
            size: 0,
            created: None,
            creator: None,
            creator_alive: None,
            holders: Vec::new(),
            state: State::Stale,
            reason: String::new(),
            summary: String::new(),
        }
    }

    /// Records the creator's pid and whether it lives.
    pub(crate) fn set_creator(&mut self, pid: u32) {
        self.creator = Some(pid);
        self.creator_alive = Some(crate::procs::is_alive(pid));
    }

    /// Marks the object live because of users the kernel counts but does not name, unless
    /// a named holder already made it live.
    pub(crate) fn in_use_by_unnamed(&mut self, why: &str) {
        if self.state != State::Live {
            self.state = State::Live;
            self.reason = format!("in use: {why}");
        }
    }

    /// Decides the state from the holders and the creator: live if either lives,
    /// otherwise stale, or kept if `keep` gives a reason.
    pub(crate) fn decide(&mut self, keep: Option<String>) {
        self.holders.sort();
        self.holders.dedup();
        if let Some(holder) = self.holders.first() {
            self.state = State::Live;
            let hows: Vec<crate::How> = self
                .holders
                .iter()
                .filter(|h| h.pid == holder.pid)
                .map(|h| h.how)
                .collect();
            let has = |how| hows.contains(&how);
            let mut doing = Vec::new();
            match (has(crate::How::Open), has(crate::How::Mapped)) {
                (true, true) => doing.push("has it open and mapped"),
                (true, false) => doing.push("has it open"),
                (false, true) => doing.push("has it mapped"),
                (false, false) => {}
            }
            if has(crate::How::LastUser) {
                doing.push("used it last");
            }
            if has(crate::How::Waiting) {
                doing.push("waits for it");
            }
            let mut others: Vec<u32> = self
                .holders
                .iter()
                .map(|h| h.pid)
                .filter(|&pid| pid != holder.pid)
                .collect();
            others.dedup();
            self.reason = format!(
                "in use: {} ({}) {}{}",
                holder.pid,
                holder.command,
                doing.join(" and "),
                match others.len() {
                    0 => String::new(),
                    1 => ", and 1 other process".to_owned(),
                    n => format!(", and {n} other processes"),
                }
            );
        } else if self.creator_alive == Some(true) {
            self.state = State::Live;
            self.reason = format!(
                "in use: its creator {} is alive",
                self.creator.unwrap_or_default()
            );
        } else if let Some(why) = keep {
            self.state = State::Kept;
            self.reason = why;
        } else {
            self.state = State::Stale;
            self.reason = match self.creator {
                Some(pid) => format!("stale: its creator {pid} is gone and no process uses it"),
                None => "stale: no process has it open or mapped".to_owned(),
            };
        }
    }
}
