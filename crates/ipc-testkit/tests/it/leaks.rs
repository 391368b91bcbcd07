use std::os::fd::IntoRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};
use nix::mqueue::{MQ_OFlag, mq_close, mq_open};
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;

/// Leaks a pipe on purpose and reports what its own guard found.
pub fn leaky(ctx: &mut PeerContext) -> PeerResult {
    let guard = LeakGuard::new();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let leaked = r.into_raw_fd();
    drop(w);
    ctx.ready_with(&leaked.to_string())?;
    let report = guard.check().unwrap_err();
    ctx.send(&report.items().join("; "))?;
    // Close it now, so that the guard's own drop passes.
    nix::unistd::close(leaked)?;
    Ok(())
}

#[test]
fn clean_test_passes() {
    let guard = LeakGuard::new();
    let name = guard.name("clean");
    let fd = shm_open(
        name.as_cstr(),
        nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .unwrap();
    drop(fd);
    nix::sys::mman::shm_unlink(name.as_cstr()).unwrap();
    std::fs::write(guard.dir().join("file"), b"x").unwrap();
    std::fs::remove_file(guard.dir().join("file")).unwrap();
    guard.check().unwrap();
    let dir = guard.dir().to_owned();
    drop(guard);
    assert!(!dir.exists(), "the scratch directory is removed");
}

#[test]
fn leaked_objects_fail_the_test_and_are_removed() {
    let guard = LeakGuard::new();
    let segment = guard.name("segment");
    let semaphore_file = format!("/dev/shm/sem.{}", guard.name("sem").file_name());
    let queue = guard.name("queue");
    let socket = guard.dir().join("server.sock");
    // A name the test derived from one of its own, as a channel's parts are.
    let derived_file = format!("/dev/shm/{}-0", segment.file_name());
    drop(
        shm_open(
            segment.as_cstr(),
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_RDWR,
            Mode::S_IRUSR,
        )
        .unwrap(),
    );
    std::fs::write(&semaphore_file, b"").unwrap();
    // nix passes neither mode nor attributes when `attr` is `None`, so give both.
    let attr = nix::mqueue::MqAttr::new(0, 4, 64, 0);
    let mqd = mq_open(
        queue.as_cstr(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_RDONLY,
        Mode::S_IRUSR,
        Some(&attr),
    )
    .unwrap();
    mq_close(mqd).unwrap();
    std::fs::write(&socket, b"").unwrap();
    std::fs::write(&derived_file, b"").unwrap();

    let items = guard.check().unwrap_err().items();
    assert_eq!(items.len(), 5, "{items:?}");
    assert!(items.iter().any(|i| i.contains(&derived_file)));
    assert!(
        items
            .iter()
            .any(|i| i.contains(segment.file_name()) && i.contains("still exists"))
    );
    assert!(items.iter().any(|i| i.contains(&semaphore_file)));
    assert!(
        items
            .iter()
            .any(|i| i.contains(&format!("message queue {queue}")))
    );
    assert!(items.iter().any(|i| i.contains("server.sock")));

    let dir = guard.dir().to_owned();
    let panic = catch_unwind(AssertUnwindSafe(|| drop(guard))).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("left 5 thing(s) behind"), "{message}");
    // Everything is gone even though the test "failed".
    assert!(!Path::new(&format!("/dev/shm/{}", segment.file_name())).exists());
    assert!(!Path::new(&semaphore_file).exists());
    assert!(!Path::new(&derived_file).exists());
    assert_eq!(
        mq_open(queue.as_cstr(), MQ_OFlag::O_RDONLY, Mode::empty(), None).err(),
        Some(nix::errno::Errno::ENOENT)
    );
    assert!(!dir.exists());
}

#[test]
fn leaked_descriptors_are_found_in_a_process_of_their_own() {
    let _guard = LeakGuard::new();
    let mut peer = Peer::spawn("leaky", &[]);
    let fd = peer.ready_payload().to_owned();
    let report = peer.recv().unwrap();
    peer.wait_success().unwrap();
    assert!(
        report.contains(&format!("descriptor {fd} (pipe:")),
        "{report}"
    );
}
