// The limit tests lower RLIMIT_MSGQUEUE in a peer with a raw `setrlimit`.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use ipc_core::{
    Access, CreationMode, Deadline, IpcName, MessageReceiver, MessageSender, Permissions,
};
use ipc_mq::{Direction, MAX_PRIORITY, MessageQueue, QueueOptions, SystemLimits};
use ipc_testkit::{
    LeakGuard, Peer, PeerContext, PeerResult, SignalStorm, run_unprivileged, test_timeout,
};

fn small() -> QueueOptions {
    QueueOptions::new().capacity(4).max_message_size(128)
}

fn open(name: &IpcName, direction: Direction) -> MessageQueue {
    QueueOptions::new().open(name, direction).unwrap()
}

/// Creates queue arg 0, sends "left behind" and persists nothing: says ready, then hangs
/// until killed, so that the name stays after a crash.
pub fn create_and_die_role(ctx: &mut PeerContext) -> PeerResult {
    let queue = small().create(&IpcName::new(ctx.arg(0)?)?)?;
    queue.send_priority_timeout(b"left behind", 3, ipc_testkit::test_timeout())?;
    ctx.ready()?;
    loop {
        std::thread::park();
    }
}

/// Opens queue arg 0 to receive, takes arg 1 messages, reports their first bytes, and
/// hangs until killed.
pub fn consume_role(ctx: &mut PeerContext) -> PeerResult {
    let queue = QueueOptions::new().open(&IpcName::new(ctx.arg(0)?)?, Direction::Receive)?;
    let count: usize = ctx.arg(1)?.parse()?;
    let mut taken = Vec::new();
    for _ in 0..count {
        taken.push(queue.recv_message()?.data[0].to_string());
    }
    ctx.ready_with(&taken.join(","))?;
    loop {
        std::thread::park();
    }
}

/// Opens queue arg 0 to send, says ready, waits for a line, then sends it.
pub fn send_role(ctx: &mut PeerContext) -> PeerResult {
    let queue = QueueOptions::new().open(&IpcName::new(ctx.arg(0)?)?, Direction::Send)?;
    ctx.ready()?;
    let line = ctx.recv()?;
    queue.send_priority_timeout(line.as_bytes(), 0, ipc_testkit::test_timeout())?;
    Ok(())
}

