//! FIFOs and Unix sockets: the ones in the directories searched, and every one a live
//! process has open or bound, wherever it is.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use ipc_core::IpcName;

use crate::object::{Kind, Object};
use crate::posix::fill_from_file;
use crate::procs::{Processes, Target};

/// How deep below each searched directory FIFOs and sockets are looked for (a test's or a
/// service's directory of its own, and one level inside it).
const DEPTH: usize = 3;

/// The FIFOs and sockets under `dirs`, and those live processes hold anywhere.
pub(crate) fn fifos_and_sockets(dirs: &[PathBuf], procs: &Processes) -> Vec<Object> {
    let sockets = Processes::socket_inodes();
    let mut paths = BTreeSet::new();
    for dir in dirs {
        walk(dir, DEPTH, &mut paths);
    }
    // Bound sockets and open FIFOs outside the searched directories.
    paths.extend(sockets.keys().filter(|path| path.starts_with("/")).cloned());
    paths.extend(procs.open_paths().filter(|path| is_fifo(path)));
    let mut objects: Vec<Object> = paths
        .into_iter()
        .filter_map(|path| file_object(path, procs, &sockets))
        .collect();
    objects.extend(abstract_sockets(procs, &sockets));
    objects
}

fn walk(dir: &Path, depth: usize, found: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_fifo() || file_type.is_socket() {
            found.insert(entry.path());
        } else if file_type.is_dir() && depth > 1 {
            walk(&entry.path(), depth - 1, found);
        }
    }
}

fn is_fifo(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_fifo())
}

fn file_object(
    path: PathBuf,
    procs: &Processes,
    sockets: &BTreeMap<PathBuf, Vec<u64>>,
) -> Option<Object> {
    let meta = fs::symlink_metadata(&path).ok()?;
    let kind = if meta.file_type().is_fifo() {
        Kind::Fifo
    } else if meta.file_type().is_socket() {
        Kind::Socket
    } else {
        return None;
    };
    let mut object = Object::new(kind, path.to_string_lossy().into_owned());
    fill_from_file(&mut object, &path, &meta);
    let mut bound = false;
    match kind {
        Kind::Fifo => object.holders = procs.holders(&Target::Path(path.clone())),
        _ => {
            for &inode in sockets.get(&path).into_iter().flatten() {
                bound = true;
                object.holders.extend(procs.holders(&Target::Socket(inode)));
            }
        }
    }
    if let Some(pid) = path
        .file_name()
        .and_then(|name| IpcName::creator_pid_of(&name.to_string_lossy()))
    {
        object.set_creator(pid);
    }
    object.decide(None);
    if bound {
        // A socket bound to the path whose holder this user cannot see.
        object.in_use_by_unnamed("a socket is bound to it");
        object.summary = "listening or bound".to_owned();
    }
    Some(object)
}

/// Abstract sockets (`@name`): they have no file, and vanish with their last holder.
fn abstract_sockets(procs: &Processes, sockets: &BTreeMap<PathBuf, Vec<u64>>) -> Vec<Object> {
    sockets
        .iter()
        .filter(|(path, _)| path.to_string_lossy().starts_with('@'))
        .map(|(path, inodes)| {
            let mut object = Object::new(Kind::Socket, path.to_string_lossy().into_owned());
            for &inode in inodes {
                object.holders.extend(procs.holders(&Target::Socket(inode)));
            }
            if let Some(uid) = object
                .holders
                .first()
                .and_then(|h| crate::procs::uid_of(h.pid))
            {
                object.uid = uid;
                object.user = crate::posix::user_name(uid);
            }
            object.decide(None);
            object.in_use_by_unnamed("an abstract socket exists only while it is bound");
            object.summary = "abstract".to_owned();
            object
        })
        .collect()
}
