//! A storm of signals at one thread, to prove that blocking calls survive `EINTR`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::Signal;

use crate::sys;

/// The signal the storm sends. `SIGWINCH` is ignored by default, so a stray one can never
/// kill a process, and no mechanism of the toolkit uses it.
pub const STORM_SIGNAL: Signal = Signal::SIGWINCH;

/// Sends [`STORM_SIGNAL`] to the thread that started it, about ten thousand times a second,
/// until dropped.
///
/// The handler is installed without `SA_RESTART`, so every blocking system call of that
/// thread that the signal interrupts fails with `EINTR`: exactly what the toolkit must
/// retry, against the same deadline. The handler only counts.
///
/// ```
/// use std::time::Duration;
/// use ipc_testkit::SignalStorm;
///
/// let storm = SignalStorm::start();
/// let received_before = SignalStorm::received();
/// // Sleep through the storm: std's sleep retries EINTR itself.
/// std::thread::sleep(Duration::from_millis(20));
/// assert!(storm.sent() > 0);
/// drop(storm);
/// assert!(SignalStorm::received() > received_before);
/// ```
///
/// The storm must be dropped on the thread that started it (it is not `Send`), which is
/// therefore alive for the whole storm.
#[derive(Debug)]
pub struct SignalStorm {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    // Not `Send`: the target thread must outlive the storm, which dropping it on that very
    // thread guarantees.
    _target: PhantomData<*const ()>,
}

impl SignalStorm {
    /// Starts the storm at the calling thread.
    ///
    /// # Panics
    ///
    /// If the handler cannot be installed, which does not happen on Linux.
    pub fn start() -> Self {
        static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
        if let Err(err) = INSTALLED.get_or_init(|| {
            sys::install_storm_handler(STORM_SIGNAL as libc::c_int).map_err(|e| e.to_string())
        }) {
            panic!("cannot install the storm handler: {err}");
        }
        let target: Pthread = pthread_self();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // Count first, so that a reader who has seen a signal arrive also sees it
                    // counted.
                    sent.fetch_add(1, Ordering::Relaxed);
                    if pthread_kill(target, STORM_SIGNAL).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        };
        SignalStorm {
            stop,
            sent,
            thread: Some(thread),
            _target: PhantomData,
        }
    }

    /// How many signals this storm has sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// How many storm signals this process has received, from all storms.
    pub fn received() -> u64 {
        sys::STORM_RECEIVED.load(Ordering::Relaxed)
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // The sender thread cannot panic; if it did, there is nothing to clean up.
            let _ = thread.join();
        }
    }
}