/// Opens queue arg 0 (accepting another owner if arg 1 is "accept"), sends and receives a
/// message, and reports "ok" or the error kind.
pub fn open_role(ctx: &mut PeerContext) -> PeerResult {
    let name = IpcName::new(ctx.arg(0)?)?;
    let accept = ctx.arg(1)? == "accept";
    ctx.ready()?;
    let result = QueueOptions::new()
        .accept_other_owner(accept)
        .open(&name, Direction::Both)
        .and_then(|queue| {
            queue.send_priority_timeout(b"hi", 0, ipc_testkit::test_timeout())?;
            queue.recv_message_timeout(ipc_testkit::test_timeout())
        });
    match result {
        Ok(_) => ctx.send("ok")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

/// Under a umask that takes the owner's write bit and everything else, creates queue arg 0
/// (owner read-write, group read) and reports its mode.
pub fn umask_role(ctx: &mut PeerContext) -> PeerResult {
    // The umask is process-wide, which is why this runs in a peer of its own.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o277));
    let name = IpcName::new(ctx.arg(0)?)?;
    let queue = small()
        .permissions(Permissions::owner_only().group(Access::Read))
        .create(&name)?;
    let mode = nix::sys::stat::fstat(&queue)?.st_mode & 0o777;
    ctx.ready_with(&format!("{mode:o}"))?;
    Ok(())
}

/// Tries to register for queue arg 0's notification and reports the outcome.
pub fn notify_role(ctx: &mut PeerContext) -> PeerResult {
    let queue = QueueOptions::new().open(&IpcName::new(ctx.arg(0)?)?, Direction::Receive)?;
    ctx.ready()?;
    match queue.notify() {
        Ok(_) => ctx.send("registered")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

/// Lowers RLIMIT_MSGQUEUE to arg 1 bytes, then creates queues arg 0-a, arg 0-b of 10
/// messages of 8000 bytes and reports each outcome ("ok" or the limit's name or the error).
pub fn rlimit_role(ctx: &mut PeerContext) -> PeerResult {
    let bytes: u64 = ctx.arg(1)?.parse()?;
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: a valid rlimit for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &limit) }, 0);
    ctx.ready()?;
    let mut queues = Vec::new();
    for suffix in ["a", "b"] {
        let name = IpcName::new(format!("{}-{suffix}", ctx.arg(0)?))?;
        match QueueOptions::new()
            .capacity(10)
            .max_message_size(8000)
            .create(&name)
        {
            Ok(queue) => {
                queues.push(queue);
                ctx.send("ok")?;
            }
            Err(err) => match err.limit() {
                Some(limit) => ctx.send(&format!("limit {}", limit.name()))?,
                None => ctx.send(&format!("{:?}: {err}", err.kind()))?,
            },
        }
    }
    Ok(())
}

#[test]
fn messages_arrive_by_priority_then_in_order() {
    let guard = LeakGuard::new();
    let queue = QueueOptions::new()
        .capacity(8)
        .max_message_size(64)
        .create(&guard.name("prio"))
        .unwrap();
    for (msg, priority) in [("a", 1), ("b", 5), ("c", 1), ("d", MAX_PRIORITY), ("e", 0)] {
        queue.send_priority(msg.as_bytes(), priority).unwrap();
    }
    let order: Vec<(String, u32)> = (0..5)
        .map(|_| {
            let m = queue.recv_message().unwrap();
            (String::from_utf8(m.data).unwrap(), m.priority)
        })
        .collect();
    assert_eq!(
        order,
        [("d", MAX_PRIORITY), ("b", 5), ("a", 1), ("c", 1), ("e", 0)]
            .map(|(m, p)| (m.to_owned(), p))
    );
    let err = queue.send_priority(b"x", MAX_PRIORITY + 1).unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
}

#[test]
fn full_and_empty_queues_in_every_mode() {
    let guard = LeakGuard::new();
    let name = guard.name("full");
    let queue = small().create(&name).unwrap();
    assert!(queue.try_recv_message().unwrap_err().is_would_block());
    let start = Instant::now();
    assert!(
        queue
            .recv_message_timeout(Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    for i in 0..4u8 {
        queue.try_send_priority(&[i], 0).unwrap();
    }
    assert_eq!(queue.attributes().unwrap().queued, 4);
    assert!(
        queue
            .try_send_priority(b"x", 0)
            .unwrap_err()
            .is_would_block()
    );
    let start = Instant::now();
    assert!(
        queue
            .send_priority_timeout(b"x", 0, Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(30));

    // A non-blocking descriptor never waits, whatever the call.
    let nonblocking = QueueOptions::new()
        .nonblocking(true)
        .open(&name, Direction::Both)
        .unwrap();
    assert!(nonblocking.attributes().unwrap().nonblocking);
    assert!(
        nonblocking
            .send_priority(b"x", 0)
            .unwrap_err()
            .is_would_block()
    );
    for _ in 0..4 {
        nonblocking.recv_message().unwrap();
    }
    assert!(nonblocking.recv_message().unwrap_err().is_would_block());
    nonblocking.set_nonblocking(false).unwrap();
    assert!(!nonblocking.attributes().unwrap().nonblocking);
    // The other descriptor's mode is its own.
    assert!(!queue.attributes().unwrap().nonblocking);
}

#[test]
fn sizes_are_checked_and_nothing_is_lost() {
    let guard = LeakGuard::new();
    let queue = small().create(&guard.name("sizes")).unwrap();
    let err = queue.send_priority(&[0; 129], 0).unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
    assert_eq!(err.limit().unwrap().value(), 128);
    queue.send_priority(b"kept", 0).unwrap();
    let mut small_buf = [0u8; 16];
    let err = queue.recv(&mut small_buf).unwrap_err();
    assert!(err.is_buffer_too_small(), "{err}");
    assert_eq!(err.needed_len(), Some(128));
    let text = err.to_string();
    assert!(
        text.contains("message size limit, 128 bytes") && text.contains("has 16 bytes"),
        "{text}"
    );
    assert!(!text.contains("a message of 128 bytes"), "{text}");
    assert_eq!(queue.recv_message().unwrap().data, b"kept");
}

#[test]
fn an_unset_capacity_or_message_size_is_the_system_default() {
    let guard = LeakGuard::new();
    let limits = SystemLimits::read().unwrap();
    let default_capacity = limits.msg_default.min(limits.msg_max);
    let default_size = limits.msgsize_default.min(limits.msgsize_max);
    for (options, capacity, size) in [
        (QueueOptions::new(), default_capacity, default_size),
        (QueueOptions::new().capacity(3), 3, default_size),
        (
            QueueOptions::new().max_message_size(100),
            default_capacity,
            100,
        ),
    ] {
        let queue = options.create(&guard.name("defaults")).unwrap();
        let attributes = queue.attributes().unwrap();
        assert_eq!(
            (attributes.capacity, attributes.max_message_size),
            (capacity, size)
        );
        assert_eq!(queue.max_message_size(), size);
    }
}

#[test]
fn limits_are_named() {
    let guard = LeakGuard::new();
    let name = guard.name("limits");
    let limits = SystemLimits::read().unwrap();
    let err = QueueOptions::new()
        .capacity(limits.msg_max + 1)
        .create(&name)
        .unwrap_err();
    assert!(err.to_string().contains("msg_max"), "{err}");
    let err = QueueOptions::new()
        .max_message_size(limits.msgsize_max + 1)
        .create(&name)
        .unwrap_err();
    assert!(err.to_string().contains("msgsize_max"), "{err}");

    // Below the per-queue checks, the per-user byte limit: a queue too big for it, and
    // two that fit alone but not together.
    let mut peer = Peer::spawn("mq-rlimit", &[name.as_str(), "50000"]);
    assert_eq!(peer.recv().unwrap(), "limit RLIMIT_MSGQUEUE (ulimit -q)");
    assert_eq!(peer.recv().unwrap(), "limit RLIMIT_MSGQUEUE (ulimit -q)");
    peer.wait_success().unwrap();
    let mut peer = Peer::spawn("mq-rlimit", &[name.as_str(), "100000"]);
    assert_eq!(peer.recv().unwrap(), "ok");
    let second = peer.recv().unwrap();
    assert!(second.contains("RLIMIT_MSGQUEUE"), "{second}");
    peer.wait_success().unwrap();
}

#[test]
fn a_stale_queue_left_by_a_crash_is_handled_by_the_creation_modes() {
    let guard = LeakGuard::new();
    let name = guard.name("stale");
    let mut peer = Peer::spawn("mq-create-and-die", &[name.as_str()]);
    peer.kill().unwrap();
    let err = small().create(&name).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let reused = small()
        .creation_mode(CreationMode::OpenOrCreate)
        .create(&name)
        .unwrap();
    assert_eq!(reused.recv_message().unwrap().data, b"left behind");
    drop(reused);
    let fresh = small()
        .creation_mode(CreationMode::PurgeAndCreate)
        .create(&name)
        .unwrap();
    assert_eq!(fresh.attributes().unwrap().queued, 0);
}

/// Delivery is at most once: what a consumer took before it died is gone.
#[test]
fn a_consumer_killed_mid_stream_takes_its_messages_with_it() {
    let guard = LeakGuard::new();
    let name = guard.name("consumer");
    let queue = QueueOptions::new()
        .capacity(10)
        .max_message_size(16)
        .create(&name)
        .unwrap();
    for i in 0..10u8 {
        queue.send_priority(&[i], 0).unwrap();
    }
    let mut consumer = Peer::spawn("mq-consume", &[name.as_str(), "3"]);
    assert_eq!(consumer.ready_payload(), "0,1,2");
    consumer.kill().unwrap();
    assert_eq!(queue.attributes().unwrap().queued, 7);
    assert_eq!(queue.recv_message().unwrap().data, [3]);
}

#[test]
fn permissions_are_exact_and_enforced_for_other_users() {
    let guard = LeakGuard::new();
    let private = guard.name("private");
    let _queue = small().create(&private).unwrap();
    let lines = run_unprivileged("mq-open", &[private.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);

    let shared = guard.name("shared");
    let queue = small()
        .permissions(Permissions::owner_only().others(Access::ReadWrite))
        .create(&shared)
        .unwrap();
    let mode = nix::sys::stat::fstat(&queue).unwrap().st_mode & 0o777;
    assert_eq!(mode, 0o606);
    let lines = run_unprivileged("mq-open", &[shared.as_str(), "refuse"]).unwrap();
    assert_eq!(lines, ["PermissionDenied"]);
    let lines = run_unprivileged("mq-open", &[shared.as_str(), "accept"]).unwrap();
    assert_eq!(lines, ["ok"]);
}

#[test]
fn permissions_are_exact_whatever_the_umask() {
    let guard = LeakGuard::new();
    let name = guard.name("umask");
    let mut peer = Peer::spawn("mq-umask", &[name.as_str()]);
    assert_eq!(peer.ready_payload(), "640");
    peer.wait_success().unwrap();
}

#[test]
fn a_direction_is_enforced() {
    let guard = LeakGuard::new();
    let name = guard.name("direction");
    let _queue = small().create(&name).unwrap();
    let reader = open(&name, Direction::Receive);
    let writer = open(&name, Direction::Send);
    let err = reader.send_priority(b"x", 0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let err = writer.recv_message().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
}

#[test]
fn the_creator_removes_the_queue_unless_persisted() {
    let guard = LeakGuard::new();
    let name = guard.name("owner");
    let queue = small().create(&name).unwrap();
    let opener = open(&name, Direction::Both);
    drop(queue);
    // Gone by name; still usable by whoever has it open.
    let err = QueueOptions::new()
        .timeout(Duration::ZERO)
        .open(&name, Direction::Both)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    opener.send_priority(b"still here", 0).unwrap();
    assert_eq!(opener.recv_message().unwrap().data, b"still here");

    let mut kept = small().create(&name).unwrap();
    kept.persist();
    drop(kept);
    let mut again = open(&name, Direction::Both);
    again.unlink().unwrap();
}

#[test]
fn descriptors_are_close_on_exec() {
    let guard = LeakGuard::new();
    let queue = small().create(&guard.name("cloexec")).unwrap();
    let notification = queue.notify().unwrap();
    for fd in [queue.as_fd(), notification.as_fd()] {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(flags & libc::FD_CLOEXEC != 0, "{fd:?}");
    }
}

#[test]
fn notification_comes_from_another_process_and_is_exclusive() {
    let guard = LeakGuard::new();
    let name = guard.name("notify");
    let queue = small().create(&name).unwrap();
    let mut notification = queue.notify().unwrap();
    // A second registrant, in this process or another, is refused.
    assert_eq!(
        queue.notify().unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    let mut other = Peer::spawn("mq-notify", &[name.as_str()]);
    assert_eq!(other.recv().unwrap(), "AddrInUse");
    other.wait_success().unwrap();

    let mut sender = Peer::spawn("mq-send", &[name.as_str()]);
    assert!(
        notification
            .wait_deadline(Deadline::after(Duration::from_millis(20)))
            .unwrap_err()
            .is_timeout()
    );
    sender.send("wake up").unwrap();
    notification
        .wait_deadline(ipc_testkit::test_deadline())
        .unwrap();
    sender.wait_success().unwrap();
    assert_eq!(queue.recv_message().unwrap().data, b"wake up");
    // One-shot: re-arm for the next one.
    notification.rearm().unwrap();
    queue.send_priority(b"again", 0).unwrap();
    notification
        .wait_deadline(ipc_testkit::test_deadline())
        .unwrap();
    drop(notification);
    // Unregistered on drop: another process may register now.
    let mut other = Peer::spawn("mq-notify", &[name.as_str()]);
    assert_eq!(other.recv().unwrap(), "registered");
    other.wait_success().unwrap();
}

#[test]
fn readability_is_awaited_in_every_form_and_a_peer_send_ends_the_wait() {
    let guard = LeakGuard::new();
    let name = guard.name("readable");
    let queue = small().create(&name).unwrap();
    let start = Instant::now();
    let err = queue
        .wait_readable_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains(name.as_str()), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(30));
    let err = queue
        .wait_readable_deadline(Deadline::after(Duration::ZERO))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");

    let mut sender = Peer::spawn("mq-send", &[name.as_str()]);
    sender.send("hello").unwrap();
    queue
        .wait_readable_deadline(ipc_testkit::test_deadline())
        .unwrap();
    sender.wait_success().unwrap();
    // Ready now, so the unbounded form returns at once; waiting took nothing.
    queue.wait_readable().unwrap();
    assert_eq!(queue.try_recv_message().unwrap().data, b"hello");
}

#[test]
fn writability_is_awaited_in_every_form_and_a_peer_receive_ends_the_wait() {
    let guard = LeakGuard::new();
    let name = guard.name("writable");
    let queue = small().create(&name).unwrap();
    queue.wait_writable().unwrap();
    queue
        .wait_writable_deadline(Deadline::after(Duration::ZERO))
        .unwrap();
    for i in 0..4u8 {
        queue.try_send(&[i]).unwrap();
    }
    let start = Instant::now();
    let err = queue
        .wait_writable_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(30));

    let mut consumer = Peer::spawn("mq-consume", &[name.as_str(), "1"]);
    queue
        .wait_writable_deadline(ipc_testkit::test_deadline())
        .unwrap();
    assert_eq!(consumer.ready_payload(), "0");
    consumer.kill().unwrap();
    queue.try_send(b"room").unwrap();
}

#[test]
fn signals_do_not_shorten_waits_or_lose_messages() {
    let guard = LeakGuard::new();
    let name = guard.name("storm");
    let queue = small().create(&name).unwrap();
    let storm = SignalStorm::start();
    let start = Instant::now();
    let err = queue
        .recv_message_timeout(Duration::from_millis(200))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    let received = SignalStorm::received();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            ipc_testkit::wait_until(ipc_testkit::test_deadline(), || {
                SignalStorm::received() >= received + 20
            })
            .expect("the storm's signals never arrived");
            queue.send_priority(b"through the storm", 0).unwrap();
        });
        assert_eq!(queue.recv_message().unwrap().data, b"through the storm");
    });
    drop(storm);
}

#[test]
fn the_message_traits_work_through_dyn() {
    let guard = LeakGuard::new();
    let name = guard.name("dyn");
    let mut tx: Box<dyn MessageSender> = Box::new(small().create(&name).unwrap());
    let mut rx: Box<dyn MessageReceiver> = Box::new(open(&name, Direction::Receive));
    assert_eq!(tx.max_message_size(), 128);
    tx.send(b"through a trait").unwrap();
    let mut buf = Vec::new();
    let n = rx.recv_vec(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"through a trait");
}

#[test]
fn typed_messages_round_trip_and_mismatches_are_errors() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Quote {
        price: u64,
        volume: u32,
        venue: [u8; 4],
    }
    // SAFETY: repr(C), integers and bytes only, no padding (8 + 4 + 4 bytes).
    unsafe impl ipc_core::ShmSafe for Quote {}

    let guard = LeakGuard::new();
    let queue = small().create(&guard.name("typed")).unwrap();
    let quote = Quote {
        price: 10_548,
        volume: 5000,
        venue: *b"XNYS",
    };
    queue.send_value(&quote, 4).unwrap();
    assert_eq!(queue.recv_value::<Quote>().unwrap(), (quote, 4));
    // A message of another size is refused as a Quote (and consumed).
    queue.send_priority(b"short", 0).unwrap();
    let err = queue.try_recv_value::<Quote>().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert_eq!(queue.attributes().unwrap().queued, 0);
    // A type larger than the queue's messages is a limit error.
    let err = queue.send_value(&[0u64; 17], 0).unwrap_err();
    assert!(err.is_limit_exceeded(), "{err}");
}

