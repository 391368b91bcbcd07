//! Waiting on many endpoints at once: [`Selector`], and what an endpoint gives it
//! ([`Source`], [`Readiness`]).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use crate::internal::{cancellation_watched, watched_tokens};
use crate::{Cancel, Deadline, Error, Result};

/// What a wait is for: input (data, a connection, a signal, an exit) or room to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Waiting to receive, accept or read.
    Readable,
    /// Waiting to send or write.
    Writable,
}

/// What a [`Selector`] watches for one endpoint: its own copy of a descriptor and, for an
/// endpoint whose state lives in shared memory, the [`ReadinessHook`] that makes that
/// descriptor readable when the endpoint may be ready.
///
/// Endpoints make it in their [`Source::readiness`]; programs only pass it on.
pub struct Readiness {
    fd: OwnedFd,
    interest: Interest,
    hook: Option<Arc<dyn ReadinessHook>>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.fd.as_raw_fd())
            .field("interest", &self.interest)
            .field("hooked", &self.hook.is_some())
            .finish()
    }
}

impl Readiness {
    /// The readiness of a descriptor the kernel keeps (a pipe, a socket, a queue, a
    /// signalfd, a pidfd): readable or writable as `interest` says. The selector keeps a
    /// duplicate, so the endpoint's own descriptor is never closed or changed by it.
    ///
    /// # Errors
    ///
    /// The `fcntl(F_DUPFD_CLOEXEC)` error (out of descriptors).
    pub fn of_fd(fd: BorrowedFd<'_>, interest: Interest) -> Result<Readiness> {
        let fd = fd
            .try_clone_to_owned()
            .map_err(|e| Error::from(e).with_op("dup"))?;
        Ok(Readiness {
            fd,
            interest,
            hook: None,
        })
    }

    /// The descriptor, what to wait for on it, and the hook.
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (OwnedFd, Interest, Option<Arc<dyn ReadinessHook>>) {
        (self.fd, self.interest, self.hook)
    }

    /// The readiness of an endpoint in shared memory: `fd` becomes readable once `hook`
    /// has armed it and the endpoint may be ready.
    pub fn hooked(fd: OwnedFd, hook: Arc<dyn ReadinessHook>) -> Readiness {
        Readiness {
            fd,
            interest: Interest::Readable,
            hook: Some(hook),
        }
    }
}

/// How an endpoint whose state lives in shared memory (a channel, a futex semaphore, a
/// mutex) is made ready in a poller: before the poller sleeps, [`arm`](Self::arm) asks the
/// other side to signal a descriptor; once the poller woke up, [`disarm`](Self::disarm)
/// withdraws the request. Between the two the other side pays one write per wake-up; an
/// endpoint that is not armed costs the other side nothing. The request lives in memory
/// the other side can write: a hostile peer can make the poller miss wake-ups (as a peer
/// that stops sending would), never crash it or extend a deadline.
pub trait ReadinessHook: Send + Sync + fmt::Debug {
    /// Arms the wake-up: `Ok(true)` if the endpoint is ready already (the hook then stays
    /// unarmed), `Ok(false)` once the descriptor will become readable when it may be.
    ///
    /// # Errors
    ///
    /// If the wake-up cannot be arranged (out of descriptors).
    fn arm(&self) -> Result<bool>;

    /// Withdraws the wake-up and empties the descriptor, so that it is readable again only
    /// after the next [`arm`](Self::arm).
    fn disarm(&self);
}

/// An endpoint a [`Selector`] can wait on.
pub trait Source {
    /// What a selector watches to learn that a wait for `interest` would end.
    ///
    /// # Errors
    ///
    /// If the endpoint cannot be waited on that way (a sender asked for input), or the
    /// descriptor cannot be duplicated.
    fn readiness(&self, interest: Interest) -> Result<Readiness>;
}

impl<T: Source + ?Sized> Source for &T {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        (**self).readiness(interest)
    }
}

/// An endpoint shared between tasks or threads.
impl<T: Source + ?Sized> Source for std::sync::Arc<T> {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        (**self).readiness(interest)
    }
}

impl<T: Source + ?Sized> Source for &mut T {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        (**self).readiness(interest)
    }
}

