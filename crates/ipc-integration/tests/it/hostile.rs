//! A hostile peer against every mechanism: malformed frames, huge length prefixes, extra
//! descriptors, scribbled control blocks, shrunk memfds, squatted names and paths, signal
//! floods. Every case must end in a typed error on the victim's side (or no effect at
//! all), never a panic, an abort or SIGBUS.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ipc_core::{Access, FramedReader, IpcName, MessageReceiver, Permissions};
use ipc_integration::mechanism::MAX_MESSAGE;
use ipc_integration::{Mechanism, Tally, encode};
use ipc_mq::QueueOptions;
use ipc_pipe::Fifo;
use ipc_sem::SemaphoreOptions;
use ipc_shm::{ChannelOptions, ReceiveOptions, ShmOptions};
use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
use ipc_testkit::{
    LeakGuard, Peer, PeerContext, PeerResult, Rng, SignalStorm, run_unprivileged, test_timeout,
};

/// The hostile peer. Arg 0 is the attack, arg 1 its target (a path or a name).
pub fn hostile_role(ctx: &mut PeerContext) -> PeerResult {
    let target = ctx.arg(1)?.to_owned();
    match ctx.arg(0)? {
        // A FIFO reader is sent garbage, then a length prefix of 4 GiB.
        "garbage-frames" => {
            let mut writer = Fifo::open(&target)?.open_writer_timeout(test_timeout())?;
            ctx.ready()?;
            writer.write_all(&[0xff, 0xff, 0xff, 0xf0])?;
            writer.write_all(&[0xa5; 64])?;
        }
        // A seqpacket receiver that allows one descriptor gets three, then 200 (more than
        // its control buffer holds, so the kernel truncates it).
        "extra-fds" => {
            let socket = Seqpacket::connect_timeout(&UnixAddr::path(&target), test_timeout())?;
            let file = std::fs::File::open("/dev/null")?;
            ctx.ready()?;
            socket.send_with_fds(b"three", &[file.as_fd(), file.as_fd(), file.as_fd()])?;
            socket.send_with_fds(b"many", &vec![file.as_fd(); 200])?;
            ctx.recv()?;
        }
        // Random and chosen words over a robust mutex (offset 0) and a semaphore (offset
        // 512) in segment arg 1, while the victim uses them.
        "scribble-sync" => {
            let segment = ShmOptions::new().open(&IpcName::new(target.as_str())?)?;
            let dead =
                std::thread::spawn(|| ipc_core::internal::ThreadIdentity::current().to_bits())
                    .join()
                    .map_err(|_| "the helper thread panicked")?;
            ctx.ready()?;
            let special = [0, u64::MAX, 1 << 63, 1 << 62, dead, dead | 1 << 62, 1];
            let mut rng = Rng::new(0x5c41_bb1e);
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                let base = rng.pick(&[0, 512]);
                let offset = base + usize::try_from(rng.below(6)).unwrap_or(0) * 8;
                let value = if rng.below(3) == 0 {
                    rng.next_u64()
                } else {
                    rng.pick(&special)
                };
                segment
                    .atomic_u64(offset)?
                    .store(value, std::sync::atomic::Ordering::SeqCst);
                std::thread::yield_now();
            }
        }
        // Random words over a channel's control block and ring while its ends run.
        "scribble" => {
            let segment = ShmOptions::new().open(&IpcName::new(target.as_str())?)?;
            ctx.ready()?;
            let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                let offset = usize::try_from(rng.below(segment.len() as u64 - 8)).unwrap_or(0);
                segment.write::<u64>(offset & !7, &rng.next_u64())?;
            }
        }
        // An unsealed memfd is handed over, then shrunk to nothing.
        "shrink" => {
            let socket = Seqpacket::connect_timeout(&UnixAddr::path(&target), test_timeout())?;
            let fd =
                nix::sys::memfd::memfd_create(c"hostile", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
            nix::unistd::ftruncate(&fd, 4096)?;
            ctx.ready()?;
            socket.send_with_fds(b"memfd", &[fd.as_fd()])?;
            ctx.recv()?;
            nix::unistd::ftruncate(&fd, 0)?;
            ctx.recv()?;
        }
        // As another user: takes the names and the path first, open to everyone.
        "squat" => {
            ctx.ready()?;
            let everyone = Permissions::owner_only().others(Access::ReadWrite);
            let name = IpcName::new(target.as_str())?;
            let mut segment = ShmOptions::new()
                .size(4096)
                .permissions(everyone)
                .create(&name)?;
            segment.persist();
            let mut queue = QueueOptions::new().permissions(everyone).create(&name)?;
            queue.persist();
            let mut sem = SemaphoreOptions::new()
                .permissions(everyone)
                .create(&name)?;
            sem.persist();
            ctx.send("squatted")?;
        }
        // Thousands of signals a second at process arg 1 for arg 2 milliseconds.
        "flood" => {
            let pid: u32 = target.parse()?;
            let millis: u64 = ctx.arg(2)?.parse()?;
            ctx.ready()?;
            let until = Instant::now() + Duration::from_millis(millis);
            let mut sent = 0u64;
            while Instant::now() < until {
                ipc_signal::send(pid, ipc_signal::Signal::WINCH)?;
                sent += 1;
                ipc_testkit::pause(Duration::from_micros(100));
            }
            ctx.send(&sent.to_string())?;
        }
        other => return Err(format!("unknown attack {other}").into()),
    }
    Ok(())
}

