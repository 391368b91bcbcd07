use std::process::Command;
use std::time::{Duration, Instant};

use ipc_core::Deadline;
use ipc_signal::{
    ChildExit, Disposition, Process, ShutdownOptions, Signal, SignalReceiver, Termination,
};
use ipc_testkit::{Peer, PeerContext, PeerResult, test_deadline};

fn state_of(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.chars().next().unwrap()
}

/// Installs a shutdown on SIGTERM (forcing exit 7 on the second if arg 0 is "force"),
/// reports its pid, waits for the request and reports the signal; then, if forced, waits
/// for a second signal without end.
pub fn shutdown_role(ctx: &mut PeerContext) -> PeerResult {
    let mut options = ShutdownOptions::new().signals(&[Signal::TERM]);
    let force = ctx.arg(0)? == "force";
    if force {
        options = options.force_exit_on_second(7);
    }
    let shutdown = options.install()?;
    ctx.ready_with(&std::process::id().to_string())?;
    let signal = shutdown.wait_deadline(ipc_testkit::test_deadline())?;
    ctx.send(&signal.to_string())?;
    if force {
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

/// Receives SIGHUP through a handler, ignores it for a while, then shows the handler back.
pub fn disposition_role(ctx: &mut PeerContext) -> PeerResult {
    let receiver = SignalReceiver::new(&[Signal::HUP])?;
    ctx.ready()?;
    {
        let _ignored = ipc_signal::set_disposition(Signal::HUP, Disposition::Ignore)?;
        ipc_signal::raise(Signal::HUP)?;
        let ignored = receiver.recv_timeout(Duration::from_millis(50)).is_err();
        ctx.send(&format!("ignored {ignored}"))?;
    }
    ipc_signal::raise(Signal::HUP)?;
    let handled = receiver.recv_timeout(ipc_testkit::test_timeout())? == Signal::HUP;
    ctx.send(&format!("handled {handled}"))?;
    Ok(())
}

#[test]
fn a_reaped_process_cannot_be_signalled_through_its_pidfd() {
    let child = Command::new("true").spawn().unwrap();
    let process = Process::open(child.id()).unwrap();
    assert_eq!(
        process.wait_child_deadline(test_deadline()).unwrap(),
        ChildExit::Exited(0)
    );
    // Its pid may belong to someone else by now; the pidfd still names the dead process.
    let err = process.send(Signal::TERM).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(process.has_exited().unwrap());
    drop(child);
}

#[test]
fn stop_resume_and_terminate() {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let process = Process::open(child.id()).unwrap();
    let start = Instant::now();
    let err = process
        .wait_exit_deadline(Deadline::after(Duration::from_millis(30)))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(30));

    assert!(!process.is_stopped().unwrap());
    let start = Instant::now();
    let err = process
        .wait_stopped_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(30));

    process.stop().unwrap();
    process.wait_stopped_deadline(test_deadline()).unwrap();
    assert_eq!(state_of(process.pid()), 'T');
    assert!(process.is_stopped().unwrap());
    // Stopped now, so the unbounded form returns at once.
    process.wait_stopped().unwrap();
    process.resume().unwrap();
    ipc_testkit::wait_until(test_deadline(), || state_of(process.pid()) != 'T')
        .expect("never resumed");
    assert_eq!(
        process.terminate(Duration::from_secs(5)).unwrap(),
        Termination::Graceful
    );
    assert_eq!(
        process.wait_child_deadline(test_deadline()).unwrap(),
        ChildExit::Killed(Signal::TERM)
    );
    drop(child);
}

#[test]
fn a_process_that_exits_instead_of_stopping_ends_the_wait_with_not_found() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let process = Process::open(child.id()).unwrap();
    process.send(Signal::KILL).unwrap();
    let err = process.wait_stopped_deadline(test_deadline()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&child.id().to_string()), "{err}");
    child.wait().unwrap();
    assert_eq!(
        process.is_stopped().unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}

