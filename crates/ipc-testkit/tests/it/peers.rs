use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use ipc_testkit::{
    LeakGuard, NOBODY, Peer, PeerContext, PeerResult, test_deadline, wait_for_exit_of,
};

pub fn echo(ctx: &mut PeerContext) -> PeerResult {
    let payload = ctx.args().join(",");
    ctx.ready_with(&payload)?;
    loop {
        match ctx.recv() {
            Ok(line) => ctx.send(&line)?,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
}

pub fn hang(_ctx: &mut PeerContext) -> PeerResult {
    eprintln!("hang: about to hang without reporting ready");
    let _ = std::io::stderr().flush();
    loop {
        std::thread::park();
    }
}

pub fn fail(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    Err("deliberate failure".into())
}

pub fn panic(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    panic!("deliberate panic");
}

/// Starts a peer of its own and reports its pid, then waits to be killed.
pub fn middle(ctx: &mut PeerContext) -> PeerResult {
    let grandchild = Peer::builder("idle").spawn()?;
    ctx.ready_with(&grandchild.pid().to_string())?;
    // Keep `grandchild` alive until this process is killed.
    loop {
        std::thread::park();
    }
}

pub fn idle(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

pub fn whoami(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    let groups = nix::unistd::getgroups()?;
    ctx.send(&format!(
        "uid={} euid={} gid={} egid={} groups={}",
        nix::unistd::getuid(),
        nix::unistd::geteuid(),
        nix::unistd::getgid(),
        nix::unistd::getegid(),
        groups.len()
    ))?;
    let denied = std::fs::OpenOptions::new().read(true).open(ctx.arg(0)?);
    ctx.send(&format!("{:?}", denied.map(drop).map_err(|e| e.kind())))?;
    Ok(())
}

pub fn list_fds(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    let own = format!("/proc/{}/fd", std::process::id());
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let target = std::fs::read_link(entry.path())?
            .to_string_lossy()
            .into_owned();
        if target != own {
            fds.push(format!("{}={target}", entry.file_name().to_string_lossy()));
        }
    }
    ctx.send(&fds.join(" "))?;
    Ok(())
}

#[test]
fn peer_reports_ready_and_exchanges_lines() {
    let _guard = LeakGuard::new();
    let mut peer = Peer::spawn("echo", &["a", "b c"]);
    assert_eq!(peer.ready_payload(), "a,b c");
    for line in ["ping", "", "ünïcode and spaces"] {
        peer.send(line).unwrap();
        assert_eq!(peer.recv().unwrap(), line);
    }
    peer.close_input();
    peer.wait_success().unwrap();
}

#[test]
fn hanging_peer_is_killed_at_the_deadline() {
    let _guard = LeakGuard::new();
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = Peer::builder("hang").timeout(timeout).spawn().unwrap_err();
    assert!(start.elapsed() >= timeout);
    let message = err.to_string();
    assert!(message.contains("peer `hang`"), "{message}");
    assert!(
        message.contains("did not report ready within 300ms"),
        "{message}"
    );
    assert!(message.contains("signal: 9"), "{message}");
    assert!(
        message.contains("about to hang"),
        "the peer's stderr is missing: {message}"
    );
    // Killed and reaped: the pid no longer names a process.
    let pid = err.pid().unwrap();
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None);
    assert_eq!(alive, Err(nix::errno::Errno::ESRCH));
}

#[test]
fn failing_peers_show_why() {
    let _guard = LeakGuard::new();
    let mut peer = Peer::spawn("fail", &[]);
    let message = peer.wait_success().unwrap_err().to_string();
    assert!(message.contains("exit status: 1"), "{message}");
    assert!(message.contains("deliberate failure"), "{message}");

    let mut peer = Peer::spawn("panic", &[]);
    let message = peer.wait_success().unwrap_err().to_string();
    assert!(message.contains("exit status: 101"), "{message}");
    assert!(message.contains("deliberate panic"), "{message}");
}

#[test]
fn peer_that_sends_nothing_fails_recv_at_the_deadline() {
    let _guard = LeakGuard::new();
    let timeout = Duration::from_millis(200);
    let mut peer = Peer::builder("idle").timeout(timeout).spawn().unwrap();
    let start = Instant::now();
    let message = peer.recv().unwrap_err().to_string();
    assert!(start.elapsed() >= timeout);
    assert!(message.contains("sent no line within 200ms"), "{message}");
}

#[test]
fn killed_peer_takes_its_own_peers_along() {
    let _guard = LeakGuard::new();
    let mut middle = Peer::spawn("middle", &[]);
    let grandchild: u32 = middle.ready_payload().parse().unwrap();
    assert!(
        wait_for_exit_of(
            grandchild,
            ipc_core::Deadline::after(Duration::from_millis(100))
        )
        .is_err()
    );
    middle.kill().unwrap();
    // The grandchild is not our child and has a process group of its own: only the
    // parent-death signal can have killed it.
    wait_for_exit_of(grandchild, test_deadline()).unwrap();
}

#[test]
fn unprivileged_peer_runs_as_nobody() {
    let guard = LeakGuard::new();
    let secret = guard.dir().join("secret");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .unwrap();
    let lines = ipc_testkit::run_unprivileged("whoami", &[secret.to_str().unwrap()]).unwrap();
    let n = NOBODY;
    assert_eq!(
        lines[0],
        format!("uid={n} euid={n} gid={n} egid={n} groups=0")
    );
    assert_eq!(lines[1], "Err(PermissionDenied)");
    std::fs::remove_file(secret).unwrap();
}

#[test]
fn peers_inherit_only_their_control_channel() {
    let _guard = LeakGuard::new();
    // Hold some descriptors open in the parent: none may reach the peer.
    let (_r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut peer = Peer::spawn("list-fds", &[]);
    let listing = peer.recv().unwrap();
    peer.wait_success().unwrap();
    let fds: Vec<(&str, &str)> = listing
        .split(' ')
        .filter_map(|f| f.split_once('='))
        .collect();
    // Descriptors this test process itself inherited without close-on-exec (a jobserver
    // pipe from cargo, say) pass on to every child; they are not the kit's doing.
    let inherited: Vec<String> = ipc_testkit::inherited_fds()
        .iter()
        .map(ToString::to_string)
        .collect();
    // 0-2 are stdio, 3 is the control pipe, and one more is the peer's duplicate of its
    // stdin (the same pipe as fd 0).
    let stdin = fds.iter().find(|(fd, _)| *fd == "0").unwrap().1;
    let extra: Vec<_> = fds
        .iter()
        .filter(|(fd, _)| {
            !["0", "1", "2", "3"].contains(fd) && !inherited.contains(&fd.to_string())
        })
        .collect();
    assert_eq!(
        extra.len(),
        1,
        "{listing} (inherited by the test itself: {inherited:?})"
    );
    assert_eq!(extra[0].1, stdin, "{listing}");
}

pub fn df(ctx: &mut PeerContext) -> PeerResult {
    let stat = nix::sys::statvfs::statvfs(ctx.arg(0)?)?;
    ctx.ready_with(&(stat.blocks() * stat.fragment_size()).to_string())?;
    Ok(())
}

#[test]
fn a_peer_can_have_a_small_tmpfs_of_its_own() {
    let _guard = LeakGuard::new();
    let mut peer = Peer::builder("df")
        .arg("/dev/shm")
        .private_tmpfs("/dev/shm", "256k")
        .spawn()
        .unwrap();
    let size: u64 = peer.ready_payload().parse().unwrap();
    peer.wait_success().unwrap();
    assert_eq!(size, 256 * 1024);
    let ours = nix::sys::statvfs::statvfs("/dev/shm").unwrap();
    assert!(
        ours.blocks() * ours.fragment_size() > 256 * 1024,
        "the parent's /dev/shm is untouched"
    );
}
