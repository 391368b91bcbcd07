use std::fs::File;

use ipc_clean::clean_stale;
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

/// Waits to be killed: a process whose pid is then dead.
pub fn idle(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

#[test]
fn clean_removes_only_dead_creators_unused_objects() {
    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("idle", &[]);
    let dead = peer.pid();
    peer.kill().unwrap();
    let alive = std::process::id();
    let dir = guard.dir();
    let files = [
        format!("ipcrs-test-x-{dead}-0000abcd-1"), // stale: removed
        format!("sem.ipcrs-test-y-{dead}-0000abcd-2"), // stale semaphore: removed
        format!("ipcrs-test-z-{alive}-0000abcd-3"), // creator alive: kept
        format!("ipcrs-test-u-{dead}-0000abcd-4"), // in use by us: kept
        format!("other-{dead}-0000abcd-5"),        // not ours: untouched
        "ipcrs-test-no-pid".to_owned(),            // not a unique name: untouched
    ];
    for file in &files {
        File::create(dir.join(file)).unwrap();
    }
    let in_use = File::open(dir.join(&files[3])).unwrap();

    let dry = clean_stale(&[dir], true).unwrap();
    assert_eq!(dry.removed.len(), 2, "{dry:?}");
    assert!(
        files.iter().all(|f| dir.join(f).exists()),
        "a dry run removes nothing"
    );

    let report = clean_stale(&[dir], false).unwrap();
    let mut removed: Vec<_> = report
        .removed
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, vec![files[0].clone(), files[1].clone()]);
    let mut kept: Vec<_> = report
        .kept
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, vec![files[3].clone(), files[2].clone()]);
    assert!(report.failed.is_empty());
    for file in &files[2..] {
        assert!(dir.join(file).exists(), "{file}");
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    drop(in_use);
}

/// Opens the FIFO at arg 0 for reading and writing (so that the open does not wait), and
/// binds a Unix socket at arg 1, then holds both until killed.
pub fn hold_inside(ctx: &mut PeerContext) -> PeerResult {
    let _fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ctx.arg(0)?)?;
    let _socket = std::os::unix::net::UnixListener::bind(ctx.arg(1)?)?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Defect: a stale-looking directory was removed while a live process held a FIFO inside
/// it open, because only the directory itself was checked. Each object inside keeps it: a
/// FIFO held open, and (in a second directory) a bound socket.
#[test]
fn a_directory_whose_contents_a_live_process_uses_is_kept() {
    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("idle", &[]);
    let dead = peer.pid();
    peer.kill().unwrap();
    let scratch = guard.dir();
    let with_fifo = scratch.join(format!("ipcrs-test-fifo-{dead}-0000abcd-1"));
    let with_socket = scratch.join(format!("ipcrs-test-sock-{dead}-0000abcd-2"));
    for dir in [&with_fifo, &with_socket] {
        std::fs::create_dir(dir).unwrap();
    }
    let fifo = with_fifo.join("events");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let socket = with_socket.join("server.sock");
    let mut holder = Peer::spawn(
        "hold-inside",
        &[fifo.to_str().unwrap(), socket.to_str().unwrap()],
    );

    let report = clean_stale(&[scratch], false).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(fifo.exists() && socket.exists());
    assert_eq!(report.kept.len(), 2, "{report:?}");

    // Once the holder is gone, both are leftovers.
    holder.kill().unwrap();
    let report = clean_stale(&[scratch], false).unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert!(!with_fifo.exists() && !with_socket.exists());
}

#[test]
fn ipc_clean_finds_stale_queues_without_a_mounted_mqueue() {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_close, mq_open, mq_unlink};
    use nix::sys::stat::Mode;

    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("idle", &[]);
    let dead = peer.pid();
    peer.kill().unwrap();
    let name = ipc_core::IpcName::new(format!("/ipcrs-test-queue-{dead}-0000abcd-1")).unwrap();
    guard.track(&name);
    let attr = MqAttr::new(0, 1, 16, 0);
    let mqd = mq_open(
        name.as_cstr(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDONLY,
        Mode::S_IRUSR,
        Some(&attr),
    )
    .unwrap();
    mq_close(mqd).unwrap();

    let stdout = ipc_clean_dry_run();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("would remove ") && l.ends_with(name.file_name())),
        "{stdout}"
    );
    mq_unlink(name.as_cstr()).unwrap();
}

/// Creates the System V undo semaphore arg 0 and waits to be killed.
pub fn undo_creator(ctx: &mut PeerContext) -> PeerResult {
    let _sem =
        ipc_sem::SemaphoreOptions::new().create_undo(&ipc_core::IpcName::new(ctx.arg(0)?)?)?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

#[test]
fn ipc_clean_finds_the_semaphore_sets_of_crashed_creators() {
    let guard = LeakGuard::new();
    let name = guard.name("clean-undo");
    let mut creator = Peer::spawn("undo-creator", &[name.as_str()]);
    creator.kill().unwrap();
    let mut set = ipc_sem::SemaphoreOptions::new().open_undo(&name).unwrap();

    let stdout = ipc_clean_dry_run();
    let expected = format!("would remove System V semaphore set {} ", set.id());
    assert!(stdout.lines().any(|l| l.starts_with(&expected)), "{stdout}");
    set.unlink().unwrap();
}

/// Runs `ipc-clean --dry-run` (a dry run, so that a concurrent test's objects are never at
/// risk from this one) and returns what it printed, after checking that it succeeded.
fn ipc_clean_dry_run() -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ipc-clean"))
        .arg("--dry-run")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}