#[test]
fn garbage_and_a_huge_length_prefix_end_the_stream_with_an_error() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("victim")).unwrap();
    let reader = fifo.open_reader().unwrap();
    let mut framed = FramedReader::new(reader).with_max_message_size(MAX_MESSAGE);
    let mut peer = Peer::spawn(
        "hostile",
        &["garbage-frames", fifo.path().to_str().unwrap()],
    );
    let mut buf = vec![0u8; MAX_MESSAGE];
    let err = framed.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    assert!(err.is_limit_exceeded() || err.is_corrupted(), "{err}");
    peer.wait_success().unwrap();
}

#[test]
fn extra_descriptors_are_an_error_and_none_is_kept() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("victim.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let mut peer = Peer::spawn("hostile", &["extra-fds", path.to_str().unwrap()]);
    let (socket, _) = listener.accept_timeout(test_timeout()).unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..2 {
        let err = socket.recv_with_fds(&mut buf, 1).unwrap_err();
        assert!(err.is_limit_exceeded(), "{err}");
    }
    peer.send("done").unwrap();
    peer.wait_success().unwrap();
    // The leak guard (one process per test) checks that no received descriptor stayed open.
}

#[test]
fn a_scribbled_channel_gives_typed_errors_only() {
    let guard = LeakGuard::new();
    let name = guard.name("scribbled");
    let options = ChannelOptions::new()
        .capacity(64 * 1024)
        .max_message_size(MAX_MESSAGE)
        .timeout(Duration::from_millis(5));
    let mut producer = options.create_producer(&name).unwrap();
    let mut consumer = options.open_consumer(&name).unwrap();
    let mut peer = Peer::spawn("hostile", &["scribble", name.as_str()]);
    let mut msg = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (mut seq, mut errors) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        encode(0, seq, MAX_MESSAGE, &mut msg);
        for result in [
            producer.send_timeout(&msg, Duration::from_millis(1)),
            consumer
                .recv_timeout(&mut buf, Duration::from_millis(1))
                .map(drop),
        ] {
            match result {
                Ok(()) => {}
                Err(e) => {
                    assert!(
                        e.is_corrupted()
                            || e.is_timeout()
                            || e.is_peer_gone()
                            || e.is_buffer_too_small(),
                        "{e}"
                    );
                    errors += 1;
                }
            }
        }
        seq += 1;
    }
    peer.wait_success().unwrap();
    // Detection of a write that lands between a store and the peer's load is chance (see
    // ipc-shm's scribbler test); what is certain is that only typed errors came.
    eprintln!("{errors} typed errors, {seq} rounds");
}