/// A clone is a second descriptor for the same queue that does not own its name.
#[test]
fn a_cloned_queue_shares_messages_and_not_the_name() {
    let guard = LeakGuard::new();
    let name = guard.name("clone");
    let queue = small().create(&name).unwrap();
    let clone = queue.try_clone().unwrap();
    assert_ne!(queue.as_raw_fd(), clone.as_raw_fd());
    clone
        .send_priority_timeout(b"from the clone", 0, test_timeout())
        .unwrap();
    let mut buf = [0u8; 128];
    assert_eq!(
        queue
            .recv_priority_timeout(&mut buf, test_timeout())
            .unwrap()
            .0,
        14
    );
    drop(clone);
    // The creator still owns the name, and removes it when dropped.
    QueueOptions::new().open(&name, Direction::Both).unwrap();
}

/// With the message traits imported, the queue's own calls still compile and mean the same
/// (the inherent `send(msg, priority)` used to shadow the trait's `send(msg)`: E0061).
#[test]
fn the_message_traits_and_the_queue_agree() {
    use ipc_core::{MessageReceiver, MessageSender};
    let guard = LeakGuard::new();
    let mut queue = small().create(&guard.name("traits")).unwrap();
    queue.send(b"inherent").unwrap();
    MessageSender::send(&mut queue, b"trait").unwrap();
    queue.send_priority(b"urgent", 5).unwrap();
    let mut buf = vec![0u8; queue.max_message_size()];
    assert_eq!(queue.recv_priority(&mut buf).unwrap(), (6, 5));
    let n: usize = queue.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"inherent");
    let n = MessageReceiver::recv(&mut queue, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"trait");
}

