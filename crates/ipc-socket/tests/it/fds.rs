use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};

use ipc_socket::{Datagram, Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

use crate::open_fd_count;

/// Connects to the seqpacket listener at arg 0 and sends it an open descriptor of a file
/// it writes, then exits.
pub fn send_fd_role(ctx: &mut PeerContext) -> PeerResult {
    let conn = Seqpacket::connect(&UnixAddr::path(ctx.arg(0)?))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(ctx.arg(1)?)?;
    file.write_all(b"written by the peer")?;
    file.rewind()?;
    std::fs::remove_file(ctx.arg(1)?)?;
    ctx.ready()?;
    conn.send_with_fds(b"file", &[file.as_fd()])?;
    Ok(())
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap() & libc::FD_CLOEXEC != 0
}

#[test]
fn a_descriptor_crosses_processes() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("fd.sock"));
    let listener = SeqpacketListener::bind(&addr).unwrap();
    let file = guard.dir().join("shared-file");
    let mut peer = Peer::spawn(
        "send-fd",
        &[
            addr.as_path().unwrap().to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    let (conn, creds) = listener
        .accept_timeout(ipc_testkit::test_timeout())
        .unwrap();
    assert_eq!(creds.pid, peer.pid());
    let mut buf = [0u8; 16];
    let (n, fds) = conn.recv_with_fds(&mut buf, 4).unwrap();
    assert_eq!(&buf[..n], b"file");
    assert_eq!(fds.len(), 1);
    assert!(is_cloexec(&fds[0]));
    peer.wait_success().unwrap();
    // The file was removed by its creator; the descriptor still reads it.
    let mut text = String::new();
    std::fs::File::from(fds.into_iter().next().unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "written by the peer");
}

/// Runs the descriptor-counting checks in a process of their own, where no other test
/// opens descriptors meanwhile.
pub fn fd_leak_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    too_many_descriptors_checks();
    truncated_message_checks();
    ctx.send("ok")?;
    Ok(())
}

#[test]
fn descriptor_errors_close_every_descriptor_that_arrived() {
    let mut peer = Peer::spawn("fd-leak", &[]);
    assert_eq!(peer.recv().unwrap(), "ok");
    peer.wait_success().unwrap();
}

fn too_many_descriptors_checks() {
    let (a, b) = Seqpacket::pair().unwrap();
    let (da, db) = Datagram::pair().unwrap();
    let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
    let files: Vec<std::fs::File> = (0..5)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let borrowed: Vec<_> = files.iter().map(AsFd::as_fd).collect();
    let before = open_fd_count();
    let mut buf = [0u8; 8];
    let receivers: [(&dyn UnixSocketExt, &dyn UnixSocketExt); 3] =
        [(&a, &b), (&da, &db), (&sa, &sb)];
    for (tx, rx) in receivers {
        tx.send_with_fds(b"five", &borrowed).unwrap();
        let err = rx.recv_with_fds(&mut buf, 2).unwrap_err();
        assert!(err.is_limit_exceeded(), "{err}");
        assert_eq!(
            open_fd_count(),
            before,
            "the descriptors that arrived were closed"
        );
        // Within the limit, all arrive.
        tx.send_with_fds(b"two", &borrowed[..2]).unwrap();
        let (n, fds) = rx.recv_with_fds(&mut buf, 2).unwrap();
        assert_eq!((n, fds.len()), (3, 2));
        drop(fds);
        assert_eq!(open_fd_count(), before);
    }
    let too_many = vec![files[0].as_fd(); 254];
    assert!(
        a.send_with_fds(b"x", &too_many)
            .unwrap_err()
            .is_limit_exceeded()
    );
}

fn truncated_message_checks() {
    let (a, b) = Seqpacket::pair().unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let before = open_fd_count();
    a.send_with_fds(b"longer than the buffer", &[file.as_fd()])
        .unwrap();
    let mut small = [0u8; 4];
    let err = b.recv_with_fds(&mut small, 1).unwrap_err();
    assert_eq!(err.needed_len(), Some(22));
    assert_eq!(open_fd_count(), before);
}

/// Descriptors per message in the truncation test: below, at and far above what the
/// control buffers of the small limit hold, up to `SCM_MAX_FD`.
const FLOOD_COUNTS: [usize; 7] = [1, 2, 5, 11, 20, 100, 253];
/// The receive limits the test alternates between.
const FLOOD_LIMITS: [usize; 2] = [2, 253];

/// Binds a seqpacket and a stream listener in directory arg 0, accepts one connection on
/// each, then receives `FLOOD_COUNTS` × `FLOOD_LIMITS` messages on each in turn, counting
/// this process's descriptors around every receive; answers each with "ok" or the leak.
pub fn fd_flood_receiver_role(ctx: &mut PeerContext) -> PeerResult {
    let dir = std::path::PathBuf::from(ctx.arg(0)?);
    let seq = SeqpacketListener::bind(&UnixAddr::path(dir.join("seq.sock")))?;
    let stream = ipc_socket::StreamListener::bind(&UnixAddr::path(dir.join("stream.sock")))?;
    ctx.ready()?;
    let timeout = ipc_testkit::test_timeout();
    let (seq, _) = seq.accept_timeout(timeout)?;
    let (stream, _) = stream.accept_timeout(timeout)?;
    let sockets: [&dyn UnixSocketExt; 2] = [&seq, &stream];
    for socket in sockets {
        for count in FLOOD_COUNTS {
            for limit in FLOOD_LIMITS {
                let before = open_fd_count();
                let mut buf = [0u8; 8];
                let outcome = match socket.recv_with_fds(&mut buf, limit) {
                    Ok((8, fds)) if fds.len() == count && count <= limit => Ok(()),
                    Err(e) if e.is_limit_exceeded() && count > limit => Ok(()),
                    other => Err(format!("{count} descriptors, limit {limit}: {other:?}")),
                };
                let after = open_fd_count();
                let line = match outcome {
                    Ok(()) if after == before => "ok".to_owned(),
                    Ok(()) => format!(
                        "{count} descriptors, limit {limit}: {} left open",
                        after.abs_diff(before)
                    ),
                    Err(e) => e,
                };
                ctx.send(&line)?;
            }
        }
    }
    Ok(())
}

/// Defect: when a message carried more descriptors than the receiver's control buffer had
/// room for (`MSG_CTRUNC`), the ones the kernel did install were never closed: 10–12 leaked
/// per message. Every count from 1 to 253, against a small and a large limit, on seqpacket
/// and stream sockets, between two processes.
#[test]
fn truncated_descriptor_messages_leak_nothing() {
    let guard = LeakGuard::new();
    let dir = guard.dir().to_str().unwrap().to_owned();
    let mut receiver = Peer::spawn("fd-flood-receiver", &[&dir]);
    let seq = Seqpacket::connect(&UnixAddr::path(guard.dir().join("seq.sock"))).unwrap();
    let stream =
        ipc_socket::connect_stream(&UnixAddr::path(guard.dir().join("stream.sock"))).unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let fds = vec![file.as_fd(); 253];
    let sockets: [&dyn UnixSocketExt; 2] = [&seq, &stream];
    for socket in sockets {
        for count in FLOOD_COUNTS {
            for limit in FLOOD_LIMITS {
                socket.send_with_fds(b"8 bytes!", &fds[..count]).unwrap();
                assert_eq!(receiver.recv().unwrap(), "ok", "{count} fds, limit {limit}");
            }
        }
    }
    receiver.wait_success().unwrap();
}
