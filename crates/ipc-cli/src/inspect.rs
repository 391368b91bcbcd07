//! `ipc inspect`: what is inside an object, field by field.

use std::fs::File;
use std::io::Read;

use ipc_core::{Error, IpcName, Result};
use ipc_shm::{ChannelStatus, EndpointState, SideStatus};

use crate::object::{Kind, Object};
use crate::sys::{self, SemField};

/// What is inside `object` (from a [`list`](crate::list)), as named fields in order: a
/// channel's geometry, positions and sides, a queue's attributes, a semaphore's value and
/// waiters, a System V set's values and pids, a segment's header.
///
/// Nothing is attached, received or changed: a channel and a segment are read with
/// `pread`, a queue is opened only to read its attributes (so its messages cannot be shown:
/// POSIX queues cannot be peeked; `ipc recv` takes them).
///
/// # Errors
///
/// The error of reading the object (gone, or not readable by this user).
pub fn inspect(object: &Object) -> Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    let mut field = |key: &str, value: String| fields.push((key.to_owned(), value));
    match object.kind {
        Kind::Channel => {
            let status = ChannelStatus::read(&ipc_name(&object.name)?)?;
            field("ring", format!("{} bytes", status.capacity()));
            field("largest message", format!("{} bytes", status.max_message()));
            field("producer position", status.written().to_string());
            field("consumer position", status.read_position().to_string());
            field(
                "queued",
                match status.queued() {
                    Some(queued) => format!(
                        "{queued} bytes ({:.0}% full)",
                        queued as f64 * 100.0 / status.capacity() as f64
                    ),
                    None => "impossible positions (a peer wrote them)".to_owned(),
                },
            );
            field("producer", side(&status.producer()));
            field("consumer", side(&status.consumer()));
        }
        Kind::Shm => {
            let mut header = [0u8; 28];
            let read = object
                .path
                .as_ref()
                .map(|path| File::open(path).and_then(|mut f| f.read_exact(&mut header)));
            match read {
                Some(Ok(())) => describe_header(&header, &mut field),
                _ => field(
                    "header",
                    "none (shorter than a header, or unreadable)".to_owned(),
                ),
            }
        }
        Kind::Mq => {
            use nix::mqueue::{MQ_OFlag, mq_close, mq_getattr, mq_open};
            let queue = mq_open(
                object.name.as_str(),
                MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
                None,
            )
            .map_err(|e| Error::from_errno("mq_open", e).with_subject(object.name.as_str()))?;
            let attr = mq_getattr(&queue);
            // A descriptor opened only to read the attributes.
            let _ = mq_close(queue);
            let attr = attr.map_err(|e| Error::from_errno("mq_getattr", e))?;
            field(
                "messages",
                format!("{} of at most {}", attr.curmsgs(), attr.maxmsg()),
            );
            field("largest message", format!("{} bytes", attr.msgsize()));
            field("bytes queued", object.size.to_string());
        }
        Kind::Sem | Kind::SysvMsg | Kind::Fifo | Kind::Socket => {
            if !object.summary.is_empty() {
                field("contents", object.summary.clone());
            }
        }
        Kind::SysvSem => {
            let id: i32 = object.name.parse().unwrap_or(-1);
            let count = i32::try_from(object.size).unwrap_or(0);
            for num in 0..count {
                let get =
                    |what| sys::sem_field(id, num, what).map_or("?".to_owned(), |v| v.to_string());
                field(
                    &format!("semaphore {num}"),
                    format!(
                        "value {}, last changed by pid {}, {} waiting for more, {} for zero",
                        get(SemField::Value),
                        get(SemField::LastPid),
                        get(SemField::Waiting),
                        get(SemField::WaitingForZero)
                    ),
                );
            }
            if let Some(record) = ipc_sem::undo_set_record(id) {
                field(
                    "made by",
                    format!(
                        "ipc-sem (create_undo), by pid {}{}",
                        record.creator_pid(),
                        if record.persisted() {
                            ", persisted"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        Kind::SysvShm => field("attached", object.summary.clone()),
    }
    Ok(fields)
}

fn ipc_name(name: &str) -> Result<IpcName> {
    IpcName::new(name)
}

fn side(side: &SideStatus) -> String {
    let pid = side
        .pid()
        .map_or_else(|| "no process".to_owned(), |pid| format!("pid {pid}"));
    let state = match side.state() {
        EndpointState::Never => return "never attached".to_owned(),
        EndpointState::Attaching => "attaching",
        EndpointState::Attached => "attached",
        EndpointState::HandedOff => "handed off, not yet attached",
        EndpointState::Closed => "closed",
        EndpointState::Dead => "dead",
    };
    let waiting = if side.parked() {
        ", asleep waiting"
    } else if side.may_sleep() {
        ", sleeps when it waits"
    } else {
        ", busy polling"
    };
    let polled = if side.polled() {
        ", watched by a poller"
    } else {
        ""
    };
    format!("{pid}, {state}{waiting}{polled}")
}

/// The ipc-shm segment header, if the segment starts with one (`HEADER_FORMAT`).
fn describe_header(header: &[u8; 28], field: &mut impl FnMut(&str, String)) {
    let u32_at = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    if u32_at(24) != ipc_shm::HEADER_FORMAT {
        field("header", "none (not an ipc-shm layout header)".to_owned());
        return;
    }
    let magic = u64_at(0);
    let printable: String = magic
        .to_le_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect();
    field("layout magic", format!("{magic:#018x} ({printable})"));
    field("layout version", u32_at(8).to_string());
    field(
        "state",
        match u32_at(12) {
            0 => "empty".to_owned(),
            1 => "initialising (its creator has not finished, or died doing so)".to_owned(),
            2 => "ready".to_owned(),
            other => format!("{other}: not a valid state"),
        },
    );
    field("size in header", format!("{} bytes", u64_at(16)));
}
