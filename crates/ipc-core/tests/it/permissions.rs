use std::os::fd::AsFd;

use ipc_core::{Access, Error, IpcName, OpenIntent, Permissions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, run_unprivileged};
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, fstat, umask};

use crate::{shm_attempt, shm_unlink};

/// Creates an object under a strict umask and reports its mode before and after `apply`.
pub fn umask_role(ctx: &mut PeerContext) -> PeerResult {
    // The umask is process-wide, which is why this runs in a peer of its own.
    umask(Mode::from_bits_truncate(0o077));
    let name = IpcName::new(ctx.arg(0)?)?;
    let fd = nix::sys::mman::shm_open(
        name.as_cstr(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )?;
    let before = fstat(fd.as_fd())?.st_mode & 0o777;
    let wide = Permissions::owner_only()
        .group(Access::ReadWrite)
        .others(Access::Read);
    wide.apply(fd.as_fd())?;
    let after = fstat(fd.as_fd())?.st_mode & 0o777;
    nix::sys::mman::shm_unlink(name.as_cstr())?;
    ctx.ready_with(&format!("{before:o} {after:o}"))?;
    Ok(())
}

/// Tries to open each named segment read-write and reports the outcome.
pub fn open_shm_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    for name in ctx.args().to_vec() {
        let name = IpcName::new(name)?;
        let outcome = shm_attempt(&name, OpenIntent::OpenExisting);
        ctx.send(&format!(
            "{:?}",
            outcome.map(drop).map_err(|e: Error| e.kind())
        ))?;
    }
    Ok(())
}

#[test]
fn permissions_are_applied_whatever_the_umask() {
    let guard = LeakGuard::new();
    let name = guard.name("umask");
    let mut peer = Peer::spawn("umask", &[name.as_str()]);
    assert_eq!(peer.ready_payload(), "600 664");
    peer.wait_success().unwrap();
}

#[test]
fn owner_only_keeps_other_users_out() {
    let guard = LeakGuard::new();
    let private = guard.name("private");
    let shared = guard.name("shared");
    for (name, permissions) in [
        (&private, Permissions::default()),
        (&shared, Permissions::default().others(Access::ReadWrite)),
    ] {
        let fd = shm_attempt(name, OpenIntent::Create).unwrap();
        permissions.apply(fd.as_fd()).unwrap();
    }
    let lines = run_unprivileged("open-shm", &[private.as_str(), shared.as_str()]).unwrap();
    assert_eq!(lines, ["Err(PermissionDenied)", "Ok(())"]);
    shm_unlink(&private).unwrap();
    shm_unlink(&shared).unwrap();
}

#[test]
fn bad_modes_are_refused() {
    let err = Permissions::from_mode(0o1777).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("0o1777"));
}
