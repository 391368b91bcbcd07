//! Semaphores and mutexes in a `Selector`, with the other side in another process: the
//! futex watcher thread, a wake-up passed on to a blocking waiter, a holder that dies.

use std::sync::Arc;
use std::time::Duration;

use ipc_core::IpcName;
use ipc_sem::{Interest, Locked, MutexOptions, RobustMutex, Selector, Semaphore, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_deadline, test_timeout};

fn shared_segment(guard: &LeakGuard, tag: &str) -> (IpcName, Arc<SharedMemory>) {
    let name = guard.name(tag);
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    (name, Arc::new(segment))
}

/// Opens the semaphore at offset 0 of segment arg 0 and, per line received: "post"
/// posts; "wait" waits for a permit (blocking, bounded by the test timeout) and answers
/// "got".
pub fn semaphore_peer_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let sem = SemaphoreOptions::new().open_in(&segment, 0)?;
    ctx.ready()?;
    loop {
        match ctx.recv()?.as_str() {
            "post" => sem.post()?,
            "wait" => {
                sem.wait_timeout(test_timeout())?;
                ctx.send("got")?;
            }
            _ => return Ok(()),
        }
    }
}

#[test]
fn a_selector_sees_a_post_from_another_process_and_strands_no_blocking_waiter() {
    let guard = LeakGuard::new();
    let (name, segment) = shared_segment(&guard, "sem-select");
    let sem: Semaphore<Arc<SharedMemory>> = SemaphoreOptions::new()
        .init_in(Arc::clone(&segment), 0)
        .unwrap();
    let mut selector = Selector::new().unwrap();
    let key = selector.add(&sem, Interest::Readable).unwrap();
    assert!(selector.add(&sem, Interest::Writable).is_err());
    assert!(selector.try_wait().unwrap_err().is_would_block());
    let mut peer = Peer::spawn("semaphore-peer", &[name.as_str()]);
    peer.send("post").unwrap();
    assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
    sem.try_wait().unwrap();
    // Armed again, beside a blocking waiter in the peer: the one post reaches the peer
    // even if the watcher got the wake-up, as this side does not take the permit.
    assert!(selector.try_wait().unwrap_err().is_would_block());
    peer.send("wait").unwrap();
    // The sleeper hint (the semaphore's layout, byte 36) counts this side's poller and,
    // once it sleeps, the peer.
    let sleepers = segment.atomic_u32(36).unwrap();
    ipc_testkit::wait_until(test_deadline(), || {
        sleepers.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .unwrap();
    sem.post().unwrap();
    assert_eq!(peer.recv().unwrap(), "got");
    peer.send("end").unwrap();
    peer.wait_success().unwrap();
    assert!(sem.try_wait().unwrap_err().is_would_block());
}

/// Opens the mutex at offset 0 of segment arg 0, locks it, says ready and, on a line,
/// unlocks it ("unlock") and exits, or holds it until killed ("hold").
pub fn mutex_peer_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let mutex: RobustMutex<&SharedMemory, u64> = MutexOptions::new().open_in(&segment, 0)?;
    let guard = mutex.lock_timeout(test_timeout())?.clean()?;
    ctx.ready()?;
    if ctx.recv()? == "unlock" {
        drop(guard);
        return Ok(());
    }
    loop {
        std::thread::park();
    }
}

#[test]
fn a_selector_sees_a_mutex_unlocked_or_its_holder_die_in_another_process() {
    for ending in ["unlock", "kill"] {
        let guard = LeakGuard::new();
        let (name, segment) = shared_segment(&guard, "mutex-select");
        let mutex: RobustMutex<Arc<SharedMemory>, u64> = MutexOptions::new()
            .init_in(Arc::clone(&segment), 0, 0)
            .unwrap();
        let mut peer = Peer::spawn("mutex-peer", &[name.as_str()]);
        let mut selector = Selector::new().unwrap();
        let key = selector.add(&mutex, Interest::Readable).unwrap();
        // Held by a live process: not ready (spurious reports every 20 ms are allowed,
        // and try_lock then fails).
        match selector.wait_timeout(Duration::from_millis(30)) {
            Err(err) => assert!(err.is_timeout(), "{err}"),
            Ok(_) => assert!(mutex.try_lock().unwrap_err().is_would_block()),
        }
        if ending == "unlock" {
            peer.send("unlock").unwrap();
            peer.wait_success().unwrap();
        } else {
            peer.kill().unwrap();
        }
        let locked = loop {
            assert_eq!(selector.wait_deadline(test_deadline()).unwrap(), [key]);
            match mutex.try_lock() {
                Ok(locked) => break locked,
                Err(err) if err.is_would_block() => continue,
                Err(err) => panic!("{err}"),
            }
        };
        match (ending, locked) {
            ("unlock", Locked::Clean(_)) | ("kill", Locked::OwnerDied(_)) => {}
            (ending, other) => panic!("{ending}: {other:?}"),
        }
    }
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_wait_gets_a_permit_posted_by_another_process_and_a_dropped_one_takes_none() {
    let guard = LeakGuard::new();
    let (name, segment) = shared_segment(&guard, "sem-async");
    let sem: Semaphore<Arc<SharedMemory>> = SemaphoreOptions::new()
        .init_in(Arc::clone(&segment), 0)
        .unwrap();
    let mut sem = ipc_sem::Async::new(sem);
    let mut peer = Peer::spawn("semaphore-peer", &[name.as_str()]);
    let runtime = ipc_testkit::runtime().unwrap();
    runtime.block_on(async {
        let dropped =
            tokio::time::timeout(Duration::from_millis(30), sem.read_with(|s| s.try_wait()));
        assert!(dropped.await.is_err());
        // The dropped wait withdrew its sleeper hint (the semaphore's layout, byte 36).
        let sleepers = segment.atomic_u32(36).unwrap();
        assert_eq!(sleepers.load(std::sync::atomic::Ordering::SeqCst), 0);
        peer.send("post").unwrap();
        tokio::time::timeout(test_timeout(), sem.read_with(|s| s.try_wait()))
            .await
            .expect("the permit in time")
            .unwrap();
    });
    assert!(sem.get_ref().try_wait().unwrap_err().is_would_block());
    peer.send("end").unwrap();
    peer.wait_success().unwrap();
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_lock_waits_for_another_process_to_unlock_or_die() {
    for ending in ["unlock", "kill"] {
        let guard = LeakGuard::new();
        let (name, segment) = shared_segment(&guard, "mutex-async");
        let mutex: RobustMutex<Arc<SharedMemory>, u64> = MutexOptions::new()
            .init_in(Arc::clone(&segment), 0, 0)
            .unwrap();
        let mut mutex = ipc_sem::Async::new(mutex);
        let mut peer = Peer::spawn("mutex-peer", &[name.as_str()]);
        let runtime = ipc_testkit::runtime().unwrap();
        runtime.block_on(async {
            // Held by a live process: a wait dropped by its timeout takes nothing.
            let dropped = tokio::time::timeout(Duration::from_millis(30), mutex.readable());
            if dropped.await.is_ok() {
                assert!(mutex.get_ref().try_lock().unwrap_err().is_would_block());
            }
            let lock = async {
                // A lock guard lends from the mutex, so the lock follows `readable`.
                loop {
                    mutex.readable().await.unwrap();
                    match mutex.get_ref().try_lock() {
                        Ok(locked) => return matches!(locked, Locked::OwnerDied(_)),
                        Err(err) if err.is_would_block() => {}
                        Err(err) => panic!("{err}"),
                    }
                }
            };
            let ender = async {
                if ending == "unlock" {
                    peer.send("unlock").unwrap();
                    peer.wait_success().unwrap();
                } else {
                    peer.kill().unwrap();
                }
                std::future::pending::<()>().await;
            };
            let owner_died = tokio::select! {
                biased;
                died = tokio::time::timeout(test_timeout(), lock) => died.expect(ending),
                () = ender => unreachable!(),
            };
            assert_eq!(owner_died, ending == "kill", "{ending}");
        });
    }
}
