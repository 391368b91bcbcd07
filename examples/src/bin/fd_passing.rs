//! Passing an open file descriptor from one process to another over a Unix socket.
//!
//! ```text
//! cargo run -p ipc-examples --bin fd_passing
//! ```
//!
//! The parent creates an anonymous in-memory file (`memfd`), writes a report into it and
//! sends the descriptor to a child process over a seqpacket socket pair. The child has no
//! path to open: it reads the very same file through the descriptor it received, and
//! appends to it; the parent then sees the child's line. Received descriptors are
//! close-on-exec, and a message with more descriptors than expected is refused with every
//! one of them closed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{ExitCode, Stdio};

use ipc_examples::spawn_self;
use ipc_socket::{Seqpacket, UnixSocketExt};
use nix::sys::memfd::{MFdFlags, memfd_create};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let role = std::env::args().nth(1);
    let result = match role.as_deref() {
        Some("child") => child(),
        _ => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fd_passing: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parent() -> Result<()> {
    let mut file = std::fs::File::from(memfd_create("ipcrs-report", MFdFlags::MFD_CLOEXEC)?);
    writeln!(file, "written by the parent, pid {}", std::process::id())?;

    let (ours, theirs) = Seqpacket::pair()?;
    // The child's stdin is its end of the socket pair.
    let mut child = spawn_self(
        &["child"],
        Stdio::from(OwnedFd::from(theirs)),
        Stdio::inherit(),
    )?;
    ours.send_with_fds(b"here is the report", &[file.as_fd()])?;
    // Wait for the child to say it is done, then read what it added.
    let mut reply = [0u8; 64];
    let n = ours.recv(&mut reply)?;
    println!(
        "parent: child says {:?}",
        String::from_utf8_lossy(&reply[..n])
    );
    if !child.wait()?.success() {
        return Err("the child failed".into());
    }
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    print!("parent: the file now holds:\n{text}");
    Ok(())
}

fn child() -> Result<()> {
    let socket = Seqpacket::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut buf = [0u8; 64];
    let (n, fds) = socket.recv_with_fds(&mut buf, 1)?;
    let fd = fds.into_iter().next().ok_or("no descriptor arrived")?;
    let mut file = std::fs::File::from(fd);
    // The descriptor shares the parent's open file, offset included: start from the top.
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    println!(
        "child: got {:?} with a file that says: {}",
        String::from_utf8_lossy(&buf[..n]),
        text.trim()
    );
    writeln!(file, "appended by the child, pid {}", std::process::id())?;
    socket.send(b"appended my line")?;
    Ok(())
}
