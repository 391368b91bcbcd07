//! System V objects, from the kernel's tables in `/proc/sysvipc`.

use std::collections::BTreeMap;
use std::fs;

use crate::object::{Kind, Object};
use crate::posix::user_name;
use crate::procs::{How, Processes, Target};
use crate::sys::{self, SemField};

/// One table (`sem`, `shm` or `msg`) as rows of named columns.
fn table(which: &str) -> Vec<BTreeMap<String, String>> {
    let Ok(text) = fs::read_to_string(format!("/proc/sysvipc/{which}")) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    lines
        .map(|line| {
            columns
                .iter()
                .zip(line.split_whitespace())
                .map(|(c, v)| ((*c).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn number<T: std::str::FromStr>(row: &BTreeMap<String, String>, column: &str) -> Option<T> {
    row.get(column)?.parse().ok()
}

/// The common columns: id, key, owner, mode, creation time.
fn object(kind: Kind, row: &BTreeMap<String, String>, id_column: &str) -> Option<Object> {
    let id: i32 = number(row, id_column)?;
    let mut object = Object::new(kind, id.to_string());
    object.key = number(row, "key");
    object.uid = number(row, "uid")?;
    object.user = user_name(object.uid);
    // `perms` is printed in octal.
    object.mode = row
        .get("perms")
        .and_then(|p| u32::from_str_radix(p, 8).ok())
        .unwrap_or(0)
        & 0o777;
    object.created = number(row, "ctime");
    Some(object)
}

/// Every System V semaphore set this user may read.
pub(crate) fn semaphore_sets(procs: &Processes) -> Vec<Object> {
    let mut objects = Vec::new();
    for row in table("sem") {
        let Some(mut object) = object(Kind::SysvSem, &row, "semid") else {
            continue;
        };
        let Ok(id) = object.name.parse::<i32>() else {
            continue;
        };
        let count: i32 = number(&row, "nsems").unwrap_or(0);
        object.size = u64::try_from(count).unwrap_or(0);
        let mut values = Vec::new();
        let mut waiting = 0;
        let mut operated = false;
        for num in 0..count {
            if let Ok(value) = sys::sem_field(id, num, SemField::Value) {
                values.push(value.to_string());
            }
            waiting += sys::sem_field(id, num, SemField::Waiting).unwrap_or(0)
                + sys::sem_field(id, num, SemField::WaitingForZero).unwrap_or(0);
            if let Ok(pid) = sys::sem_field(id, num, SemField::LastPid) {
                let pid = u32::try_from(pid).unwrap_or(0);
                operated |= pid != 0;
                object.holders.extend(procs.live(pid, How::LastUser));
            }
        }
        let record = ipc_sem::undo_set_record(id);
        if let Some(record) = record {
            object.set_creator(record.creator_pid());
            object.summary = format!("ipc-sem set, value {}", values.first().map_or("?", |v| v));
        } else {
            object.summary = format!("values {}", values.join(" "));
        }
        if waiting > 0 {
            object.summary.push_str(&format!(", {waiting} waiting"));
        }
        let keep = if record.is_some_and(|r| r.persisted()) {
            Some("kept: its creator persisted it (ipc-sem)".to_owned())
        } else if record.is_none() && !operated {
            Some(
                "kept: no process has operated on it yet, and the kernel does not record \
                 who created it"
                    .to_owned(),
            )
        } else {
            None
        };
        object.decide(keep);
        if waiting > 0 {
            // Waiters' pids are not recorded, but they are users.
            object.in_use_by_unnamed(&format!(
                "{waiting} processes wait on it (the kernel does not name them)"
            ));
        }
        objects.push(object);
    }
    objects
}

/// Every System V shared-memory segment this user may read.
pub(crate) fn segments(procs: &Processes) -> Vec<Object> {
    let mut objects = Vec::new();
    for row in table("shm") {
        let Some(mut object) = object(Kind::SysvShm, &row, "shmid") else {
            continue;
        };
        let id: u64 = object.name.parse().unwrap_or(0);
        object.size = number(&row, "size").unwrap_or(0);
        object.holders = procs.holders(&Target::SysvShm(id));
        if let Some(pid) = number::<u32>(&row, "lpid") {
            object.holders.extend(procs.live(pid, How::LastUser));
        }
        if let Some(pid) = number::<u32>(&row, "cpid") {
            object.set_creator(pid);
        }
        let attached: u64 = number(&row, "nattch").unwrap_or(0);
        object.summary = format!("{attached} attached");
        object.decide(None);
        if attached > 0 {
            // An attachment by a process this user cannot see, or in another pid
            // namespace, is still one.
            object.in_use_by_unnamed(&format!("{attached} processes have it attached"));
        }
        objects.push(object);
    }
    objects
}

/// Every System V message queue this user may read.
pub(crate) fn queues(procs: &Processes) -> Vec<Object> {
    let mut objects = Vec::new();
    for row in table("msg") {
        let Some(mut object) = object(Kind::SysvMsg, &row, "msqid") else {
            continue;
        };
        object.size = number(&row, "cbytes").unwrap_or(0);
        let mut used = false;
        for column in ["lspid", "lrpid"] {
            let pid: u32 = number(&row, column).unwrap_or(0);
            used |= pid != 0;
            object.holders.extend(procs.live(pid, How::LastUser));
        }
        let messages: u64 = number(&row, "qnum").unwrap_or(0);
        object.summary = match messages {
            1 => "1 message".to_owned(),
            n => format!("{n} messages"),
        };
        let keep = (!used).then(|| {
            "kept: no process has sent or received on it yet, and the kernel does not record \
             who created it"
                .to_owned()
        });
        object.decide(keep);
        objects.push(object);
    }
    objects
}