/// Names an endpoint added to a [`Selector`]; the wait returns the keys of the ready ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(usize);

impl Key {
    /// The key's index: keys are handed out from 0 up, and a removed one is reused.
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Debug)]
struct Entry {
    readiness: Readiness,
    /// Whether the hook (if any) is armed.
    armed: bool,
}

/// Keys above this are cancellation tokens' descriptors, not endpoints.
const TOKEN_KEYS: usize = usize::MAX / 2;

/// Waits on any mix of endpoints at once (queues, pipes, FIFOs, sockets and listeners,
/// signal receivers and signalfds, processes, [`Shutdown`](https://docs.rs/ipc-signal),
/// shared-memory channels, semaphores) and tells which are ready, with a deadline.
///
/// Readiness is level-triggered, like `poll(2)`: an endpoint that is still ready is
/// reported again by the next wait, so a program may take one message per wake-up. It
/// may be reported ready spuriously (a message another thread took first, a wake-up
/// that raced with one): the endpoint's `try_` call then fails with `WouldBlock`.
/// Built on `epoll` through the [`polling`] crate, a wake-up costs the same whether 1 or
/// 64 endpoints are added.
///
/// The selector holds its own duplicate of every descriptor: [`remove`](Self::remove)
/// an endpoint before dropping it, or its descriptor (a socket the peer waits to see
/// closed, say) stays open inside the selector until the selector is dropped.
///
/// A wait ends with a cancelled error when a [`Cancel`] token it watches is cancelled
/// (the process's token after a caught shutdown signal, or one given to [`Cancel::watch`]),
/// unless an endpoint is ready: a `Shutdown` added to the selector, whose descriptor is
/// written before the token is cancelled, is reported as a ready key.
///
/// ```
/// use std::time::Duration;
/// use ipc_core::{Interest, Selector};
///
/// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
/// let mut selector = Selector::new()?;
/// let key = selector.add(&a, Interest::Readable)?;
/// assert!(selector.wait_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
/// b.send(b"ping")?;
/// assert_eq!(selector.wait()?, [key]);
/// selector.remove(key)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Selector {
    poller: Poller,
    events: Events,
    entries: Vec<Option<Entry>>,
    /// The cancellation tokens whose descriptors are registered, by descriptor number.
    tokens: Vec<Cancel>,
    ready: Vec<Key>,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("entries", &self.entries)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Selector {
    /// A selector with nothing added.
    ///
    /// # Errors
    ///
    /// The `epoll_create1` error (out of descriptors).
    pub fn new() -> Result<Selector> {
        Ok(Selector {
            poller: Poller::new().map_err(|e| Error::from(e).with_op("epoll_create1"))?,
            events: Events::new(),
            entries: Vec::new(),
            tokens: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// Adds `source`, to be reported ready when a wait for `interest` on it would end.
    ///
    /// # Errors
    ///
    /// As [`Source::readiness`]; the `epoll_ctl` error.
    pub fn add(&mut self, source: &(impl Source + ?Sized), interest: Interest) -> Result<Key> {
        let readiness = source.readiness(interest)?;
        let index = match self.entries.iter().position(Option::is_none) {
            Some(free) => free,
            None => self.entries.len(),
        };
        let event = match readiness.interest {
            Interest::Readable => Event::readable(index),
            Interest::Writable => Event::writable(index),
        };
        crate::sys::poller_add(&self.poller, readiness.fd.as_fd(), event, PollMode::Level)
            .map_err(|e| Error::from(e).with_op("epoll_ctl"))?;
        let entry = Entry {
            readiness,
            armed: false,
        };
        if index == self.entries.len() {
            self.entries.push(Some(entry));
        } else {
            self.entries[index] = Some(entry);
        }
        Ok(Key(index))
    }

    /// Removes the endpoint added as `key`, closing the selector's descriptor for it.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a key that is not in this selector.
    pub fn remove(&mut self, key: Key) -> Result<()> {
        let Some(entry) = self.entries.get_mut(key.0).and_then(Option::take) else {
            return Err(Error::new(
                "Selector::remove",
                std::io::ErrorKind::InvalidInput,
                format!("key {} is not in this selector", key.0),
            ));
        };
        disarm(&entry);
        self.poller
            .delete(entry.readiness.fd.as_fd())
            .map_err(|e| Error::from(e).with_op("epoll_ctl"))
    }

    /// How many endpoints are added.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// Whether no endpoint is added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least one endpoint is ready and returns the keys of the ready ones.
    ///
    /// # Errors
    ///
    /// Cancelled if a watched [`Cancel`] token is cancelled first; `InvalidInput` if
    /// nothing is added; the `epoll_wait` error.
    pub fn wait(&mut self) -> Result<&[Key]> {
        self.wait_until(Deadline::NEVER, "Selector::wait")
    }

    /// The keys of the endpoints ready now, failing with `WouldBlock` if there are none.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; as [`wait`](Self::wait).
    pub fn try_wait(&mut self) -> Result<&[Key]> {
        const OP: &str = "Selector::try_wait";
        match self.wait_until(Deadline::after(Duration::ZERO), OP) {
            Err(err) if err.is_timeout() => Err(Error::would_block(OP)),
            other => other,
        }
    }

    /// Like [`wait`](Self::wait), failing with `TimedOut` after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; as [`wait`](Self::wait).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<&[Key]> {
        self.wait_until(Deadline::after(timeout), "Selector::wait_timeout")
    }

    /// Like [`wait`](Self::wait), failing with `TimedOut` at `deadline`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; as [`wait`](Self::wait).
    pub fn wait_deadline(&mut self, deadline: Deadline) -> Result<&[Key]> {
        self.wait_until(deadline, "Selector::wait_deadline")
    }

    fn wait_until(&mut self, deadline: Deadline, op: &'static str) -> Result<&[Key]> {
        if self.is_empty() {
            return Err(Error::new(
                op,
                std::io::ErrorKind::InvalidInput,
                "nothing was added to the selector: the wait would never end",
            ));
        }
        self.ready.clear();
        let checking = deadline.remaining() == Some(Duration::ZERO);
        // No allocation per wait in a process that watches no token.
        let watched = if checking || !cancellation_watched() {
            Vec::new()
        } else {
            watched_tokens()
        };
        self.watch_tokens(&watched)?;
        // Arm the hooks that are not armed yet; one that finds its endpoint ready already
        // ends the wait before it starts.
        for (index, entry) in self.entries.iter_mut().enumerate() {
            let Some(entry) = entry else { continue };
            let Some(hook) = &entry.readiness.hook else {
                continue;
            };
            if !entry.armed {
                if hook.arm()? {
                    self.ready.push(Key(index));
                } else {
                    entry.armed = true;
                }
            }
        }
        let mut timeout = if self.ready.is_empty() {
            deadline.remaining()
        } else {
            Some(Duration::ZERO)
        };
        loop {
            self.events.clear();
            self.poller
                .wait(&mut self.events, timeout)
                .map_err(|e| Error::from(e).with_op("epoll_wait"))?;
            let mut cancelled = false;
            for event in self.events.iter() {
                if event.key >= TOKEN_KEYS {
                    cancelled |= watched
                        .iter()
                        .any(|token| token.as_raw_fd() as usize == event.key - TOKEN_KEYS);
                    continue;
                }
                let Some(Some(entry)) = self.entries.get_mut(event.key) else {
                    continue;
                };
                if entry.armed {
                    disarm(entry);
                    entry.armed = false;
                }
                if !self.ready.contains(&Key(event.key)) {
                    self.ready.push(Key(event.key));
                }
            }
            if !self.ready.is_empty() {
                self.ready.sort_unstable();
                return Ok(&self.ready);
            }
            if cancelled || watched.iter().any(Cancel::is_cancelled) {
                return Err(Error::cancelled(op));
            }
            match deadline.remaining() {
                Some(left) if left.is_zero() => return Err(Error::timed_out(op)),
                left => timeout = left,
            }
        }
    }

    /// Registers the descriptors of the tokens this wait watches, and forgets those of
    /// tokens no longer watched (a cancelled one would end every later wait).
    fn watch_tokens(&mut self, watched: &[Cancel]) -> Result<()> {
        let key = |token: &Cancel| TOKEN_KEYS + token.as_raw_fd() as usize;
        let poller = &self.poller;
        self.tokens.retain(|token| {
            let keep = watched.iter().any(|w| w.as_raw_fd() == token.as_raw_fd());
            if !keep {
                let _ = poller.delete(token.as_fd());
            }
            keep
        });
        for token in watched {
            if self
                .tokens
                .iter()
                .any(|seen| seen.as_raw_fd() == token.as_raw_fd())
            {
                continue;
            }
            crate::sys::poller_add(
                poller,
                token.as_fd(),
                Event::readable(key(token)),
                PollMode::Level,
            )
            .map_err(|e| Error::from(e).with_op("epoll_ctl"))?;
            self.tokens.push(token.clone());
        }
        Ok(())
    }
}

fn disarm(entry: &Entry) {
    if entry.armed {
        if let Some(hook) = &entry.readiness.hook {
            hook.disarm();
        }
    }
}

impl Drop for Selector {
    fn drop(&mut self) {
        for entry in self.entries.iter().flatten() {
            disarm(entry);
        }
    }
}

impl Source for Cancel {
    /// A token is readable once it is cancelled.
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        readable_only(self.as_fd(), interest, "a cancellation token")
    }
}

/// The readiness of an endpoint that can only be waited on for input.
///
/// # Errors
///
/// `InvalidInput` for [`Interest::Writable`]; the `dup` error.
pub fn readable_only(fd: BorrowedFd<'_>, interest: Interest, what: &str) -> Result<Readiness> {
    only(Interest::Readable, fd, interest, what)
}

/// The readiness of an endpoint that can only be waited on for room to write.
///
/// # Errors
///
/// `InvalidInput` for [`Interest::Readable`]; the `dup` error.
pub fn writable_only(fd: BorrowedFd<'_>, interest: Interest, what: &str) -> Result<Readiness> {
    only(Interest::Writable, fd, interest, what)
}

fn only(
    allowed: Interest,
    fd: BorrowedFd<'_>,
    interest: Interest,
    what: &str,
) -> Result<Readiness> {
    if interest != allowed {
        return Err(Error::new(
            "Selector::add",
            std::io::ErrorKind::InvalidInput,
            format!("{what} can only be waited on as Interest::{allowed:?}"),
        ));
    }
    Readiness::of_fd(fd, interest)
}

impl Source for BorrowedFd<'_> {
    fn readiness(&self, interest: Interest) -> Result<Readiness> {
        Readiness::of_fd(self.as_fd(), interest)
    }
}

