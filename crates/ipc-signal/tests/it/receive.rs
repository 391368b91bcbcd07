use std::time::{Duration, Instant};

use ipc_signal::{Signal, SignalFd, SignalReceiver};
use ipc_testkit::{Peer, PeerContext, PeerResult, SignalStorm, test_timeout};

/// Reads arg 0 queued SIGRTMIN+1 signals and reports their payloads and senders.
pub fn read_queued_role(ctx: &mut PeerContext) -> PeerResult {
    let count: usize = ctx.arg(0)?.parse()?;
    let fd = SignalFd::new(&[Signal::realtime(1)?])?;
    ctx.ready_with(&std::process::id().to_string())?;
    let mut values = Vec::new();
    let mut senders = std::collections::BTreeSet::new();
    for _ in 0..count {
        let info = fd.recv_timeout(test_timeout())?;
        assert!(info.is_queued());
        senders.insert(info.pid);
        values.push(info.value.to_string());
    }
    ctx.send(&values.join(","))?;
    ctx.send(&format!("{senders:?}"))?;
    Ok(())
}

/// Waits for a line, then reads every pending SIGUSR1 and reports how many there were.
pub fn read_standard_role(ctx: &mut PeerContext) -> PeerResult {
    let fd = SignalFd::new(&[Signal::USR1])?;
    ctx.ready_with(&std::process::id().to_string())?;
    ctx.recv()?;
    let mut count = 0;
    while fd.recv_timeout(Duration::from_millis(100)).is_ok() {
        count += 1;
    }
    ctx.send(&count.to_string())?;
    Ok(())
}

/// Lowers its RLIMIT_SIGPENDING to 8, reports its pid, and waits for a line before
/// draining.
pub fn overflow_target_role(ctx: &mut PeerContext) -> PeerResult {
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_SIGPENDING, 8, 8)?;
    let fd = SignalFd::new(&[Signal::realtime(2)?])?;
    ctx.ready_with(&std::process::id().to_string())?;
    ctx.recv()?;
    while fd.try_recv().is_ok() {}
    Ok(())
}

/// Sends SIGUSR2 to pid arg 0, arg 1 times.
pub fn send_to_role(ctx: &mut PeerContext) -> PeerResult {
    let pid: u32 = ctx.arg(0)?.parse()?;
    let count: usize = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    for _ in 0..count {
        ipc_signal::send(pid, Signal::USR2)?;
    }
    Ok(())
}

#[test]
fn real_time_signals_with_payloads_arrive_all_and_in_order() {
    let mut reader = Peer::spawn("read-queued", &["500"]);
    let pid: u32 = reader.ready_payload().parse().unwrap();
    let rt = Signal::realtime(1).unwrap();
    for value in 0..500 {
        ipc_signal::queue(pid, rt, value).unwrap();
    }
    let expected: Vec<String> = (0..500).map(|v: i32| v.to_string()).collect();
    assert_eq!(reader.recv().unwrap(), expected.join(","));
    assert_eq!(
        reader.recv().unwrap(),
        format!("{{{}}}", std::process::id())
    );
    reader.wait_success().unwrap();
}

/// Standard signals coalesce: of many sent while one is pending, at least one arrives.
#[test]
fn standard_signals_coalesce_to_at_least_one() {
    let mut reader = Peer::spawn("read-standard", &[]);
    let pid: u32 = reader.ready_payload().parse().unwrap();
    for _ in 0..50 {
        ipc_signal::send(pid, Signal::USR1).unwrap();
    }
    reader.send("read").unwrap();
    let count: usize = reader.recv().unwrap().parse().unwrap();
    assert!((1..=50).contains(&count), "{count}");
    reader.wait_success().unwrap();
}

#[test]
fn a_full_signal_queue_is_an_error_naming_the_limit() {
    let mut target = Peer::spawn("overflow-target", &[]);
    let pid: u32 = target.ready_payload().parse().unwrap();
    let rt = Signal::realtime(2).unwrap();
    let err = (0..1000)
        .find_map(|value| ipc_signal::queue(pid, rt, value).err())
        .expect("a queue of 8 never filled");
    assert!(err.is_limit_exceeded(), "{err}");
    assert!(err.to_string().contains("RLIMIT_SIGPENDING"), "{err}");
    target.send("drain").unwrap();
    target.wait_success().unwrap();
}

#[test]
fn a_receiver_gets_signals_from_another_process() {
    let receiver = SignalReceiver::new(&[Signal::USR2]).unwrap();
    let mut sender = Peer::spawn("send-to", &[&std::process::id().to_string(), "3"]);
    sender.wait_success().unwrap();
    assert_eq!(receiver.recv_timeout(test_timeout()).unwrap(), Signal::USR2);
    // Up to three arrived (they may coalesce); nothing else is there.
    let extra = receiver.pending().count();
    assert!(extra <= 2, "{extra}");
    assert!(receiver.try_recv().unwrap_err().is_would_block());
}

#[test]
fn a_signal_storm_causes_no_spurious_failures() {
    let receiver = SignalReceiver::new(&[Signal::HUP]).unwrap();
    let fd = SignalFd::new(&[Signal::realtime(5).unwrap()]).unwrap();
    let storm = SignalStorm::start();
    let start = Instant::now();
    let err = receiver
        .recv_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let err = fd.recv_timeout(Duration::from_millis(100)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    // Blocking reads and writes through a pipe, interrupted thousands of times a second.
    let (mut reader, mut writer) = ipc_pipe::pipe().unwrap();
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| i.to_le_bytes()[0]).collect();
    let expected = data.clone();
    let write = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&data).unwrap();
    });
    let mut got = Vec::new();
    {
        use std::io::Read;
        reader.read_to_end(&mut got).unwrap();
    }
    write.join().unwrap();
    assert_eq!(got, expected);
    // Signals still arrive through both during the storm.
    ipc_signal::raise(Signal::HUP).unwrap();
    assert_eq!(receiver.recv_timeout(test_timeout()).unwrap(), Signal::HUP);
    ipc_signal::raise(Signal::realtime(5).unwrap()).unwrap();
    assert_eq!(
        fd.recv_timeout(test_timeout()).unwrap().signal,
        Signal::realtime(5).unwrap()
    );
    assert!(
        storm.sent() > 100,
        "the storm barely blew ({})",
        storm.sent()
    );
    drop(storm);
}

/// Every descriptor-based handle gives its descriptor the std ways.
#[test]
fn handles_give_their_descriptors() {
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    let signalfd = ipc_signal::SignalFd::new(&[ipc_signal::Signal::realtime(5).unwrap()]).unwrap();
    let raw = signalfd.as_raw_fd();
    let owned = OwnedFd::from(signalfd);
    assert_eq!(owned.as_raw_fd(), raw);
    let shutdown = ipc_signal::ShutdownOptions::new()
        .signals(&[ipc_signal::Signal::realtime(6).unwrap()])
        .install()
        .unwrap();
    assert_eq!(shutdown.as_raw_fd(), shutdown.as_fd().as_raw_fd());
}