/// A notification's wait comes in the four forms too.
#[test]
fn a_notification_waits_in_every_form() {
    let guard = LeakGuard::new();
    let queue = small().create(&guard.name("notify-forms")).unwrap();
    let notification = queue.notify().unwrap();
    assert!(notification.try_wait().unwrap_err().is_would_block());
    assert!(
        notification
            .wait_timeout(Duration::from_millis(10))
            .unwrap_err()
            .is_timeout()
    );
    queue.send(b"ping").unwrap();
    notification
        .wait_deadline(ipc_testkit::test_deadline())
        .unwrap();
}

#[test]
fn an_open_waits_for_a_queue_its_creator_has_not_made_yet() {
    let guard = LeakGuard::new();
    let name = guard.name("late");
    ipc_testkit::assert_open_waits_then_not_found("QueueOptions::timeout", |t| {
        QueueOptions::new().timeout(t).open(&name, Direction::Both)
    });

    // The opener starts first and waits (5 s by default) for the name.
    let mut opener = Peer::spawn("mq-open", &[name.as_str(), "refuse"]);
    let _queue = small().create(&name).unwrap();
    assert_eq!(opener.recv().unwrap(), "ok");
    opener.wait_success().unwrap();
}

#[test]
fn creation_options_that_disagree_with_an_existing_queue_are_refused() {
    let guard = LeakGuard::new();
    let name = guard.name("shape");
    let _queue = small().create(&name).unwrap();
    // The same options serve the creator and its openers.
    small().open(&name, Direction::Both).unwrap();
    for options in [
        QueueOptions::new().capacity(3),
        QueueOptions::new().max_message_size(64),
    ] {
        let err = options.open(&name, Direction::Both).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let err = options
            .creation_mode(CreationMode::OpenOrCreate)
            .create(&name)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("QueueOptions::"), "{err}");
    }
}

