//! The ipc-rs test kit: two-process tests, unique names, deadlines, leak checks, signal
//! storms and privilege dropping. Every crate of the workspace tests with it.
//!
//! A two-process test re-executes its own test binary in a *peer role*. Declare the roles
//! once at the root of the test crate, then start peers from any test:
//!
//! ```no_run
//! // tests/it/main.rs
//! use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult};
//!
//! ipc_testkit::peer_roles! {
//!     "echo" => echo,
//! }
//!
//! fn echo(ctx: &mut PeerContext) -> PeerResult {
//!     let greeting = ctx.arg(0)?.to_owned();
//!     ctx.ready_with(&greeting)?;
//!     let line = ctx.recv()?;
//!     ctx.send(&line)?;
//!     Ok(())
//! }
//!
//! #[test]
//! fn echoes() {
//!     let _guard = LeakGuard::new();
//!     let mut peer = Peer::spawn("echo", &["hello"]);
//!     assert_eq!(peer.ready_payload(), "hello");
//!     peer.send("ping").unwrap();
//!     assert_eq!(peer.recv().unwrap(), "ping");
//!     peer.wait_success().unwrap();
//! }
//! ```
//!
//! Rules the kit enforces or makes easy:
//!
//! - no `fork` in the multi-threaded test harness: peers are new processes (`exec`);
//! - no sleeping as a handshake: the peer says it is ready over a pipe;
//! - every wait has a deadline ([`test_timeout`], scaled by `IPC_TEST_TIMEOUT_SCALE`), and a
//!   peer that misses it is killed and its output shown;
//! - a peer never outlives its test: killed on drop, and by the kernel when the test thread
//!   ends;
//! - names are unique across threads and processes ([`unique_name`]) and nothing is left
//!   behind ([`LeakGuard`]);
//! - permission tests run the peer as `nobody` ([`PeerBuilder::unprivileged`],
//!   [`run_unprivileged`]).

#![deny(unsafe_code)]

mod leak;
mod lines;
mod peer;
mod rng;
mod storm;
#[allow(unsafe_code)]
mod sys;
mod timeout;
mod wait;

pub use leak::{LeakGuard, LeakReport};
#[doc(hidden)]
pub use peer::__peer_entry;
pub use peer::{
    NOBODY, PEER_ENTRY_TEST, Peer, PeerBuilder, PeerContext, PeerError, PeerResult, Role,
    run_unprivileged,
};
pub use rng::{Rng, SEED_ENV};
pub use storm::{STORM_SIGNAL, SignalStorm};
pub use timeout::{TIMEOUT_SCALE_ENV, test_deadline, test_timeout};
pub use wait::{assert_open_waits_then_not_found, pause, wait_until};

use ipc_core::IpcName;

/// The prefix of every name the test kit makes: `ipcrs-test`.
pub const TEST_PREFIX: &str = "ipcrs-test";

/// A fresh name `/ipcrs-test-<tag>-<pid>-<nonce>-<n>` for an object of a test.
///
/// Prefer [`LeakGuard::name`], which also checks that the object is gone at the end.
///
/// # Panics
///
/// If `tag` contains `/` or NUL or is too long for a name: a bug in the test.
pub fn unique_name(tag: &str) -> IpcName {
    IpcName::unique(&format!("{TEST_PREFIX}-{tag}"))
        .unwrap_or_else(|err| panic!("bad test name tag {tag:?}: {err}"))
}

/// Waits until the process `pid` (not necessarily a child) has exited, at most until
/// `deadline`.
///
/// # Errors
///
/// `TimedOut` if it is still alive at the deadline; other errors of `pidfd_open`. A process
/// that is already gone is not an error.
pub fn wait_for_exit_of(pid: u32, deadline: ipc_core::Deadline) -> std::io::Result<()> {
    match ipc_core::internal::pidfd_open(pid) {
        Ok(pidfd) => lines::wait_readable(&pidfd, deadline),
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The descriptors of this process above stdio that `exec` would pass on to a child: those
/// without close-on-exec. Anything a test runner inherited this way (such as cargo's
/// jobserver pipe) reaches every child, so inheritance tests discount these.
pub fn inherited_fds() -> Vec<std::os::fd::RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd: std::os::fd::RawFd = entry.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            let flags = u32::from_str_radix(flags, 8).ok()?;
            let cloexec = flags & u32::try_from(libc::O_CLOEXEC).ok()? != 0;
            (fd > 2 && !cloexec).then_some(fd)
        })
        .collect()
}

/// A current-thread tokio runtime with I/O and timers, as the tests of async paths use.
///
/// # Errors
///
/// If the runtime cannot be built (out of descriptors for its `epoll` set).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
