//! A peer that writes anything into the words of a robust mutex or an unnamed semaphore
//! while another process uses them: the user gets locks, permits, errors or timeouts, and
//! never a crash, an abort or a wait past its deadline. (With glibc objects in the region,
//! bogus robust-list pointers crashed the unlocker, a priority-inheritance kind with a dead
//! owner aborted it, and a scribbled `sem_t` aborted a waiter.)

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use ipc_core::IpcName;
use ipc_sem::{Locked, MutexOptions, RobustMutex, SemaphoreOptions};
use ipc_shm::{SharedMemory, ShmOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, Rng};

type Counter<'a> = RobustMutex<&'a SharedMemory, u64>;

/// What a user of a scribbled object may see: anything typed, nothing else.
fn expected(err: &ipc_core::Error) -> bool {
    err.is_timeout()
        || err.is_would_block()
        || err.is_corrupted()
        || err.is_owner_died()
        || err.is_limit_exceeded()
        || matches!(
            err.raw_os_error(),
            Some(libc::ENOTRECOVERABLE | libc::EDEADLK | libc::EOVERFLOW)
        )
}

/// Locks and unlocks the mutex at offset 0 of segment arg 0 with short timeouts for arg 1
/// milliseconds, repairing after dead owners or giving up at random; fails on an error of
/// an unexpected kind; reports how many attempts it made.
pub fn mutex_victim_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let until = Instant::now() + Duration::from_millis(ctx.arg(1)?.parse()?);
    let counter: Counter<'_> = MutexOptions::new().open_in(&segment, 0)?;
    ctx.ready()?;
    let mut attempts = 0u64;
    while Instant::now() < until {
        attempts += 1;
        let locked = if attempts % 3 == 0 {
            counter.try_lock()
        } else {
            counter.lock_timeout(Duration::from_millis(2))
        };
        match locked {
            Ok(Locked::Clean(guard)) => guard.set(guard.get().wrapping_add(1)),
            Ok(Locked::OwnerDied(recovery)) if attempts % 2 == 0 => {
                recovery.set(0);
                if let Err(err) = recovery.mark_consistent() {
                    if !expected(&err) {
                        return Err(err.into());
                    }
                }
            }
            Ok(Locked::OwnerDied(recovery)) => drop(recovery),
            Err(err) if expected(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    ctx.send(&attempts.to_string())?;
    Ok(())
}

/// Posts to and waits on the semaphore at offset 0 of segment arg 0 with short timeouts
/// for arg 1 milliseconds; fails on an error of an unexpected kind.
pub fn semaphore_victim_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let until = Instant::now() + Duration::from_millis(ctx.arg(1)?.parse()?);
    let sem = SemaphoreOptions::new().open_in(&segment, 0)?;
    ctx.ready()?;
    let mut attempts = 0u64;
    while Instant::now() < until {
        attempts += 1;
        let result = match attempts % 4 {
            0 => sem.post(),
            1 => sem.try_wait(),
            2 => sem.value().map(drop),
            _ => sem.wait_timeout(Duration::from_millis(2)),
        };
        match result {
            Ok(()) => {}
            Err(err) if expected(&err) => {}
            Err(err) => return Err(err.into()),
        }
    }
    ctx.send(&attempts.to_string())?;
    Ok(())
}

/// Locks the mutex at offset 0 of segment arg 0, says ready, waits for a line (meanwhile
/// the test rewrites the lock word), unlocks, then locks again with a timeout.
pub fn mutex_hold_then_unlock_role(ctx: &mut PeerContext) -> PeerResult {
    let segment = ShmOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let counter: Counter<'_> = MutexOptions::new().open_in(&segment, 0)?;
    let guard = counter.lock_timeout(ipc_testkit::test_timeout())?.clean()?;
    ctx.ready()?;
    ctx.recv()?;
    drop(guard);
    match counter.lock_timeout(Duration::from_millis(50)) {
        Ok(_) => {}
        Err(err) if expected(&err) => {}
        Err(err) => return Err(err.into()),
    }
    ctx.send("survived")?;
    Ok(())
}

/// Writes values at random into bytes `range` of `segment` (8-byte aligned) until
/// `millis` have passed, picking among `special` values and random ones.
fn scribble(segment: &SharedMemory, range: std::ops::Range<usize>, special: &[u64], millis: u64) {
    let until = Instant::now() + Duration::from_millis(millis);
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    while Instant::now() < until {
        let span = u64::try_from(range.len() / 8).unwrap();
        let offset = range.start + usize::try_from(rng.below(span)).unwrap() * 8;
        let value = if rng.below(3) == 0 {
            rng.next_u64()
        } else {
            rng.pick(special)
        };
        segment.atomic_u64(offset).unwrap().store(value, SeqCst);
        std::thread::yield_now();
    }
}

fn segment(guard: &LeakGuard, tag: &str) -> (IpcName, SharedMemory) {
    let name = guard.name(tag);
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    (name, segment)
}

/// A dead thread's identity with the "inconsistent" bit, and the same without.
fn dead_holder() -> u64 {
    std::thread::spawn(|| ipc_core::internal::ThreadIdentity::current().to_bits())
        .join()
        .unwrap()
}

#[test]
fn a_scribbled_mutex_never_crashes_its_user() {
    let guard = LeakGuard::new();
    for round in 0..6 {
        let (name, segment) = segment(&guard, "mutex-scribble");
        let _counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
        let mut victim = Peer::spawn("mutex-victim", &[name.as_str(), "150"]);
        let dead = dead_holder();
        let special = [0, 1 << 63, 1 << 62, dead, dead | 1 << 62, u64::MAX, 1, 2];
        // The lock and futex words mostly, every few rounds the header too.
        let start = if round % 3 == 2 { 0 } else { 32 };
        scribble(&segment, start..48, &special, 150);
        let attempts: u64 = victim.recv().unwrap().parse().unwrap();
        victim.wait_success().unwrap();
        assert!(attempts > 0, "round {round}");
    }
}

#[test]
fn a_lock_word_rewritten_under_the_holder_does_not_crash_its_unlock() {
    let guard = LeakGuard::new();
    let dead = dead_holder();
    for value in [0, u64::MAX, 1 << 63, dead, dead | 1 << 62, 0x7fff_ffff_ffff] {
        let (name, segment) = segment(&guard, "mutex-rewrite");
        let _counter: Counter<'_> = MutexOptions::new().init_in(&segment, 0, 0).unwrap();
        let mut holder = Peer::spawn("mutex-hold-then-unlock", &[name.as_str()]);
        segment.atomic_u64(32).unwrap().store(value, SeqCst);
        holder.send("unlock").unwrap();
        assert_eq!(holder.recv().unwrap(), "survived", "lock word {value:#x}");
        holder.wait_success().unwrap();
    }
}

#[test]
fn a_scribbled_semaphore_never_aborts_its_user() {
    let guard = LeakGuard::new();
    for round in 0..6 {
        let (name, segment) = segment(&guard, "sem-scribble");
        let _sem = SemaphoreOptions::new().max(4).init_in(&segment, 0).unwrap();
        let mut victim = Peer::spawn("semaphore-victim", &[name.as_str(), "150"]);
        let special = [0, 1, u64::MAX, 0x7fff_ffff, 0xffff_ffff, 1 << 32];
        let start = if round % 3 == 2 { 0 } else { 32 };
        scribble(&segment, start..40, &special, 150);
        let attempts: u64 = victim.recv().unwrap().parse().unwrap();
        victim.wait_success().unwrap();
        assert!(attempts > 0, "round {round}");
    }
}
