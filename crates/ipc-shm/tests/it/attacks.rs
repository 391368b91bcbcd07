use std::os::fd::AsFd;

use ipc_shm::{MemfdOptions, ReceiveOptions, Seals, SharedMemory};
use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

/// Connects to the abstract seqpacket name arg 0, receives a segment, tries to map it with
/// the default (strict) options, then tries to shrink it, and reports both outcomes.
pub fn receive_and_attack_role(ctx: &mut PeerContext) -> PeerResult {
    let conn = Seqpacket::connect(&UnixAddr::abstract_name(ctx.arg(0)?))?;
    ctx.ready()?;
    let mut buf = [0u8; 8];
    let (_, mut fds) = conn.recv_with_fds(&mut buf, 1)?;
    let fd = fds.pop().ok_or("no descriptor")?;
    let attack = fd.try_clone()?;
    let mapped = match SharedMemory::from_fd(fd) {
        Ok(segment) => format!(
            "mapped {} writable={}",
            segment.len(),
            segment.is_writable()
        ),
        Err(err) => format!("refused {:?}", err.kind()),
    };
    let shrink = match nix::unistd::ftruncate(&attack, 0) {
        Ok(()) => "shrunk".to_owned(),
        Err(errno) => format!("{errno:?}"),
    };
    ctx.send(&format!("{mapped}; {shrink}"))?;
    Ok(())
}

fn send_to_attacker(segment: &SharedMemory) -> String {
    let addr = ipc_testkit::unique_name("attack");
    let listener = SeqpacketListener::bind(&UnixAddr::abstract_name(addr.file_name())).unwrap();
    let mut peer = Peer::spawn("receive-and-attack", &[addr.file_name()]);
    let (conn, _) = listener
        .accept_timeout(ipc_testkit::test_timeout())
        .unwrap();
    conn.send_with_fds(b"segment", &[segment.as_fd()]).unwrap();
    let outcome = peer.recv().unwrap();
    peer.wait_success().unwrap();
    outcome
}

#[test]
fn a_sealed_memfd_survives_a_shrink_attack() {
    let _guard = LeakGuard::new();
    let segment = MemfdOptions::new(64 * 1024)
        .create_with(|s| s.write_at(0, b"intact"))
        .unwrap();
    assert!(segment.seals().unwrap().contains(Seals::default()));
    let outcome = send_to_attacker(&segment);
    assert_eq!(outcome, "mapped 65536 writable=true; EPERM");
    // Every byte is still there to touch.
    let mut buf = [0u8; 6];
    segment.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"intact");
    segment.write_at(64 * 1024 - 1, b"!").unwrap();
}

#[test]
fn an_unsealed_memfd_is_refused_at_open() {
    let _guard = LeakGuard::new();
    let segment = MemfdOptions::new(4096).seals(Seals::NONE).create().unwrap();
    let outcome = send_to_attacker(&segment);
    // Refused by the receiver; the attacker could shrink it, but the receiver never
    // mapped it, so nobody faults. (Our own mapping is beyond the end now: not touched.)
    assert_eq!(outcome, "refused PermissionDenied; shrunk");
}

#[test]
fn write_seals_make_receivers_read_only() {
    let _guard = LeakGuard::new();
    let sealed = MemfdOptions::new(4096)
        .seals(Seals::default().with(Seals::WRITE))
        .create_with(|s| s.write_at(0, b"final"))
        .unwrap();
    assert!(!sealed.is_writable());
    assert_eq!(
        send_to_attacker(&sealed),
        "mapped 4096 writable=false; EPERM"
    );

    let future = MemfdOptions::new(4096)
        .seals(Seals::default().with(Seals::FUTURE_WRITE))
        .create()
        .unwrap();
    future.write_at(0, b"creator still writes").unwrap();
    assert_eq!(
        send_to_attacker(&future),
        "mapped 4096 writable=false; EPERM"
    );
}

#[test]
fn received_descriptors_are_checked() {
    // Not shared memory: a regular file.
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    let err = SharedMemory::from_fd(file.into()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // A pipe.
    let (r, _w) = nix::unistd::pipe().unwrap();
    assert!(SharedMemory::from_fd(r).is_err());
    // An empty memfd.
    let empty =
        nix::sys::memfd::memfd_create("empty", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
    assert!(
        ReceiveOptions::new()
            .allow_unsealed(true)
            .map(empty)
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    // A header that does not match.
    let segment = MemfdOptions::new(4096)
        .layout(ipc_shm::Layout::new(1, 1))
        .create()
        .unwrap();
    let fd = segment.as_fd().try_clone_to_owned().unwrap();
    let err = ReceiveOptions::new()
        .layout(ipc_shm::Layout::new(1, 2))
        .map(fd)
        .unwrap_err();
    assert!(err.is_corrupted(), "{err}");
}