#[test]
// The child is reaped through its pidfd (`wait_child`), which the lint cannot see.
#[allow(clippy::zombie_processes)]
fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    // The shell ignores SIGTERM and tells us when it does, then waits.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' TERM; echo ready; exec sleep 60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let process = Process::open(child.id()).unwrap();
    let start = Instant::now();
    assert_eq!(
        process.terminate(Duration::from_millis(100)).unwrap(),
        Termination::Killed
    );
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        process.wait_child_deadline(test_deadline()).unwrap(),
        ChildExit::Killed(Signal::KILL)
    );
}

#[test]
fn a_shutdown_is_noticed_and_a_second_signal_forces_the_exit() {
    let mut peer = Peer::spawn("shutdown", &["once"]);
    let process = Process::open(peer.ready_payload().parse().unwrap()).unwrap();
    process.send(Signal::TERM).unwrap();
    assert_eq!(peer.recv().unwrap(), "SIGTERM");
    peer.wait_success().unwrap();

    let mut peer = Peer::spawn("shutdown", &["force"]);
    let process = Process::open(peer.ready_payload().parse().unwrap()).unwrap();
    process.send(Signal::TERM).unwrap();
    assert_eq!(peer.recv().unwrap(), "SIGTERM");
    process.send(Signal::TERM).unwrap();
    let status = peer.wait().unwrap();
    assert_eq!(status.code(), Some(7), "{status:?}");
}

#[test]
fn a_disposition_guard_puts_the_previous_handler_back() {
    let mut peer = Peer::spawn("disposition", &[]);
    assert_eq!(peer.recv().unwrap(), "ignored true");
    assert_eq!(peer.recv().unwrap(), "handled true");
    peer.wait_success().unwrap();
}

/// "No such process" is `NotFound` everywhere: a process that was reaped, and through a
/// `Process`, one that has exited but is not reaped yet (which the kernel still lets `kill`
/// and `sigqueue` "signal", and which the free functions do not check, to stay as cheap as
/// `kill`).
#[test]
fn no_such_process_is_not_found_everywhere() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let process = Process::open(pid).unwrap();
    process.wait_exit_deadline(test_deadline()).unwrap();
    // Exited, not reaped: a zombie child.
    let err = process.send(Signal::USR1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    child.wait().unwrap();
    // Reaped: gone for good (the pidfd still names it, and only it).
    let err = process.send(Signal::USR1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    // A pid no process can have (pids stay below pid_max): never a stranger signalled.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for err in [
        ipc_signal::send(pid_max, Signal::USR1).unwrap_err(),
        ipc_signal::queue(pid_max, Signal::realtime(1).unwrap(), 7).unwrap_err(),
        Process::open(pid_max).map(drop).unwrap_err(),
    ] {
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }
}

/// Every wait comes in the four forms: as long as it takes, try, timeout, deadline.
#[test]
fn waits_come_as_op_try_timeout_and_deadline() {
    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    let process = Process::open(child.id()).unwrap();
    assert!(process.try_wait_exit().unwrap_err().is_would_block());
    assert!(
        process
            .wait_exit_timeout(Duration::from_millis(10))
            .unwrap_err()
            .is_timeout()
    );
    assert!(process.try_wait_child().unwrap_err().is_would_block());
    process.send(Signal::KILL).unwrap();
    process.wait_exit().unwrap();
    process.try_wait_exit().unwrap();
    assert_eq!(
        process.wait_child_deadline(test_deadline()).unwrap(),
        ChildExit::Killed(Signal::KILL)
    );
    child.try_wait().ok();

    let shutdown = ShutdownOptions::new()
        .signals(&[Signal::realtime(7).unwrap()])
        .install()
        .unwrap();
    assert!(shutdown.try_wait().unwrap_err().is_would_block());
    assert!(
        shutdown
            .wait_timeout(Duration::from_millis(10))
            .unwrap_err()
            .is_timeout()
    );
}
