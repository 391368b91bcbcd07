use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use ipc_core::{Access, Permissions};
use ipc_socket::{
    ListenerOptions, Seqpacket, SeqpacketListener, StalePolicy, StreamListener, UnixAddr,
    connect_stream,
};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

/// Binds a stream listener at arg 0 and holds it until killed.
pub fn hold_listener_role(ctx: &mut PeerContext) -> PeerResult {
    let listener = StreamListener::bind(&UnixAddr::path(ctx.arg(0)?))?;
    ctx.ready()?;
    loop {
        // Accept and drop, so that probes connecting to it do not fill the backlog.
        drop(listener.accept());
    }
}

/// Waits for "go", races to bind arg 0, reports "won" or the error kind, and if it won
/// serves connections until told to stop.
pub fn race_bind_role(ctx: &mut PeerContext) -> PeerResult {
    let addr = UnixAddr::path(ctx.arg(0)?);
    ctx.ready()?;
    ctx.recv()?;
    match StreamListener::bind(&addr) {
        Ok(listener) => {
            ctx.send("won")?;
            ctx.recv()?;
            drop(listener);
        }
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn socket_file_gets_exact_permissions_and_is_removed_on_drop() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("perm.sock");
    let listener = StreamListener::bind(&UnixAddr::path(&path)).unwrap();
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(mode(&path), 0o600);
    drop(listener);
    assert!(!path.exists(), "the socket file is removed");
    assert!(
        !guard.dir().join("perm.sock.lock").exists(),
        "and its lock file"
    );

    // Wider permissions than the umask (022 here) would allow, applied exactly.
    let shared = ListenerOptions::new()
        .permissions(
            Permissions::owner_only()
                .group(Access::ReadWrite)
                .others(Access::ReadWrite),
        )
        .bind_seqpacket(&UnixAddr::path(&path))
        .unwrap();
    assert_eq!(mode(&path), 0o666);
    drop(shared);
}

#[test]
fn stale_socket_of_a_crashed_server_is_reclaimed() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("crash.sock");
    let mut peer = Peer::spawn("hold-listener", &[path.to_str().unwrap()]);
    // While it lives, nobody else can bind there.
    let err = StreamListener::bind(&UnixAddr::path(&path)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    peer.kill().unwrap();
    assert!(path.exists(), "a crash leaves the socket file behind");
    let listener = StreamListener::bind(&UnixAddr::path(&path)).unwrap();
    let _client = connect_stream(listener.addr()).unwrap();
    assert!(listener.accept_timeout(ipc_testkit::test_timeout()).is_ok());
}

#[test]
fn a_live_listener_without_our_lock_is_never_removed() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("foreign.sock");
    // A plain std listener: it knows nothing of the lock file.
    let foreign = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let err = StreamListener::bind(&UnixAddr::path(&path)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("listening"), "{err}");
    // The probe's connection is queued on the foreign listener; it still works.
    assert!(foreign.accept().is_ok());
    let err = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap_err();
    assert_ne!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(path.exists());
    drop(foreign);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn only_sockets_of_this_user_are_reclaimed() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("not-a-socket");
    std::fs::write(&path, b"data").unwrap();
    let err = StreamListener::bind(&UnixAddr::path(&path)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_file(&path).unwrap();

    // A stale socket that belongs to another user is left alone.
    let stale = guard.dir().join("theirs.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    nix::unistd::chown(
        &stale,
        Some(nix::unistd::Uid::from_raw(ipc_testkit::NOBODY)),
        None,
    )
    .unwrap();
    let err = StreamListener::bind(&UnixAddr::path(&stale)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("uid 65534"), "{err}");
    // With the Fail policy, even our own stale socket stays.
    nix::unistd::chown(&stale, Some(nix::unistd::geteuid()), None).unwrap();
    let err = ListenerOptions::new()
        .stale(StalePolicy::Fail)
        .bind_stream(&UnixAddr::path(&stale))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    std::fs::remove_file(&stale).unwrap();
}

#[test]
fn of_racing_starters_exactly_one_binds() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("race.sock");
    // A stale socket for all of them to find.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let arg = path.to_str().unwrap().to_owned();
    let mut peers: Vec<Peer> = (0..4).map(|_| Peer::spawn("race-bind", &[&arg])).collect();
    for peer in &mut peers {
        peer.send("go").unwrap();
    }
    let outcomes: Vec<String> = peers.iter_mut().map(|p| p.recv().unwrap()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "won").count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o == "won" || o == "AddrInUse"),
        "{outcomes:?}"
    );
    // The winner's socket is live and was not removed by a loser.
    let client = connect_stream(&UnixAddr::path(&path));
    assert!(client.is_ok(), "{client:?}");
    for peer in &mut peers {
        // Tell the winner to stop; the others have exited already.
        let _ = peer.send("stop");
        peer.wait_success().unwrap();
    }
    assert!(!path.exists());
}

