// The key-collision test forges a set's tag with a raw `semctl`.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use ipc_core::{Access, IpcName, Permissions};
use ipc_sem::{SEMVMX, SemaphoreOptions, StaleUndoSet, stale_undo_sets};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, SignalStorm, run_unprivileged};

/// Opens the undo semaphore arg 0, takes a permit and holds it until killed.
pub fn hold_role(ctx: &mut PeerContext) -> PeerResult {
    let sem = SemaphoreOptions::new().open_undo(&IpcName::new(ctx.arg(0)?)?)?;
    sem.wait_timeout(ipc_testkit::test_timeout())?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Creates the undo semaphore arg 0, persists it if arg 1 is "persist", and waits to be
/// killed: a creator that crashes.
pub fn create_role(ctx: &mut PeerContext) -> PeerResult {
    let mut sem = SemaphoreOptions::new().create_undo(&IpcName::new(ctx.arg(0)?)?)?;
    if ctx.arg(1)? == "persist" {
        sem.persist();
    }
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Opens the undo semaphore arg 0 (accepting another owner if arg 1 is "accept"), says
/// ready, waits for a permit and reports "ok" or the error kind (or "gone" if the set was
/// removed meanwhile).
pub fn wait_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let accept = ctx.arg(1)? == "accept";
    ctx.ready()?;
    let sem = match SemaphoreOptions::new()
        .accept_other_owner(accept)
        .open_undo(&name)
    {
        Ok(sem) => sem,
        Err(err) => {
            ctx.send(&format!("{:?}", err.kind()))?;
            return Ok(());
        }
    };
    match sem.wait_timeout(ipc_testkit::test_timeout()) {
        Ok(()) => ctx.send("ok")?,
        Err(err) if err.is_peer_gone() => ctx.send("gone")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

#[test]
fn a_killed_holder_gives_its_permit_back() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-holder");
    let sem = SemaphoreOptions::new()
        .initial(1)
        .create_undo(&name)
        .unwrap();
    let mut holder = Peer::spawn("undo-hold", &[name.as_str()]);
    assert_eq!(sem.value().unwrap(), 0);
    assert!(sem.try_wait().unwrap_err().is_would_block());
    holder.kill().unwrap();
    let _permit = sem.acquire_timeout(ipc_testkit::test_timeout()).unwrap();
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn permits_and_timeouts() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .initial(2)
        .create_undo(&guard.name("undo-permits"))
        .unwrap();
    {
        let _a = sem.acquire().unwrap();
        let _b = sem.try_acquire().unwrap();
        let start = Instant::now();
        let err = sem.wait_timeout(Duration::from_millis(50)).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(sem.try_wait().unwrap_err().is_would_block());
    }
    assert_eq!(sem.value().unwrap(), 2);
}

#[test]
fn a_storm_of_signals_does_not_shorten_a_wait() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .create_undo(&guard.name("undo-storm"))
        .unwrap();
    let storm = SignalStorm::start();
    let start = Instant::now();
    let err = sem.wait_timeout(Duration::from_millis(200)).unwrap_err();
    drop(storm);
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn the_creator_removes_it_and_waiters_learn_of_it() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-remove");
    let mut sem = SemaphoreOptions::new().create_undo(&name).unwrap();
    let mut waiter = Peer::spawn("undo-wait", &[name.as_str(), "refuse"]);
    // Let the waiter reach its wait: the set's waiter count says when.
    // SAFETY: GETNCNT takes no fourth argument.
    ipc_testkit::wait_until(ipc_testkit::test_deadline(), || unsafe {
        libc::semctl(sem.id(), 0, libc::GETNCNT) >= 1
    })
    .expect("the waiter never waited");
    sem.unlink().unwrap();
    assert_eq!(waiter.recv().unwrap(), "gone");
    waiter.wait_success().unwrap();
    let err = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open_undo(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    drop(sem);

    let sem = SemaphoreOptions::new().create_undo(&name).unwrap();
    drop(sem);
    let err = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open_undo(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn permissions_are_enforced_for_other_users() {
    let guard = LeakGuard::new();
    let private = guard.name("undo-private");
    let _sem = SemaphoreOptions::new().create_undo(&private).unwrap();
    let lines = run_unprivileged("undo-wait", &[private.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);

    let shared = guard.name("undo-shared");
    let sem = SemaphoreOptions::new()
        .initial(1)
        .permissions(Permissions::owner_only().others(Access::ReadWrite))
        .create_undo(&shared)
        .unwrap();
    let lines = run_unprivileged("undo-wait", &[shared.as_str(), "refuse"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);
    let lines = run_unprivileged("undo-wait", &[shared.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["ok"]);
    // The unprivileged process exited holding the permit: it came back.
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn bad_options_and_foreign_sets_are_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-bad");
    let err = SemaphoreOptions::new()
        .binary()
        .create_undo(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = SemaphoreOptions::new()
        .initial(SEMVMX + 1)
        .create_undo(&name)
        .unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");

    let sem = SemaphoreOptions::new().create_undo(&name).unwrap();
    let err = SemaphoreOptions::new().create_undo(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    // A set whose tag says another name (a key collision), then one never initialised.
    // SAFETY: GETVAL takes no fourth argument.
    let tag = unsafe { libc::semctl(sem.id(), 1, libc::GETVAL) };
    // SAFETY: SETVAL with an int argument, on a set this test created.
    let forged = unsafe { libc::semctl(sem.id(), 1, libc::SETVAL, tag % 32767 + 1) };
    assert_eq!(forged, 0);
    let err = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open_undo(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    // SAFETY: as above.
    let cleared = unsafe { libc::semctl(sem.id(), 1, libc::SETVAL, 0) };
    assert_eq!(cleared, 0);
    let err = SemaphoreOptions::new()
        .timeout(Duration::from_millis(20))
        .open_undo(&name)
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn the_value_and_the_undo_balance_are_bounded() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .create_undo(&guard.name("undo-balance"))
        .unwrap();
    let mut posted = 0u32;
    let err = loop {
        match sem.post() {
            Ok(()) => posted += 1,
            Err(err) => break err,
        }
        assert!(posted <= SEMVMX, "no bound was hit");
    };
    assert!(err.is_limit_exceeded(), "{err}");
    assert_eq!(posted, SEMVMX);
    assert_eq!(sem.value().unwrap(), SEMVMX);
}

/// The stale set with System V id `id`, if the sweep finds it.
fn find_stale(id: i32) -> Option<StaleUndoSet> {
    stale_undo_sets()
        .unwrap()
        .into_iter()
        .find(|set| set.id() == id)
}

/// Starts a peer that creates the undo semaphore `name` (persisting it if asked), kills
/// it, and returns the set's id and the dead creator's pid.
fn crashed_creator(name: &IpcName, persist: bool) -> (i32, u32) {
    let mut creator = Peer::spawn(
        "undo-create",
        &[name.as_str(), if persist { "persist" } else { "keep" }],
    );
    let pid = creator.pid();
    creator.kill().unwrap();
    (SemaphoreOptions::new().open_undo(name).unwrap().id(), pid)
}

#[test]
fn a_set_whose_creator_crashed_is_found_and_removed() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-stale");
    let (id, creator) = crashed_creator(&name, false);
    let found = find_stale(id).expect("the crashed creator's set is stale");
    assert_eq!(found.creator_pid(), creator);
    // Only this set: a sweep of all would race with other tests' crashed creators.
    found.unlink().unwrap();
    assert_eq!(find_stale(id), None);
    let err = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open_undo(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn persisted_used_and_live_sets_are_not_stale() {
    let guard = LeakGuard::new();
    // Persisted by its creator before the crash: kept on purpose.
    let persisted = guard.name("undo-persisted");
    let (id, _) = crashed_creator(&persisted, true);
    assert_eq!(find_stale(id), None);
    let mut handle = SemaphoreOptions::new().open_undo(&persisted).unwrap();
    handle.unlink().unwrap();

    // The creator crashed, but a survivor (this process) still posts to it.
    let used = guard.name("undo-used");
    let (id, _) = crashed_creator(&used, false);
    let mut handle = SemaphoreOptions::new().open_undo(&used).unwrap();
    handle.post().unwrap();
    assert_eq!(find_stale(id), None);
    handle.unlink().unwrap();

    // The creator is alive.
    let live = SemaphoreOptions::new()
        .create_undo(&guard.name("undo-live"))
        .unwrap();
    assert_eq!(find_stale(live.id()), None);
}

/// Defect: the sweep checked only the creator and the last process to change the value,
/// so a live process blocked in a wait on a crashed creator's set lost it ("the semaphore
/// set was removed").
#[test]
fn a_set_with_a_live_waiter_is_not_stale() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-waited");
    let (id, _) = crashed_creator(&name, false);
    let mut waiter = Peer::spawn("undo-wait", &[name.as_str(), "refuse"]);
    // SAFETY: GETNCNT takes no fourth argument.
    ipc_testkit::wait_until(ipc_testkit::test_deadline(), || unsafe {
        libc::semctl(id, 0, libc::GETNCNT) >= 1
    })
    .expect("the waiter never waited");
    // The creator and the last changer are dead, but the waiter lives.
    assert_eq!(find_stale(id), None);
    let mut handle = SemaphoreOptions::new().open_undo(&name).unwrap();
    handle.post().unwrap();
    assert_eq!(waiter.recv().unwrap(), "ok");
    waiter.wait_success().unwrap();
    handle.unlink().unwrap();
}

#[test]
fn an_open_waits_for_a_set_its_creator_has_not_made_yet() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-late");
    ipc_testkit::assert_open_waits_then_not_found("SemaphoreOptions::timeout", |t| {
        SemaphoreOptions::new().timeout(t).open_undo(&name)
    });

    let mut opener = Peer::spawn("undo-wait", &[name.as_str(), "refuse"]);
    let _sem = SemaphoreOptions::new()
        .initial(1)
        .create_undo(&name)
        .unwrap();
    assert_eq!(opener.recv().unwrap(), "ok");
    opener.wait_success().unwrap();
}

#[test]
fn a_set_records_its_creator_and_whether_it_was_persisted_for_tools() {
    let guard = LeakGuard::new();
    let name = guard.name("undo-record");
    let mut set = SemaphoreOptions::new().create_undo(&name).unwrap();
    let record = ipc_sem::undo_set_record(set.id()).expect("a set of ours");
    assert_eq!(record.creator_pid(), std::process::id());
    assert!(!record.persisted());
    set.persist();
    assert!(ipc_sem::undo_set_record(set.id()).unwrap().persisted());
    set.unlink().unwrap();
    assert_eq!(ipc_sem::undo_set_record(set.id()), None);
}