#[test]
fn a_cancelled_token_ends_waits_and_loses_nothing_queued() {
    let guard = LeakGuard::new();
    let name = guard.name("cancel");
    let queue = QueueOptions::new()
        .capacity(1)
        .max_message_size(128)
        .create(&name)
        .unwrap();
    let stop = ipc_mq::Cancel::new().unwrap();
    // Cancelled from another thread while this one waits (or before it starts: the wait
    // then ends at once).
    let waited = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| stop.watch(|| queue.recv(&mut [0u8; 128])));
        stop.cancel();
        waiter.join().unwrap()
    });
    assert!(waited.unwrap_err().is_cancelled());
    // Only waits end: a message that is there is received, and a full queue refuses a
    // send with the same error, keeping what it holds.
    queue.send(b"kept").unwrap();
    let err = stop.watch(|| queue.send(b"no room")).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let mut buf = [0u8; 128];
    let n = stop.watch(|| queue.recv(&mut buf)).unwrap();
    assert_eq!(&buf[..n], b"kept");
    assert!(
        stop.watch(|| queue.try_recv(&mut buf))
            .unwrap_err()
            .is_would_block()
    );
}

/// Creates a queue under a name of its own (tagged arg 0, naming this process), reports
/// the name and waits to be killed, leaving it behind.
pub fn left_behind_role(ctx: &mut PeerContext) -> PeerResult {
    let name = ipc_testkit::unique_name(ctx.arg(0)?);
    let _queue = small().create(&name)?;
    ctx.ready_with(name.as_str())?;
    loop {
        std::thread::park();
    }
}