#[test]
fn accept_and_connect_respect_deadlines() {
    use std::time::{Duration, Instant};
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("slow.sock"));
    let listener = ListenerOptions::new()
        .backlog(0)
        .bind_stream(&addr)
        .unwrap();
    let start = Instant::now();
    assert!(
        listener
            .accept_timeout(Duration::from_millis(50))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(listener.try_accept().unwrap_err().is_would_block());
    // Nobody accepts: once the backlog is full, connects wait, and give up at the deadline.
    let mut queued = Vec::new();
    let err = loop {
        match ipc_socket::connect_stream_timeout(&addr, Duration::from_millis(50)) {
            Ok(stream) => queued.push(stream),
            Err(err) => break err,
        }
        assert!(queued.len() < 1000, "the backlog never filled");
    };
    assert!(err.is_timeout(), "{err}");
    // Nothing listening at all: refused at once, not a hang.
    drop(queued);
    drop(listener);
    let err = ipc_socket::connect_stream(&addr).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ),
        "{err}"
    );
}

/// Binds a seqpacket listener at arg 0, leaves itself room for exactly two more
/// descriptors, says ready and, per line: "accept" accepts (answering "accepted" or
/// "turned away: <error>"), "echo" echoes one message on every connection it holds
/// ("echoed"); anything else ends it.
pub fn starved_server_role(ctx: &mut PeerContext) -> PeerResult {
    let listener = SeqpacketListener::bind(&UnixAddr::path(ctx.arg(0)?))?;
    let _filler = crate::leave_room_for(2)?;
    ctx.ready()?;
    let mut conns = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match ctx.recv()?.as_str() {
            "accept" => match listener.accept_timeout(ipc_testkit::test_timeout()) {
                Ok((conn, _)) => {
                    conns.push(conn);
                    ctx.send("accepted")?;
                }
                Err(err) if err.is_limit_exceeded() => ctx.send(&format!("turned away: {err}"))?,
                Err(err) => return Err(err.into()),
            },
            "echo" => {
                for conn in &conns {
                    let n = conn.recv_timeout(&mut buf, ipc_testkit::test_timeout())?;
                    conn.send(&buf[..n])?;
                }
                ctx.send("echoed")?;
            }
            _ => return Ok(()),
        }
    }
}

#[test]
fn out_of_descriptors_a_listener_turns_a_client_away_at_once_and_serves_the_others() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("starved.sock"));
    let mut server = Peer::spawn(
        "starved-server",
        &[addr.as_path().unwrap().to_str().unwrap()],
    );
    let connect = || Seqpacket::connect_timeout(&addr, ipc_testkit::test_timeout()).unwrap();
    let (a, b) = (connect(), connect());
    for _ in 0..2 {
        server.send("accept").unwrap();
        assert_eq!(server.recv().unwrap(), "accepted");
    }
    // No descriptor left for a third: it is turned away, not left waiting.
    let c = connect();
    server.send("accept").unwrap();
    let turned = server.recv().unwrap();
    assert!(turned.starts_with("turned away: "), "{turned}");
    assert!(turned.contains("RLIMIT_NOFILE"), "{turned}");
    let err = c
        .recv_timeout(&mut [0u8; 8], ipc_testkit::test_timeout())
        .unwrap_err();
    assert!(err.is_peer_gone(), "the client learns at once: {err}");
    // Again, while out of descriptors: the reserve was taken back.
    let d = connect();
    server.send("accept").unwrap();
    assert!(server.recv().unwrap().starts_with("turned away: "));
    assert!(
        d.recv_timeout(&mut [0u8; 8], ipc_testkit::test_timeout())
            .unwrap_err()
            .is_peer_gone()
    );
    // The connected clients are still served.
    a.send(b"from a").unwrap();
    b.send(b"from b").unwrap();
    server.send("echo").unwrap();
    assert_eq!(server.recv().unwrap(), "echoed");
    let mut buf = [0u8; 16];
    let n = a
        .recv_timeout(&mut buf, ipc_testkit::test_timeout())
        .unwrap();
    assert_eq!(&buf[..n], b"from a");
    let n = b
        .recv_timeout(&mut buf, ipc_testkit::test_timeout())
        .unwrap();
    assert_eq!(&buf[..n], b"from b");
    server.send("end").unwrap();
    server.wait_success().unwrap();
}

/// Binds a listener in directory arg 0 under a name of its own (tagged arg 1, naming this
/// process), reports its path and waits to be killed, leaving the socket file behind.
pub fn left_behind_role(ctx: &mut PeerContext) -> PeerResult {
    let name = ipc_testkit::unique_name(ctx.arg(1)?);
    let path = std::path::Path::new(ctx.arg(0)?).join(name.file_name());
    let _listener = StreamListener::bind(&UnixAddr::path(&path))?;
    ctx.ready_with(&path.display().to_string())?;
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_listeners_socket_file_is_stale_and_a_bound_one_is_not() {
    let guard = LeakGuard::new();
    let dir = guard.dir();
    let mut peer = Peer::spawn(
        "listener-left-behind",
        &[dir.to_str().unwrap(), "sock-stale"],
    );
    let left = std::path::PathBuf::from(peer.ready_payload());
    assert!(
        ipc_socket::stale_sockets(dir, "ipcrs-test-sock-stale")
            .unwrap()
            .is_empty()
    );
    peer.kill().unwrap();
    assert_eq!(
        ipc_socket::stale_sockets(dir, "ipcrs-test-sock-stale").unwrap(),
        vec![left.clone()]
    );
    assert_eq!(
        ipc_socket::remove_stale_sockets(dir, "ipcrs-test-sock-stale").unwrap(),
        vec![left.clone()]
    );
    assert!(!left.exists());
}
