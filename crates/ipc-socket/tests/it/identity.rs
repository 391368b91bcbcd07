use std::io::Read;
use std::os::fd::AsRawFd;

use ipc_socket::{
    Datagram, ListenerOptions, Seqpacket, StreamListener, UnixAddr, UnixSocketExt, connect_stream,
};
use ipc_testkit::{LeakGuard, NOBODY, PeerContext, PeerResult, run_unprivileged};

/// Connects to the stream listener at arg 0 and reports what the server did: a byte it
/// sent, or that it hung up without a word.
pub fn connect_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    let mut stream = connect_stream(&UnixAddr::path(ctx.arg(0)?))?;
    stream.set_read_timeout(Some(ipc_testkit::test_timeout()))?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => ctx.send("closed")?,
        Ok(_) => ctx.send(&format!("got {}", byte[0] as char))?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo`.
fn pidfd_pid(fd: &std::os::fd::OwnedFd) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn credentials_and_pidfds_name_the_peer() {
    let (a, b) = Seqpacket::pair().unwrap();
    let creds = a.peer_credentials().unwrap();
    assert_eq!(creds.pid, std::process::id());
    assert_eq!(creds.uid, nix::unistd::geteuid().as_raw());
    assert_eq!(creds.gid, nix::unistd::getegid().as_raw());
    let pidfd = b.peer_pidfd().expect("SO_PEERPIDFD needs Linux 6.5");
    assert_eq!(pidfd_pid(&pidfd), std::process::id());

    let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
    assert_eq!(x.peer_credentials().unwrap().pid, std::process::id());

    // Datagrams carry credentials only when the receiver asks for them.
    let (tx, rx) = Datagram::pair().unwrap();
    let mut buf = [0u8; 8];
    tx.send(b"anon").unwrap();
    assert_eq!(rx.recv_with_credentials(&mut buf).unwrap(), (4, None));
    rx.set_pass_credentials(true).unwrap();
    tx.send(b"me").unwrap();
    let (n, creds) = rx.recv_with_credentials(&mut buf).unwrap();
    assert_eq!(n, 2);
    assert_eq!(creds.unwrap().pid, std::process::id());
}

#[test]
fn listener_lets_in_only_allowed_users() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("guarded.sock");
    // The directory and the socket must let nobody connect, so that only the uid check
    // stands between them.
    std::fs::set_permissions(
        guard.dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let listener = ListenerOptions::new()
        .permissions(ipc_core::Permissions::owner_only().others(ipc_core::Access::ReadWrite))
        .allow_uids([0])
        .bind_stream(&UnixAddr::path(&path))
        .unwrap();
    let path_arg = path.to_str().unwrap().to_owned();
    let server = std::thread::spawn(move || {
        // The unprivileged client is turned away inside accept; the next, root, gets in.
        let (stream, creds) = listener
            .accept_timeout(ipc_testkit::test_timeout())
            .unwrap();
        use std::io::Write;
        (&stream).write_all(b"!").unwrap();
        (creds, listener)
    });
    let lines = run_unprivileged("connect-as", &[&path_arg]).unwrap();
    assert_eq!(lines, ["closed"], "the server must hang up on uid {NOBODY}");
    let mut root = connect_stream(&UnixAddr::path(&path)).unwrap();
    let (creds, listener) = server.join().unwrap();
    assert_eq!(creds.uid, 0);
    let mut byte = [0u8; 1];
    root.read_exact(&mut byte).unwrap();
    drop(listener);
}

#[test]
fn abstract_listeners_are_reachable_by_anyone() {
    // Documented behaviour, proven: no file, no permissions.
    let addr = UnixAddr::abstract_name(ipc_testkit::unique_name("open").file_name());
    let listener = StreamListener::bind(&addr).unwrap();
    let client = ipc_socket::connect_stream(&addr).unwrap();
    let (_, creds) = listener.accept().unwrap();
    assert_eq!(creds.pid, std::process::id());
    drop(client);
}