/// Queues are listed through /dev/mqueue: with none mounted, the search says how to
/// mount one; with one mounted (in a mount namespace of the test's own), a killed
/// creator's queue is stale and a live one is not.
#[test]
fn a_killed_creators_queue_is_stale_and_a_live_ones_is_not() {
    let guard = LeakGuard::new();
    let mut peer = Peer::spawn("mq-left-behind", &["mq-stale"]);
    let left = IpcName::new(peer.ready_payload()).unwrap();
    guard.track(&left);
    let live = small().create(&guard.name("mq-stale")).unwrap();
    peer.kill().unwrap();
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some("/dev/mqueue"));
    if !mounted {
        let err = ipc_mq::stale_queues("ipcrs-test-mq-stale").unwrap_err();
        assert!(err.to_string().contains("mount -t mqueue"), "{err}");
        // Removed here, since nothing else can list it.
        nix::mqueue::mq_unlink(left.as_cstr()).unwrap();
        drop(live);
        return;
    }
    let stale = ipc_mq::stale_queues("ipcrs-test-mq-stale").unwrap();
    assert_eq!(
        stale,
        vec![left.clone()],
        "the live one ({}) is kept",
        live.name()
    );
    assert_eq!(
        ipc_mq::remove_stale_queues("ipcrs-test-mq-stale").unwrap(),
        vec![left]
    );
}