macro_rules! std_sources {
    ($($t:ty),* $(,)?) => {$(
        impl Source for $t {
            fn readiness(&self, interest: Interest) -> Result<Readiness> {
                Readiness::of_fd(self.as_fd(), interest)
            }
        }
    )*};
}

std_sources!(
    OwnedFd,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixDatagram,
    std::os::unix::net::UnixListener,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::fs::File,
);

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    #[test]
    fn readiness_is_level_triggered_and_names_every_ready_endpoint() {
        let (a, a_peer) = UnixDatagram::pair().unwrap();
        let (b, b_peer) = UnixDatagram::pair().unwrap();
        let mut selector = Selector::new().unwrap();
        let ka = selector.add(&a, Interest::Readable).unwrap();
        let kb = selector.add(&b, Interest::Readable).unwrap();
        assert!(selector.try_wait().unwrap_err().is_would_block());
        b_peer.send(b"1").unwrap();
        assert_eq!(selector.wait().unwrap(), [kb]);
        // Not taken yet: reported again.
        assert_eq!(selector.wait().unwrap(), [kb]);
        a_peer.send(b"2").unwrap();
        assert_eq!(selector.wait().unwrap(), [ka, kb]);
        let mut buf = [0; 4];
        a.recv(&mut buf).unwrap();
        b.recv(&mut buf).unwrap();
        let started = Instant::now();
        let err = selector
            .wait_timeout(Duration::from_millis(30))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(30));
        // Writable interest on the same kind of endpoint.
        let kw = selector.add(&a_peer, Interest::Writable).unwrap();
        assert_eq!(selector.wait().unwrap(), [kw]);
        selector.remove(kw).unwrap();
        assert!(
            selector
                .remove(kw)
                .unwrap_err()
                .to_string()
                .contains("not in")
        );
        assert_eq!(selector.len(), 2);
    }

    #[test]
    fn a_watched_cancelled_token_ends_the_wait_and_an_unwatched_one_does_not() {
        let (a, _peer) = UnixDatagram::pair().unwrap();
        let mut selector = Selector::new().unwrap();
        selector.add(&a, Interest::Readable).unwrap();
        let stop = Cancel::new().unwrap();
        let remote = stop.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.cancel();
        });
        let err = stop
            .watch(|| selector.wait().map(<[Key]>::to_vec))
            .unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        canceller.join().unwrap();
        // Outside the scope the cancelled token no longer ends waits.
        assert!(selector.try_wait().unwrap_err().is_would_block());
        let err = selector.wait_timeout(Duration::from_millis(5)).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        // A cancellation token is itself a source.
        let key = selector.add(&stop, Interest::Readable).unwrap();
        assert_eq!(selector.wait().unwrap(), [key]);
        assert!(selector.add(&stop, Interest::Writable).is_err());
    }

    #[test]
    fn nothing_to_wait_on_is_an_error_not_a_hang() {
        let mut selector = Selector::new().unwrap();
        let err = selector.wait().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }

    /// A hook over an eventfd-like datagram pair: `ready` says whether the endpoint is
    /// ready, `signal` stands for the other side writing the wake descriptor.
    #[derive(Debug)]
    struct TestHook {
        ready: AtomicBool,
        armed: AtomicUsize,
        disarmed: AtomicUsize,
        reader: Mutex<UnixDatagram>,
    }

    impl ReadinessHook for TestHook {
        fn arm(&self) -> Result<bool> {
            if self.ready.load(Ordering::SeqCst) {
                return Ok(true);
            }
            self.armed.fetch_add(1, Ordering::SeqCst);
            Ok(false)
        }

        fn disarm(&self) {
            self.disarmed.fetch_add(1, Ordering::SeqCst);
            let reader = self.reader.lock().unwrap();
            let mut buf = [0; 8];
            while reader.recv(&mut buf).is_ok() {}
        }
    }

    #[test]
    fn a_hook_is_armed_once_until_its_descriptor_fires() {
        let (reader, writer) = UnixDatagram::pair().unwrap();
        reader.set_nonblocking(true).unwrap();
        let fd = reader.as_fd().try_clone_to_owned().unwrap();
        let hook = Arc::new(TestHook {
            ready: AtomicBool::new(false),
            armed: AtomicUsize::new(0),
            disarmed: AtomicUsize::new(0),
            reader: Mutex::new(reader),
        });
        let mut selector = Selector::new().unwrap();
        let key = selector
            .add(
                &BorrowedHook(fd, Arc::clone(&hook) as Arc<dyn ReadinessHook>),
                Interest::Readable,
            )
            .unwrap();
        for _ in 0..3 {
            assert!(selector.try_wait().is_err());
        }
        // Armed by the first wait only: the idle endpoint costs nothing more.
        assert_eq!(hook.armed.load(Ordering::SeqCst), 1);
        writer.send(b"w").unwrap();
        assert_eq!(selector.wait().unwrap(), [key]);
        assert_eq!(hook.disarmed.load(Ordering::SeqCst), 1);
        // Ready when armed: reported without sleeping, and not armed.
        hook.ready.store(true, Ordering::SeqCst);
        assert_eq!(selector.wait().unwrap(), [key]);
        assert_eq!(hook.armed.load(Ordering::SeqCst), 1);
        hook.ready.store(false, Ordering::SeqCst);
        assert!(selector.try_wait().is_err());
        assert_eq!(hook.armed.load(Ordering::SeqCst), 2);
        // Removing an armed endpoint disarms it.
        selector.remove(key).unwrap();
        assert_eq!(hook.disarmed.load(Ordering::SeqCst), 2);
    }

    struct BorrowedHook(OwnedFd, Arc<dyn ReadinessHook>);

    impl Source for BorrowedHook {
        fn readiness(&self, _interest: Interest) -> Result<Readiness> {
            let fd = self.0.try_clone().unwrap();
            Ok(Readiness::hooked(fd, Arc::clone(&self.1)))
        }
    }
}
