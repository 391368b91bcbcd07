use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ipc_core::{Deadline, Error};
use ipc_testkit::{SignalStorm, test_deadline};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// One `poll` for readability, as a blocking call of the toolkit makes it.
fn poll_once(fd: impl AsFd, deadline: &Deadline) -> ipc_core::Result<()> {
    let timeout = PollTimeout::try_from(deadline.poll_timeout_ms()).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(0) => Err(Error::timed_out("poll")),
        Ok(_) => Ok(()),
        Err(errno) => Err(Error::from_errno("poll", errno)),
    }
}

#[test]
fn eintr_retries_never_extend_the_deadline() {
    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let timeout = Duration::from_millis(300);
    let storm = SignalStorm::start();
    let before = Instant::now();
    let deadline = Deadline::after(timeout);
    let start = Instant::now();
    let mut attempts: Vec<(Duration, i32)> = Vec::new();
    let result = deadline.retry(|d| {
        attempts.push((start.elapsed(), d.poll_timeout_ms()));
        poll_once(&r, d)
    });
    drop(storm);

    let err = result.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.op(), "poll");
    assert!(before.elapsed() >= timeout);
    assert!(attempts.len() > 1, "the storm never interrupted the wait");
    // Every retry asked only for what was left of the original deadline (give or take the
    // rounding up to whole milliseconds), and never for more than the attempt before it.
    for &(elapsed, ms) in &attempts {
        let left = timeout.saturating_sub(elapsed) + Duration::from_millis(1);
        assert!(
            Duration::from_millis(u64::try_from(ms).unwrap()) <= left,
            "{attempts:?}"
        );
    }
    assert!(
        attempts.windows(2).all(|w| w[1].1 <= w[0].1),
        "{attempts:?}"
    );
}

#[test]
fn interrupted_wait_still_gets_its_data() {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let storm = SignalStorm::start();
    let received_before = SignalStorm::received();
    let writer = std::thread::spawn(move || {
        // Write only after the waiting thread has been interrupted a few times.
        ipc_testkit::wait_until(test_deadline(), || {
            SignalStorm::received() >= received_before + 20
        })
        .expect("the storm's signals never arrived");
        nix::unistd::write(&w, b"x").unwrap();
        w
    });
    let deadline = test_deadline();
    let mut interruptions = 0;
    deadline
        .retry(|d| {
            let result = poll_once(&r, d);
            interruptions += usize::from(result.as_ref().is_err_and(Error::is_interrupted));
            result
        })
        .unwrap();
    drop(storm);
    drop(writer.join().unwrap());
    assert!(interruptions > 0);
}
