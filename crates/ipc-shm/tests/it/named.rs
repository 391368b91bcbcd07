// One test writes a segment's header through a raw mapping of its own, as a foreign creator would.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::{Access, CreationMode, IpcName, Permissions};
use ipc_shm::{HEADER_LEN, Layout, ShmOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, Rng, run_unprivileged};

const LAYOUT: Layout = Layout::new(0x5445_5354_5345_474d, 7);

/// Opens segment arg 0 with the test layout, waiting up to arg 1 milliseconds, after telling
/// the parent it starts; reports the size or the error.
pub fn open_wait_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let timeout = Duration::from_millis(ctx.arg(1)?.parse()?);
    ctx.ready()?;
    match ShmOptions::new()
        .layout(LAYOUT)
        .timeout(timeout)
        .open(&name)
    {
        Ok(segment) => ctx.send(&format!(
            "ok {} {}",
            segment.len(),
            segment.read::<u64>(HEADER_LEN)?
        ))?,
        Err(err) => ctx.send(&format!("{:?}: {err}", err.kind()))?,
    }
    Ok(())
}

/// Creates segment arg 0 with the test layout and dies (when killed) before initialising it.
pub fn create_and_hang_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    ShmOptions::new()
        .size(4096)
        .layout(LAYOUT)
        .create_with(&name, |_| {
            ctx.ready().map_err(ipc_core::Error::from)?;
            loop {
                std::thread::park();
            }
        })?;
    Ok(())
}

/// As another user: takes the name arg 0 first, and leaves the segment behind.
pub fn squat_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let mut segment = ShmOptions::new()
        .size(4096)
        .permissions(Permissions::owner_only().others(Access::ReadWrite))
        .create(&name)?;
    segment.write_at(0, b"trap")?;
    segment.persist();
    ctx.ready()?;
    Ok(())
}

/// In a 256 KiB `/dev/shm` of its own: creates a 1 MiB segment and reports the error.
pub fn fill_shm_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    ctx.ready()?;
    match ShmOptions::new().size(1 << 20).create(&name) {
        Ok(_) => ctx.send("created")?,
        Err(err) => ctx.send(&format!(
            "{:?} {:?} exists={}",
            err.raw_os_error(),
            err.op(),
            std::path::Path::new("/dev/shm")
                .join(name.file_name())
                .exists()
        ))?,
    }
    Ok(())
}

/// In a private, nearly full `/dev/shm`: makes segments the way a foreign (or hostile)
/// creator might, by `ftruncate` alone, then opens them with this crate and touches every
/// page, reporting each outcome on one line.
pub fn sparse_open_role(ctx: &mut PeerContext) -> PeerResult {
    let sparse = |name: &IpcName, size: i64| -> PeerResult {
        let fd = nix::sys::mman::shm_open(
            name.as_cstr(),
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::S_IRWXU,
        )?;
        nix::unistd::ftruncate(&fd, size)?;
        Ok(())
    };
    let touch = |options: ShmOptions, name: &IpcName| match options.open(name) {
        Ok(segment) => {
            // Every page, as a user of the segment would.
            let mut byte = [0u8; 1];
            for offset in (0..segment.len()).step_by(4096) {
                segment.read_at(offset, &mut byte)?;
                if segment.is_writable() {
                    segment.write_at(offset, &[1])?;
                }
            }
            Ok::<_, ipc_core::Error>("opened".to_owned())
        }
        Err(err) => Ok(format!("{:?}", err.kind())),
    };
    let (big, small) = (IpcName::new(ctx.arg(0)?)?, IpcName::new(ctx.arg(1)?)?);
    ctx.ready()?;
    // 8 MiB that the 256 KiB file system cannot hold, then 64 KiB that it can.
    sparse(&big, 8 << 20)?;
    sparse(&small, 64 << 10)?;
    let writable = touch(ShmOptions::new(), &big)?;
    let read_only = touch(ShmOptions::new().read_only(true), &big)?;
    let fits = touch(ShmOptions::new(), &small)?;
    // The same segment received as a descriptor (as from a peer over a socket).
    let fd = nix::sys::mman::shm_open(
        big.as_cstr(),
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let received = match ipc_shm::ReceiveOptions::new().allow_unsealed(true).map(fd) {
        Ok(_) => "mapped".to_owned(),
        Err(err) => format!("{:?}", err.kind()),
    };
    let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(format!(
        "/dev/shm/{}",
        small.file_name()
    ))?);
    for name in [&big, &small] {
        nix::sys::mman::shm_unlink(name.as_cstr())?;
    }
    ctx.send(&format!(
        "{writable} {read_only} {fits} {} {received}",
        blocks * 512
    ))?;
    Ok(())
}

