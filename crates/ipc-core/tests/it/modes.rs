use std::io::ErrorKind;
use std::os::fd::AsFd;

use ipc_core::{CreationMode, IpcName, Unlink, UnlinkOnDrop};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

use crate::{shm_attempt, shm_unlink};

/// A named segment that `UnlinkOnDrop` can remove.
#[derive(Debug)]
struct Segment(IpcName);

impl Unlink for Segment {
    fn unlink(&self) -> ipc_core::Result<()> {
        shm_unlink(&self.0)
    }
}

fn open(name: &IpcName, mode: CreationMode) -> ipc_core::Result<bool> {
    mode.open_with(|intent| shm_attempt(name, intent), || shm_unlink(name))
        .map(|opened| opened.created)
}

fn exists(name: &IpcName) -> bool {
    std::path::Path::new("/dev/shm")
        .join(name.file_name())
        .exists()
}

/// Waits for the go line, then races to open-or-create and reports whether it created.
pub fn race_create_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    ctx.ready()?;
    ctx.recv()?;
    let created = open(&name, CreationMode::OpenOrCreate)?;
    ctx.send(&created.to_string())?;
    Ok(())
}

#[test]
fn each_mode_on_a_real_object() {
    let guard = LeakGuard::new();
    let name = guard.name("modes");
    assert!(open(&name, CreationMode::CreateExclusive).unwrap());

    let err = open(&name, CreationMode::CreateExclusive).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        err.to_string(),
        format!("shm_open({name}): File exists (os error 17)")
    );

    assert!(!open(&name, CreationMode::OpenOrCreate).unwrap());

    // A stale object with content: purging replaces it with an empty one.
    let fd = shm_attempt(&name, ipc_core::OpenIntent::OpenExisting).unwrap();
    nix::unistd::ftruncate(fd.as_fd(), 4096).unwrap();
    assert!(open(&name, CreationMode::PurgeAndCreate).unwrap());
    let fresh = shm_attempt(&name, ipc_core::OpenIntent::OpenExisting).unwrap();
    assert_eq!(nix::sys::stat::fstat(fresh.as_fd()).unwrap().st_size, 0);

    shm_unlink(&name).unwrap();
    assert!(
        open(&name, CreationMode::OpenOrCreate).unwrap(),
        "creates when missing"
    );
    shm_unlink(&name).unwrap();
    let err = shm_unlink(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn exactly_one_of_racing_processes_creates() {
    let guard = LeakGuard::new();
    let name = guard.name("race");
    let mut peers: Vec<Peer> = (0..4)
        .map(|_| Peer::spawn("race-create", &[name.as_str()]))
        .collect();
    for peer in &mut peers {
        peer.send("go").unwrap();
    }
    let created: Vec<String> = peers.iter_mut().map(|p| p.recv().unwrap()).collect();
    for peer in &mut peers {
        peer.wait_success().unwrap();
    }
    assert_eq!(
        created.iter().filter(|c| *c == "true").count(),
        1,
        "{created:?}"
    );
    shm_unlink(&name).unwrap();
}

#[test]
fn the_owner_unlinks_on_drop_unless_persisted() {
    let guard = LeakGuard::new();
    let name = guard.name("owned");
    drop(shm_attempt(&name, ipc_core::OpenIntent::Create).unwrap());
    let owner = UnlinkOnDrop::owned(Segment(name.clone()));
    assert!(owner.is_owned());
    drop(owner);
    assert!(!exists(&name));

    drop(shm_attempt(&name, ipc_core::OpenIntent::Create).unwrap());
    drop(UnlinkOnDrop::not_owned(Segment(name.clone())));
    let mut owner = UnlinkOnDrop::owned(Segment(name.clone()));
    owner.persist();
    drop(owner);
    assert!(exists(&name));

    let mut owner = UnlinkOnDrop::not_owned(Segment(name.clone()));
    owner.unlink().unwrap();
    assert!(!exists(&name));
    assert_eq!(owner.unlink().unwrap_err().kind(), ErrorKind::NotFound);
}
