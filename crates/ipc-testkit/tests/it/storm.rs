use std::os::fd::AsFd;

use ipc_core::Deadline;
use ipc_testkit::{SignalStorm, test_deadline};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

#[test]
fn storm_interrupts_blocking_calls() {
    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let storm = SignalStorm::start();
    let deadline = test_deadline();
    let mut interrupted = false;
    while !interrupted && !deadline.has_expired() {
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        interrupted = poll(&mut fds, PollTimeout::from(100u16)) == Err(Errno::EINTR);
    }
    assert!(interrupted, "no EINTR after {} signals", storm.sent());
    assert!(storm.sent() > 0);
    drop(storm);
    // Once stopped, it stays quiet.
    let received = SignalStorm::received();
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, PollTimeout::from(20u16)), Ok(0));
    assert_eq!(SignalStorm::received(), received);
    let _ = Deadline::NEVER;
}