/// Defect: a segment whose creator only sized it (no reservation) in a nearly full
/// `/dev/shm` killed the first process that wrote to it with SIGBUS. Its opener now
/// reserves the space or refuses it with a clear error.
#[test]
fn an_unreserved_segment_is_reserved_or_refused_never_a_sigbus() {
    let guard = LeakGuard::new();
    let (big, small) = (guard.name("sparse-big"), guard.name("sparse-small"));
    let mut peer = Peer::builder("sparse-open")
        .arg(big.as_str())
        .arg(small.as_str())
        .private_tmpfs("/dev/shm", "256k")
        .spawn()
        .unwrap();
    let outcome = peer.recv().unwrap();
    peer.wait_success().unwrap();
    assert_eq!(
        outcome,
        format!("StorageFull StorageFull opened {} StorageFull", 64 << 10),
        "writable, read-only and fitting opens, the small one's reserved bytes, and the \
         big one received as a descriptor"
    );
}

#[test]
fn create_open_and_clean_up() {
    let guard = LeakGuard::new();
    let name = guard.name("seg");
    let owner = ShmOptions::new()
        .size(10_000)
        .permissions(Permissions::owner_only().group(Access::Read))
        .create(&name)
        .unwrap();
    let meta = std::fs::metadata(format!("/dev/shm/{}", name.file_name())).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640
    );
    assert_eq!(owner.len(), 10_000);
    assert_eq!(owner.data_offset(), 0);
    let err = ShmOptions::new().size(10).create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);

    let reader = ShmOptions::new().read_only(true).open(&name).unwrap();
    owner.write_at(9_990, b"0123456789").unwrap();
    let mut buf = [0u8; 10];
    reader.read_at(9_990, &mut buf).unwrap();
    assert_eq!(&buf, b"0123456789");
    assert_eq!(
        reader.write_at(0, b"x").unwrap_err().kind(),
        std::io::ErrorKind::PermissionDenied
    );
    // Out of bounds, overflowing and misaligned accesses are errors.
    assert!(reader.read_at(9_991, &mut buf).is_err());
    assert!(reader.read_at(usize::MAX, &mut buf).is_err());
    assert!(owner.atomic_u32(2).is_err());
    assert!(owner.atomic_u64(10_000).is_err());
    owner.atomic_u64(8).unwrap().store(42, Ordering::Release);
    assert_eq!(reader.read::<u64>(8).unwrap(), 42);

    // OpenOrCreate finds it; PurgeAndCreate replaces it with a fresh, zeroed one.
    let again = ShmOptions::new()
        .size(10_000)
        .creation_mode(CreationMode::OpenOrCreate)
        .create(&name)
        .unwrap();
    assert_eq!(again.read::<u64>(8).unwrap(), 42);
    drop(again);
    let mut fresh = ShmOptions::new()
        .size(4096)
        .creation_mode(CreationMode::PurgeAndCreate)
        .create(&name)
        .unwrap();
    assert_eq!(fresh.read::<u64>(8).unwrap(), 0);
    // The old handles notice that their name now leads elsewhere.
    assert!(reader.is_unlinked().unwrap());
    drop(owner);
    fresh.unlink().unwrap();
    assert!(fresh.is_unlinked().unwrap());
}

