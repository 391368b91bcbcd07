// The foreign-semaphore test makes one as a C program does, with a raw `sem_open`.
#![allow(unsafe_code)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ipc_core::{Access, CreationMode, IpcName, Permissions};
use ipc_sem::SemaphoreOptions;
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, SignalStorm, run_unprivileged};

/// Opens semaphore arg 0, says it is ready, waits at most arg 1 milliseconds for a
/// permit, and reports "ok" or the error kind.
pub fn wait_role(ctx: &mut PeerContext) -> PeerResult {
    let sem = SemaphoreOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let timeout = Duration::from_millis(ctx.arg(1)?.parse()?);
    ctx.ready()?;
    match sem.wait_timeout(timeout) {
        Ok(()) => ctx.send("ok")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

/// Opens semaphore arg 0, takes a permit and holds it until killed.
pub fn hold_role(ctx: &mut PeerContext) -> PeerResult {
    let sem = SemaphoreOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let _permit = sem.acquire_timeout(ipc_testkit::test_timeout())?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Opens semaphore arg 0 without repeating its bound (the creator's is inherited), posts
/// arg 1 times and reports how many posts were accepted.
pub fn poster_role(ctx: &mut PeerContext) -> PeerResult {
    let sem = SemaphoreOptions::new().open(&IpcName::new(ctx.arg(0)?)?)?;
    let count: u32 = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    let mut accepted = 0u32;
    for _ in 0..count {
        match sem.post() {
            Ok(()) => accepted += 1,
            Err(err) if err.is_limit_exceeded() => {}
            Err(err) => return Err(err.into()),
        }
    }
    ctx.send(&accepted.to_string())?;
    Ok(())
}

/// Opens semaphore arg 0 (accepting another owner if arg 1 is "accept") and reports "ok"
/// after a post and a wait, or the error kind.
pub fn open_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let accept = ctx.arg(1)? == "accept";
    ctx.ready()?;
    match SemaphoreOptions::new()
        .accept_other_owner(accept)
        .open(&name)
    {
        Ok(sem) => {
            sem.post()?;
            sem.wait_timeout(ipc_testkit::test_timeout())?;
            ctx.send("ok")?;
        }
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

#[test]
fn a_post_wakes_a_waiter_in_another_process() {
    let guard = LeakGuard::new();
    let name = guard.name("wake");
    let sem = SemaphoreOptions::new().create(&name).unwrap();
    let mut peer = Peer::spawn("named-wait", &[name.as_str(), "20000"]);
    sem.post().unwrap();
    assert_eq!(peer.recv().unwrap(), "ok");
    peer.wait_success().unwrap();
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn try_wait_and_timeouts() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .initial(1)
        .create(&guard.name("timeouts"))
        .unwrap();
    sem.try_wait().unwrap();
    assert!(sem.try_wait().unwrap_err().is_would_block());
    let start = Instant::now();
    let err = sem.wait_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(err.to_string().contains(sem.name().as_str()), "{err}");
}

#[test]
fn permits_return_on_drop_unless_forgotten() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .initial(2)
        .create(&guard.name("permits"))
        .unwrap();
    {
        let _a = sem.acquire().unwrap();
        let _b = sem.try_acquire().unwrap();
        assert_eq!(sem.value().unwrap(), 0);
        assert!(sem.try_acquire().unwrap_err().is_would_block());
        assert!(
            sem.acquire_timeout(Duration::from_millis(10))
                .unwrap_err()
                .is_timeout()
        );
    }
    assert_eq!(sem.value().unwrap(), 2);
    sem.acquire().unwrap().forget();
    assert_eq!(sem.value().unwrap(), 1);
    sem.acquire().unwrap().release().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn a_binary_semaphore_never_exceeds_one_even_with_racing_posters() {
    let guard = LeakGuard::new();
    let name = guard.name("binary");
    // A binary semaphore starts free, usable as a lock at once.
    let sem = SemaphoreOptions::new().binary().create(&name).unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    let err = sem.post().unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
    drop(sem.acquire_timeout(ipc_testkit::test_timeout()).unwrap());
    assert_eq!(sem.value().unwrap(), 1);
    sem.wait().unwrap();
    // As an event not yet signalled, it starts at 0 when asked.
    let event = SemaphoreOptions::new()
        .binary()
        .initial(0)
        .create(&guard.name("event"))
        .unwrap();
    assert_eq!(event.value().unwrap(), 0);

    // Two processes post as fast as they can while this one takes permits: every accepted
    // post is taken exactly once, and the value never exceeds 1.
    let mut posters: Vec<Peer> = (0..2)
        .map(|_| Peer::spawn("named-poster", &[name.as_str(), "20000"]))
        .collect();
    let mut taken = 0u64;
    let deadline = ipc_testkit::test_deadline();
    while posters
        .iter()
        .any(|p| ipc_core::internal::process_is_alive(p.pid()))
    {
        assert!(sem.value().unwrap() <= 1);
        if sem.try_wait().is_ok() {
            taken += 1;
        }
        assert!(!deadline.has_expired(), "the posters did not finish");
    }
    let done: Vec<u64> = posters
        .iter_mut()
        .map(|p| p.recv().unwrap().parse().unwrap())
        .collect();
    taken += u64::from(sem.value().unwrap());
    let accepted: u64 = done.iter().sum();
    assert_eq!(taken, accepted);
    assert!(accepted > 0);
}

#[test]
fn the_creator_removes_the_name_unless_persisted() {
    let guard = LeakGuard::new();
    let name = guard.name("owner");
    let sem = SemaphoreOptions::new().create(&name).unwrap();
    let path = sem.path().to_owned();
    let opener = SemaphoreOptions::new().open(&name).unwrap();
    drop(opener);
    assert!(path.exists());
    drop(sem);
    assert!(!path.exists());
    let err = SemaphoreOptions::new()
        .timeout(Duration::ZERO)
        .open(&name)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");

    let mut kept = SemaphoreOptions::new().create(&name).unwrap();
    kept.persist();
    drop(kept);
    let mut again = SemaphoreOptions::new().open(&name).unwrap();
    again.unlink().unwrap();
    assert!(!path.exists());
}

#[test]
fn creation_modes() {
    let guard = LeakGuard::new();
    let name = guard.name("modes");
    let first = SemaphoreOptions::new().initial(3).create(&name).unwrap();
    let err = SemaphoreOptions::new().create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let second = SemaphoreOptions::new()
        .creation_mode(CreationMode::OpenOrCreate)
        .create(&name)
        .unwrap();
    assert_eq!(second.value().unwrap(), 3);
    drop(second);
    let mut purged = SemaphoreOptions::new()
        .creation_mode(CreationMode::PurgeAndCreate)
        .initial(1)
        .create(&name)
        .unwrap();
    assert_eq!(purged.value().unwrap(), 1);
    // The first creator's name now leads to the successor: its drop leaves it alone.
    drop(first);
    assert!(purged.path().exists());
    purged.unlink().unwrap();
}

#[test]
fn bad_values_are_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("values");
    let err = SemaphoreOptions::new()
        .binary()
        .initial(2)
        .create(&name)
        .unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
    let err = SemaphoreOptions::new().max(0).create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = SemaphoreOptions::new()
        .initial(ipc_sem::SEM_VALUE_MAX + 1)
        .create(&name)
        .unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
}

#[test]
fn permissions_are_exact_and_enforced_for_other_users() {
    let guard = LeakGuard::new();
    let private = guard.name("private");
    let sem = SemaphoreOptions::new().create(&private).unwrap();
    assert_eq!(
        std::fs::metadata(sem.path()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let lines = run_unprivileged("named-open", &[private.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);

    let shared = guard.name("shared");
    let sem = SemaphoreOptions::new()
        .permissions(Permissions::owner_only().others(Access::ReadWrite))
        .create(&shared)
        .unwrap();
    assert_eq!(
        std::fs::metadata(sem.path()).unwrap().permissions().mode() & 0o777,
        0o606
    );
    // Another user's semaphore is refused unless accepted: its owner decides who posts.
    let lines = run_unprivileged("named-open", &[shared.as_str(), "refuse"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);
    let lines = run_unprivileged("named-open", &[shared.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["ok"]);
}

/// POSIX semaphores do not return a dead holder's permit: the documentation says so, and
/// this proves it.
#[test]
fn a_killed_holder_takes_its_permit_with_it() {
    let guard = LeakGuard::new();
    let name = guard.name("lost");
    let sem = SemaphoreOptions::new().initial(1).create(&name).unwrap();
    let mut holder = Peer::spawn("named-hold", &[name.as_str()]);
    assert_eq!(sem.value().unwrap(), 0);
    holder.kill().unwrap();
    assert!(
        sem.wait_timeout(Duration::from_millis(100))
            .unwrap_err()
            .is_timeout()
    );
    assert_eq!(sem.value().unwrap(), 0);
}

#[test]
fn signals_neither_end_a_wait_early_nor_lose_a_permit() {
    let guard = LeakGuard::new();
    let sem = SemaphoreOptions::new()
        .create(&guard.name("storm"))
        .unwrap();
    let storm = SignalStorm::start();
    let start = Instant::now();
    let err = sem.wait_timeout(Duration::from_millis(200)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    let received = SignalStorm::received();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            ipc_testkit::wait_until(ipc_testkit::test_deadline(), || {
                SignalStorm::received() >= received + 20
            })
            .expect("the storm's signals never arrived");
            sem.post().unwrap();
        });
        sem.wait().unwrap();
    });
    drop(storm);
    assert!(SignalStorm::received() > received);
}

#[test]
fn an_open_waits_for_a_semaphore_its_creator_has_not_made_yet() {
    let guard = LeakGuard::new();
    let name = guard.name("late");
    ipc_testkit::assert_open_waits_then_not_found("SemaphoreOptions::timeout", |t| {
        SemaphoreOptions::new().timeout(t).open(&name)
    });

    let mut opener = Peer::spawn("named-open", &[name.as_str(), "refuse"]);
    let _sem = SemaphoreOptions::new().create(&name).unwrap();
    assert_eq!(opener.recv().unwrap(), "ok");
    opener.wait_success().unwrap();
}

#[test]
fn openers_get_the_creators_bound_and_may_not_contradict_it() {
    let guard = LeakGuard::new();
    let name = guard.name("bound");
    let _sem = SemaphoreOptions::new()
        .max(3)
        .initial(3)
        .create(&name)
        .unwrap();
    let opener = SemaphoreOptions::new().open(&name).unwrap();
    assert_eq!(opener.max(), Some(3));
    let err = opener.post().unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
    // Repeating the bound is fine; another one, or an initial value, is refused.
    assert_eq!(
        SemaphoreOptions::new().max(3).open(&name).unwrap().max(),
        Some(3)
    );
    let err = SemaphoreOptions::new().max(5).open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("SemaphoreOptions::max"), "{err}");
    let err = SemaphoreOptions::new().initial(1).open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("SemaphoreOptions::initial"),
        "{err}"
    );
    // An unbounded semaphore records that too: a bounded open contradicts it.
    let free = guard.name("unbounded");
    let _free = SemaphoreOptions::new().create(&free).unwrap();
    assert_eq!(SemaphoreOptions::new().open(&free).unwrap().max(), None);
    assert!(SemaphoreOptions::new().binary().open(&free).is_err());
}

#[test]
fn a_semaphore_another_program_made_takes_the_openers_bound() {
    let guard = LeakGuard::new();
    let name = guard.name("foreign");
    // As a C program makes it: sem_open(O_CREAT | O_EXCL), no record of a bound.
    // SAFETY: the name is NUL-terminated; mode and value are passed as sem_open reads them.
    let foreign = unsafe {
        libc::sem_open(
            name.as_cstr().as_ptr(),
            libc::O_CREAT | libc::O_EXCL,
            0o600 as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    assert_ne!(foreign, libc::SEM_FAILED);
    let sem = SemaphoreOptions::new().binary().open(&name).unwrap();
    assert_eq!(sem.max(), Some(1));
    sem.post().unwrap();
    assert!(sem.post().unwrap_err().is_limit_exceeded());
    assert_eq!(SemaphoreOptions::new().open(&name).unwrap().max(), None);
    // SAFETY: `foreign` came from sem_open and is closed once; the name is NUL-terminated.
    unsafe {
        libc::sem_close(foreign);
        libc::sem_unlink(name.as_cstr().as_ptr());
    }
}

/// Creates a semaphore under a name of its own (tagged arg 0, naming this process),
/// reports the name and waits to be killed, leaving it behind.
pub fn left_behind_role(ctx: &mut PeerContext) -> PeerResult {
    let name = ipc_testkit::unique_name(ctx.arg(0)?);
    let _sem = SemaphoreOptions::new().create(&name)?;
    ctx.ready_with(name.as_str())?;
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_creators_semaphore_is_stale_and_a_live_ones_is_not() {
    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("named-left-behind", &["sem-stale"]);
    let left = IpcName::new(peer.ready_payload()).unwrap();
    guard.track(&left);
    let live = SemaphoreOptions::new()
        .create(&guard.name("sem-stale"))
        .unwrap();
    assert!(
        !ipc_sem::stale_named_semaphores("ipcrs-test-sem-stale")
            .unwrap()
            .contains(&left)
    );
    peer.kill().unwrap();
    let stale = ipc_sem::stale_named_semaphores("ipcrs-test-sem-stale").unwrap();
    assert_eq!(
        stale,
        vec![left.clone()],
        "the live one ({}) is kept",
        live.name()
    );
    assert_eq!(
        ipc_sem::remove_stale_named_semaphores("ipcrs-test-sem-stale").unwrap(),
        vec![left.clone()]
    );
    assert!(!std::path::Path::new(&format!("/dev/shm/sem.{}", left.file_name())).exists());
}
