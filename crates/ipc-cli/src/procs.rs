//! Who holds what: one pass over `/proc`, so that every object can name its users.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How a process holds an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// It has a descriptor open on it.
    Open,
    /// It has it mapped into its memory.
    Mapped,
    /// The kernel records it as a user: the last process to operate on a System V
    /// object, or one blocked waiting on it.
    LastUser,
    /// It waits for it: a message queue's notification goes to it.
    Waiting,
}

/// A live process that uses an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
    /// How it uses the object.
    pub how: How,
}

/// What a process's descriptor or mapping refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    /// A path: a file, a FIFO, a segment or a semaphore in `/dev/shm`, or `/name` for a
    /// message queue (how the kernel names a queue's descriptor).
    Path(PathBuf),
    /// A socket, by inode.
    Socket(u64),
    /// A System V shared-memory segment, by id (its mapping's inode).
    SysvShm(u64),
}

/// A snapshot of every process's descriptors and mappings.
#[derive(Debug, Default)]
pub(crate) struct Processes {
    commands: BTreeMap<u32, String>,
    uses: BTreeMap<Target, Vec<(u32, How)>>,
    own: u32,
}

impl Processes {
    /// Reads `/proc`. Processes that vanish meanwhile, or that this user may not inspect,
    /// are skipped: an unprivileged caller sees only its own processes' holds.
    pub(crate) fn snapshot() -> Processes {
        let mut procs = Processes {
            own: std::process::id(),
            ..Processes::default()
        };
        let Ok(entries) = fs::read_dir("/proc") else {
            return procs;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // This tool's own descriptors (the queue it opened to read attributes) are not
            // users.
            if pid == procs.own {
                continue;
            }
            let dir = entry.path();
            let command = fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default();
            procs.commands.insert(pid, command);
            if let Ok(fds) = fs::read_dir(dir.join("fd")) {
                for fd in fds.flatten() {
                    if let Some(target) = fs::read_link(fd.path()).ok().and_then(fd_target) {
                        procs.add(target, pid, How::Open);
                    }
                }
            }
            if let Ok(maps) = fs::read_to_string(dir.join("maps")) {
                for target in maps.lines().filter_map(map_target) {
                    procs.add(target, pid, How::Mapped);
                }
            }
        }
        procs
    }

    fn add(&mut self, target: Target, pid: u32, how: How) {
        let users = self.uses.entry(target).or_default();
        if !users.contains(&(pid, how)) {
            users.push((pid, how));
        }
    }

    /// The processes that hold `target`.
    pub(crate) fn holders(&self, target: &Target) -> Vec<Holder> {
        self.uses
            .get(target)
            .into_iter()
            .flatten()
            .map(|&(pid, how)| self.holder(pid, how))
            .collect()
    }

    /// Every path some process has a descriptor open on.
    pub(crate) fn open_paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.uses.iter().filter_map(|(target, users)| match target {
            Target::Path(path) if users.iter().any(|&(_, how)| how == How::Open) => {
                Some(path.clone())
            }
            _ => None,
        })
    }

    /// Process `pid` as a holder, if it is alive (and not this tool).
    pub(crate) fn live(&self, pid: u32, how: How) -> Option<Holder> {
        (pid != 0 && pid != self.own && is_alive(pid)).then(|| self.holder(pid, how))
    }

    fn holder(&self, pid: u32, how: How) -> Holder {
        let command = match self.commands.get(&pid) {
            Some(command) => command.clone(),
            None => fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default(),
        };
        Holder { pid, command, how }
    }

    /// Every socket path a process could hold, by inode, from `/proc/net/unix`.
    pub(crate) fn socket_inodes() -> BTreeMap<PathBuf, Vec<u64>> {
        let mut by_path: BTreeMap<PathBuf, Vec<u64>> = BTreeMap::new();
        let Ok(table) = fs::read_to_string("/proc/net/unix") else {
            return by_path;
        };
        // Columns: Num RefCount Protocol Flags Type St Inode Path (absent when unbound).
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(inode), Some(path)) = (fields.get(6), fields.get(7)) else {
                continue;
            };
            if let Ok(inode) = inode.parse() {
                by_path.entry(PathBuf::from(path)).or_default().push(inode);
            }
        }
        by_path
    }
}

/// The uid process `pid` runs as (the owner of its `/proc` directory).
pub(crate) fn uid_of(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|meta| meta.uid())
}

/// Whether process `pid` exists (a zombie counts as gone: it holds nothing).
pub(crate) fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command, which is in parentheses and may hold any byte.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn fd_target(link: PathBuf) -> Option<Target> {
    let text = link.to_str()?;
    if let Some(inode) = text
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return inode.parse().ok().map(Target::Socket);
    }
    // Pipes, anonymous inodes, memfds: not named objects.
    if !text.starts_with('/') || text.starts_with("/memfd:") {
        return None;
    }
    Some(Target::Path(strip_deleted(&link)))
}

fn map_target(line: &str) -> Option<Target> {
    // address perms offset device inode path; the path may contain spaces.
    let mut fields = line.splitn(6, char::is_whitespace);
    let inode = fields.nth(4)?;
    let path = fields.next()?.trim_start();
    if !path.starts_with('/') {
        return None;
    }
    if path.starts_with("/SYSV") {
        return inode.parse().ok().map(Target::SysvShm);
    }
    Some(Target::Path(strip_deleted(Path::new(path))))
}

fn strip_deleted(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_name_files_and_system_v_segments() {
        assert_eq!(
            map_target("7f00-7f01 rw-s 00000000 00:01 32769      /SYSV00001234 (deleted)"),
            Some(Target::SysvShm(32769))
        );
        assert_eq!(
            map_target("7f00-7f01 rw-s 00000000 00:19 12 /dev/shm/a b (deleted)"),
            Some(Target::Path(PathBuf::from("/dev/shm/a b")))
        );
        assert_eq!(map_target("7f00-7f01 r-xp 00000000 00:00 0 [vdso]"), None);
        assert_eq!(map_target("7f00-7f01 rw-p 00000000 00:00 0"), None);
    }

    #[test]
    fn descriptors_name_sockets_and_paths_but_not_pipes() {
        assert_eq!(
            fd_target(PathBuf::from("socket:[991]")),
            Some(Target::Socket(991))
        );
        assert_eq!(fd_target(PathBuf::from("pipe:[5]")), None);
        assert_eq!(fd_target(PathBuf::from("/memfd:x (deleted)")), None);
        assert_eq!(
            fd_target(PathBuf::from("/jobs")),
            Some(Target::Path(PathBuf::from("/jobs")))
        );
    }

    #[test]
    fn this_process_is_alive_and_pid_zero_is_not_a_holder() {
        assert!(is_alive(std::process::id()));
        assert!(Processes::snapshot().live(0, How::LastUser).is_none());
    }
}
