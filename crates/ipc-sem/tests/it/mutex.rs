use std::time::{Duration, Instant};

use ipc_core::IpcName;
use ipc_sem::{Locked, MutexOptions, RobustMutex, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};

type Counter<'a> = RobustMutex<&'a SharedMemory, u64>;

fn segment(guard: &LeakGuard, tag: &str) -> (IpcName, SharedMemory) {
    let name = guard.name(tag);
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    (name, segment)
}

fn open(segment: &SharedMemory) -> Counter<'_> {
    MutexOptions::new().open_in(segment, 0).unwrap()
}

/// Opens the counter at offset 0 of segment arg 0, locks it, writes arg 1 into it (a
/// half-done update) and holds the lock until killed.
pub fn hold_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let value: u64 = ctx.arg(1)?.parse()?;
    let counter: Counter<'_> = MutexOptions::new().open_in(&segment, 0)?;
    let guard = counter.lock_timeout(ipc_testkit::test_timeout())?.clean()?;
    guard.set(value);
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Opens the counter at offset 0 of segment arg 0 and adds 1 to it arg 1 times, one lock
/// each, reading and writing the value separately (so that unguarded updates would be lost).
pub fn count_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let count: u64 = ctx.arg(1)?.parse()?;
    let counter: Counter<'_> = MutexOptions::new().open_in(&segment, 0)?;
    ctx.ready()?;
    for _ in 0..count {
        let guard = counter.lock_timeout(ipc_testkit::test_timeout())?.clean()?;
        let value = guard.get();
        std::hint::spin_loop();
        guard.set(value + 1);
    }
    Ok(())
}

#[test]
fn two_processes_never_hold_it_at_once() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "mutex-count");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    let mut peer = Peer::spawn("mutex-count", &[name.as_str(), "20000"]);
    for _ in 0..20_000 {
        let guard = counter.lock().unwrap().clean().unwrap();
        let value = guard.get();
        std::hint::spin_loop();
        guard.set(value + 1);
    }
    peer.wait_success().unwrap();
    assert_eq!(counter.lock().unwrap().clean().unwrap().get(), 40_000);
}

#[test]
fn a_dead_holder_is_reported_and_the_repair_keeps_the_mutex() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "mutex-repair");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 7).unwrap();
    let mut holder = Peer::spawn("mutex-hold", &[name.as_str(), "999"]);
    assert!(counter.try_lock().unwrap_err().is_would_block());
    holder.kill().unwrap();
    match counter.lock().unwrap() {
        Locked::Clean(_) => panic!("the holder's death went unreported"),
        Locked::OwnerDied(recovery) => {
            assert_eq!(recovery.get(), 999);
            recovery.set(7);
            let guard = recovery.mark_consistent().unwrap();
            assert_eq!(guard.get(), 7);
        }
    }
    // Repaired: later locks are clean.
    let guard = counter.lock().unwrap().clean().unwrap();
    assert_eq!(guard.get(), 7);
}

#[test]
fn giving_up_after_a_dead_holder_makes_the_mutex_unrecoverable() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "mutex-give-up");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    let mut holder = Peer::spawn("mutex-hold", &[name.as_str(), "1"]);
    holder.kill().unwrap();
    let err = counter.lock().unwrap().clean().unwrap_err();
    assert!(err.is_owner_died(), "{err}");
    // Twice each: a failed attempt must leave the mutex as it was.
    for _ in 0..2 {
        for result in [counter.lock().map(drop), counter.try_lock().map(drop)] {
            let err = result.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOTRECOVERABLE), "{err}");
        }
    }
    // Another handle to it sees the same.
    let other = open(&segment);
    assert_eq!(
        other.lock().map(drop).unwrap_err().raw_os_error(),
        Some(libc::ENOTRECOVERABLE)
    );
}

#[test]
fn a_timed_lock_times_out_or_learns_of_the_holders_death() {
    let guard = LeakGuard::new();
    let (name, segment) = segment(&guard, "mutex-timed");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    let mut holder = Peer::spawn("mutex-hold", &[name.as_str(), "5"]);
    let start = Instant::now();
    let err = counter
        .lock_timeout(Duration::from_millis(50))
        .map(drop)
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    // The holder dies while this thread waits: the wait ends with the news. The mutex's
    // sleeper count (byte 44 of its block, see the layout in ipc-sem's mutex docs) says
    // when this thread sleeps in the wait.
    let pid = holder.pid();
    let sleepers = segment.atomic_u32(44).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            ipc_testkit::wait_until(ipc_testkit::test_deadline(), || {
                sleepers.load(std::sync::atomic::Ordering::SeqCst) > 0
            })
            .expect("the lock never slept");
            holder.kill().unwrap();
        });
        match counter.lock_timeout(ipc_testkit::test_timeout()).unwrap() {
            Locked::OwnerDied(recovery) => drop(recovery.mark_consistent().unwrap()),
            Locked::Clean(_) => panic!("the death of {pid} went unreported"),
        }
    });
}

#[test]
fn a_thread_that_exits_holding_it_is_a_dead_owner_too() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "mutex-thread");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let guard = counter.lock().unwrap().clean().unwrap();
            guard.set(3);
            std::mem::forget(guard);
        });
    });
    assert!(matches!(counter.lock().unwrap(), Locked::OwnerDied(_)));
}

#[test]
fn locking_twice_in_one_thread_is_an_error_not_a_deadlock() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "mutex-twice");
    let counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    let _held = counter.lock().unwrap().clean().unwrap();
    let err = counter.lock().map(drop).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EDEADLK), "{err}");
}

#[test]
fn the_wrong_memory_is_refused() {
    let guard = LeakGuard::new();
    let (_name, segment) = segment(&guard, "mutex-wrong");
    let quick = MutexOptions::new().timeout(Duration::from_millis(20));
    let err = quick.open_in::<_, u64>(&segment, 0).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let _counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
    // Another type of value, another kind of object.
    let err = quick.open_in::<_, u32>(&segment, 0).unwrap_err();
    assert!(err.is_corrupted(), "{err}");
    let err = SemaphoreOptions::new()
        .timeout(Duration::from_millis(20))
        .open_in(&segment, 0)
        .unwrap_err();
    assert!(err.is_corrupted(), "{err}");
    let err = MutexOptions::new().init_in(&segment, 0, 0u64).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(RobustMutex::<&SharedMemory, u64>::SIZE, 56);
}