#[test]
fn opening_waits_for_a_slow_creator_and_never_maps_zero_bytes() {
    let guard = LeakGuard::new();
    let name = guard.name("slow");
    // A creator that has made the object but not sized it yet.
    let raw = nix::sys::mman::shm_open(
        name.as_cstr(),
        nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let mut peer = Peer::spawn("open-wait", &[name.as_str(), "10000"]);
    // The peer is now opening; finish creating in the documented header layout.
    nix::unistd::ftruncate(&raw, 8192).unwrap();
    let map = memmap2::MmapOptions::new()
        .len(8192)
        .map_raw(std::os::fd::AsRawFd::as_raw_fd(&raw))
        .unwrap();
    let write = |offset: usize, bytes: &[u8]| {
        // SAFETY: the range is inside the 8 KiB mapping made just above.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr().add(offset), bytes.len())
        }
    };
    write(0, &LAYOUT.magic.to_le_bytes());
    write(8, &LAYOUT.version.to_le_bytes());
    write(16, &8192u64.to_le_bytes());
    write(24, &1u32.to_le_bytes());
    write(HEADER_LEN, &77u64.to_le_bytes());
    std::sync::atomic::fence(Ordering::Release);
    write(12, &2u32.to_le_bytes());
    assert_eq!(peer.recv().unwrap(), "ok 8192 77");
    peer.wait_success().unwrap();
    nix::sys::mman::shm_unlink(name.as_cstr()).unwrap();
}

#[test]
fn a_creator_killed_mid_initialisation_gives_openers_a_timeout() {
    let guard = LeakGuard::new();
    let name = guard.name("dead");
    let mut creator = Peer::spawn("create-and-hang", &[name.as_str()]);
    creator.kill().unwrap();
    let start = std::time::Instant::now();
    let err = ShmOptions::new()
        .layout(LAYOUT)
        .timeout(Duration::from_millis(200))
        .open(&name)
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string().contains("did not finish initialising"),
        "{err}"
    );
    // The crash left the name behind; the stale-segment finder would remove it.
    nix::sys::mman::shm_unlink(name.as_cstr()).unwrap();
}

#[test]
fn scribbled_headers_are_errors_never_crashes() {
    let guard = LeakGuard::new();
    let name = guard.name("scribbled");
    let owner = ShmOptions::new()
        .size(4096)
        .layout(LAYOUT)
        .create(&name)
        .unwrap();
    let open = || {
        ShmOptions::new()
            .layout(LAYOUT)
            .timeout(Duration::from_millis(5))
            .open(&name)
    };
    assert!(open().is_ok());
    // Every kind of damage, then random bytes.
    let cases: [(usize, &[u8]); 5] = [
        (0, b"notmagic"),
        (8, &8u32.to_le_bytes()),
        (12, &9u32.to_le_bytes()),
        (16, &4095u64.to_le_bytes()),
        (24, &2u32.to_le_bytes()),
    ];
    for (offset, bytes) in cases {
        let saved: Vec<u8> = (0..HEADER_LEN)
            .map(|i| owner.read::<u8>(i).unwrap())
            .collect();
        owner.write_at(offset, bytes).unwrap();
        let err = open().unwrap_err();
        assert!(err.is_corrupted(), "offset {offset}: {err}");
        owner.write_at(0, &saved).unwrap();
    }
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut noise = [0u8; HEADER_LEN];
        for b in &mut noise {
            *b = rng.next_u64().to_le_bytes()[0];
        }
        owner.write_at(0, &noise).unwrap();
        // A random state of 0 or 1 looks like a creator still at work: a timeout, not a hang.
        let err = open().unwrap_err();
        assert!(err.is_corrupted() || err.is_timeout(), "{err}");
    }
    drop(owner);
}