/// A peer writes anything into a robust mutex and a semaphore while this process locks,
/// repairs, gives up, posts and waits: only typed errors, no crash, no abort, no wait past
/// its deadline.
#[test]
fn a_scribbled_mutex_and_semaphore_give_typed_errors_only() {
    let guard = LeakGuard::new();
    let name = guard.name("scribbled-sync");
    let segment = ShmOptions::new().size(4096).create(&name).unwrap();
    let mutex: ipc_sem::RobustMutex<_, u64> = ipc_sem::MutexOptions::new()
        .init_in(&segment, 0, 0)
        .unwrap();
    let sem = SemaphoreOptions::new()
        .max(8)
        .init_in(&segment, 512)
        .unwrap();
    let mut peer = Peer::spawn("hostile", &["scribble-sync", name.as_str()]);
    let typed = |e: &ipc_core::Error| {
        e.is_timeout()
            || e.is_would_block()
            || e.is_corrupted()
            || e.is_owner_died()
            || e.is_limit_exceeded()
            || matches!(
                e.raw_os_error(),
                Some(libc::ENOTRECOVERABLE | libc::EDEADLK | libc::EOVERFLOW)
            )
    };
    let (mut rounds, mut errors) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        rounds += 1;
        match mutex.lock_timeout(Duration::from_millis(1)) {
            Ok(ipc_sem::Locked::Clean(g)) => g.set(rounds),
            Ok(ipc_sem::Locked::OwnerDied(r)) if rounds % 2 == 0 => {
                if let Err(e) = r.mark_consistent() {
                    assert!(typed(&e), "{e}");
                }
            }
            Ok(ipc_sem::Locked::OwnerDied(r)) => drop(r),
            Err(e) => {
                assert!(typed(&e), "{e}");
                errors += 1;
            }
        }
        for result in [sem.post(), sem.wait_timeout(Duration::from_millis(1))] {
            if let Err(e) = result {
                assert!(typed(&e), "{e}");
                errors += 1;
            }
        }
    }
    peer.wait_success().unwrap();
    eprintln!("{errors} typed errors, {rounds} rounds");
}

#[test]
fn a_memfd_that_can_shrink_is_refused_and_its_shrinking_harms_nothing() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("victim.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let mut peer = Peer::spawn("hostile", &["shrink", path.to_str().unwrap()]);
    let (socket, _) = listener.accept_timeout(test_timeout()).unwrap();
    let mut buf = [0u8; 16];
    let (_, mut fds) = socket.recv_with_fds(&mut buf, 1).unwrap();
    let err = ReceiveOptions::new().map(fds.pop().unwrap()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidInput
        ),
        "{err}"
    );
    peer.send("shrink").unwrap();
    peer.send("done").unwrap();
    peer.wait_success().unwrap();
}

#[test]
fn squatted_names_and_paths_are_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("squatted");
    assert_eq!(
        run_unprivileged("hostile", &["squat", name.as_str()]).unwrap(),
        ["squatted"]
    );
    // Creating over them fails; opening them refuses another owner.
    let err = ShmOptions::new().size(4096).create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let err = ShmOptions::new().open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let err = QueueOptions::new()
        .open(&name, ipc_mq::Direction::Both)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let err = SemaphoreOptions::new().open(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    // Clean up what the squatter left (its creator is gone).
    let _ = ShmOptions::new()
        .size(4096)
        .creation_mode(ipc_core::CreationMode::PurgeAndCreate)
        .create(&name);
    let _ = QueueOptions::new()
        .creation_mode(ipc_core::CreationMode::PurgeAndCreate)
        .create(&name);
    let _ = SemaphoreOptions::new()
        .creation_mode(ipc_core::CreationMode::PurgeAndCreate)
        .create(&name);

    // A FIFO path taken by a symbolic link, or by a plain file, is refused.
    let link = guard.dir().join("link");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    assert!(Fifo::open(&link).is_err());
    let file = guard.dir().join("file");
    std::fs::write(&file, b"not a fifo").unwrap();
    assert!(Fifo::open(&file).is_err());
    assert!(Fifo::create(&file).is_err());
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&file).unwrap();
}

/// A flood of signals from another process while every mechanism carries the workload
/// (the handler, the storm's, is installed without `SA_RESTART`): zero failures.
#[test]
fn a_signal_flood_during_transfers_causes_no_failure() {
    let guard = LeakGuard::new();
    let storm = SignalStorm::start();
    let mut flood = Peer::spawn(
        "hostile",
        &["flood", &std::process::id().to_string(), "1500"],
    );
    let received_before = SignalStorm::received();
    for mechanism in Mechanism::ALL {
        let mut listening = mechanism
            .listen(guard.dir(), &guard.name(mechanism.name()))
            .unwrap();
        let mut sender = Peer::spawn(
            "send-workload",
            &[mechanism.name(), listening.address(), "1", "2000"],
        );
        let mut receiver = listening.accept(test_timeout()).unwrap();
        let mut tally = Tally::default();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for _ in 0..2000 {
            let n = receiver.recv_timeout(&mut buf, test_timeout()).unwrap();
            tally.record(&buf[..n]).unwrap();
        }
        sender.wait_success().unwrap();
    }
    let sent: u64 = flood.recv().unwrap().parse().unwrap();
    flood.wait_success().unwrap();
    drop(storm);
    assert!(sent > 1000, "the flood was a trickle ({sent})");
    assert!(
        SignalStorm::received() > received_before,
        "no signal arrived"
    );
}
