use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::IpcName;
use ipc_sem::{SEMAPHORE_SIZE, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

fn segment(guard: &LeakGuard, tag: &str) -> (IpcName, SharedMemory) {
    let name = guard.name(tag);
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    (name, segment)
}

/// Opens segment arg 0, says ready, opens the semaphore at offset arg 1 in it (waiting for
/// its initialisation), waits at most arg 2 milliseconds for a permit and reports
/// "ok" or the error kind; an open error is reported as "open <kind>".
pub fn wait_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let offset: usize = ctx.arg(1)?.parse()?;
    let timeout = Duration::from_millis(ctx.arg(2)?.parse()?);
    ctx.ready()?;
    let sem = match SemaphoreOptions::new().open_in(&segment, offset) {
        Ok(sem) => sem,
        Err(err) => {
            ctx.send(&format!("open {:?}", err.kind()))?;
            return Ok(());
        }
    };
    match sem.wait_timeout(timeout) {
        Ok(()) => ctx.send("ok")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

/// The block's claim word: the identity of the thread initialising it.
const CLAIM: usize = 16;

/// Marks the semaphore block at offset 0 of segment arg 0 as being initialised by this
/// thread, as `init_in` does first, then hangs until killed: an initialiser that dies
/// half-way.
pub fn claim_and_hang_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    segment.atomic_u64(CLAIM)?.store(
        ipc_core::internal::ThreadIdentity::current().to_bits(),
        Ordering::SeqCst,
    );
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

#[test]
fn a_semaphore_in_shared_memory_works_across_processes() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "unnamed");
    // The peer starts first and waits for the initialisation.
    let mut peer = Peer::spawn("unnamed-wait", &[name.as_str(), "64", "20000"]);
    let sem = SemaphoreOptions::new()
        .initial(0)
        .init_in(&segment, 64)
        .unwrap();
    sem.post().unwrap();
    assert_eq!(peer.recv().unwrap(), "ok");
    peer.wait_success().unwrap();
    let _permit = {
        sem.post().unwrap();
        sem.acquire().unwrap()
    };
}

#[test]
fn the_bound_is_stored_with_the_semaphore() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "bound");
    let created = SemaphoreOptions::new()
        .max(2)
        .initial(1)
        .init_in(&segment, 0)
        .unwrap();
    // Another handle, opened without a bound, still respects it.
    let opened = SemaphoreOptions::new().open_in(&segment, 0).unwrap();
    assert_eq!(opened.max(), Some(2));
    opened.post().unwrap();
    assert!(opened.post().unwrap_err().is_limit_exceeded());
    assert!(created.post().unwrap_err().is_limit_exceeded());
    assert_eq!(created.value().unwrap(), 2);
    // Options that contradict it, or set an initial value, are refused, not ignored.
    for options in [
        SemaphoreOptions::new().max(3),
        SemaphoreOptions::new().initial(1),
    ] {
        let err = options.open_in(&segment, 0).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}

#[test]
fn places_are_checked() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "places");
    let options = SemaphoreOptions::new();
    for offset in [8, 4096 - SEMAPHORE_SIZE + 16, usize::MAX - 8] {
        let err = options.init_in(&segment, offset).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{offset}: {err}"
        );
    }
    let read_only = ShmOptions::new().read_only(true).open(&name).unwrap();
    let err = options.init_in(&read_only, 0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    // A second initialisation of the same place is refused.
    let _sem = options.init_in(&segment, 0).unwrap();
    let err = options.init_in(&segment, 0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
}

#[test]
fn uninitialised_or_corrupted_memory_is_an_error() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "corrupt");
    let options = SemaphoreOptions::new().timeout(Duration::from_millis(30));
    let err = options.open_in(&segment, 0).unwrap_err();
    assert!(err.is_timeout(), "{err}");

    let _sem = options.init_in(&segment, 0).unwrap();
    // Another kind of object, then an impossible state, then an impossible bound.
    segment
        .atomic_u32(0)
        .unwrap()
        .store(0xdead_beef, Ordering::SeqCst);
    assert!(options.open_in(&segment, 0).unwrap_err().is_corrupted());
    segment
        .atomic_u32(0)
        .unwrap()
        .store(u32::from_le_bytes(*b"SEM1"), Ordering::SeqCst);
    segment.atomic_u32(4).unwrap().store(7, Ordering::SeqCst);
    assert!(options.open_in(&segment, 0).unwrap_err().is_corrupted());
    segment.atomic_u32(4).unwrap().store(1, Ordering::SeqCst);
    segment
        .atomic_u32(8)
        .unwrap()
        .store(u32::MAX, Ordering::SeqCst);
    assert!(options.open_in(&segment, 0).unwrap_err().is_corrupted());
}

#[test]
fn an_initialiser_that_died_is_reported_and_replaced() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "abandoned");
    let mut peer = Peer::spawn("unnamed-claim-and-hang", &[name.as_str()]);
    let options = SemaphoreOptions::new().timeout(Duration::from_millis(30));
    // While it lives, its claim holds.
    let err = options.init_in(&segment, 0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(options.open_in(&segment, 0).unwrap_err().is_timeout());
    peer.kill().unwrap();
    assert!(options.open_in(&segment, 0).unwrap_err().is_peer_gone());
    let sem = options.initial(1).init_in(&segment, 0).unwrap();
    sem.try_wait().unwrap();
}

/// A claim naming a live thread id but another start time is a thread that reused the id
/// of a dead initialiser: the block is free.
#[test]
fn a_claim_by_a_reused_thread_id_is_dead() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "reused-claim");
    let me = ipc_core::internal::ThreadIdentity::current().to_bits();
    let claim = segment.atomic_u64(CLAIM).unwrap();
    claim.store(me ^ 1 << 30, Ordering::SeqCst);
    let sem = SemaphoreOptions::new()
        .initial(1)
        .init_in(&segment, 0)
        .unwrap();
    sem.try_wait().unwrap();
}