#[test]
fn a_version_mismatch_is_an_error_at_open() {
    let guard = LeakGuard::new();
    let name = guard.name("version");
    let _owner = ShmOptions::new()
        .size(4096)
        .layout(LAYOUT)
        .create(&name)
        .unwrap();
    let err = ShmOptions::new()
        .layout(Layout::new(LAYOUT.magic, 8))
        .open(&name)
        .unwrap_err();
    assert!(err.is_corrupted());
    assert!(
        err.to_string()
            .contains("layout version 7, but this program reads version 8"),
        "{err}"
    );
    let err = ShmOptions::new()
        .layout(Layout::new(1, 7))
        .open(&name)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a segment of this application"),
        "{err}"
    );
}

#[test]
fn a_name_squatted_by_another_user_is_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("squat");
    run_unprivileged("squat", &[name.as_str()]).unwrap();
    let err = ShmOptions::new().size(4096).create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    let err = ShmOptions::new().open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("uid 65534"), "{err}");
    let accepted = ShmOptions::new()
        .accept_other_owner(true)
        .open(&name)
        .unwrap();
    let mut buf = [0u8; 4];
    accepted.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"trap");
    nix::sys::mman::shm_unlink(name.as_cstr()).unwrap();
}

#[test]
fn a_full_dev_shm_is_an_error_at_creation() {
    let guard = LeakGuard::new();
    let name = guard.name("full");
    let mut peer = Peer::builder("fill-shm")
        .arg(name.as_str())
        .private_tmpfs("/dev/shm", "256k")
        .spawn()
        .unwrap();
    let outcome = peer.recv().unwrap();
    peer.wait_success().unwrap();
    // ENOSPC from posix_fallocate, and the half-made segment was removed.
    assert_eq!(
        outcome,
        format!("Some({}) \"posix_fallocate\" exists=false", libc::ENOSPC)
    );
}

#[test]
fn stale_segments_are_found_and_only_they() {
    let guard = LeakGuard::new();
    let live = guard.name("live");
    let _live = ShmOptions::new().size(64).create(&live).unwrap();
    // A segment whose creator is gone.
    let mut peer = Peer::spawn("open-wait", &["/unused", "1"]);
    let dead_pid = peer.pid();
    peer.kill().unwrap();
    let stale = IpcName::new(format!("/ipcrs-test-stale-{dead_pid}-0000abcd-1")).unwrap();
    guard.track(&stale);
    let mut orphan = ShmOptions::new().size(64).create(&stale).unwrap();
    orphan.persist();
    drop(orphan);
    let found = ipc_shm::stale_segments("ipcrs-test-stale-").unwrap();
    assert_eq!(found, std::slice::from_ref(&stale));
    assert!(
        ipc_shm::stale_segments("ipcrs-test-live")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ipc_shm::remove_stale_segments("ipcrs-test-stale-").unwrap(),
        [stale]
    );
    assert!(
        ipc_shm::stale_segments("ipcrs-test-stale-")
            .unwrap()
            .is_empty()
    );
}

/// A clone maps the same segment again and does not own its name.
#[test]
fn a_cloned_segment_shares_memory_and_not_the_name() {
    let guard = LeakGuard::new();
    let name = guard.name("clone");
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    let clone = segment.try_clone().unwrap();
    clone.write_at(100, b"through the clone").unwrap();
    let mut buf = [0u8; 17];
    segment.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"through the clone");
    drop(clone);
    ShmOptions::new().open(&name).unwrap();
}

#[test]
fn a_size_that_disagrees_with_an_existing_segment_is_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("size");
    let options = ShmOptions::new().size(8192);
    let _segment = options.create(&name).unwrap();
    assert_eq!(options.open(&name).unwrap().len(), 8192);
    assert_eq!(ShmOptions::new().open(&name).unwrap().len(), 8192);
    let err = ShmOptions::new().size(4096).open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("ShmOptions::size"), "{err}");
    let err = ShmOptions::new()
        .size(4096)
        .creation_mode(CreationMode::OpenOrCreate)
        .create(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}
