//! async/await on tokio for every endpoint: [`Async`] registers an endpoint's readiness
//! (the same [`Source`] a [`Selector`](crate::Selector) uses) with tokio's reactor.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::Interest as TokioInterest;
use tokio::io::unix::AsyncFd;

use crate::{Error, Interest, ReadinessHook, Result, Source};

/// An endpoint used from async code on a tokio runtime: any endpoint of the ipc-rs crates
/// (a queue, a pipe end, a socket, a channel end, a semaphore, ...).
///
/// [`read_with`](Self::read_with) and [`write_with`](Self::write_with) run one of the
/// endpoint's non-blocking calls (`try_recv`, `try_send`, `try_accept`, `try_wait`, ...)
/// and, while it would block, wait for the endpoint's readiness without blocking the
/// runtime's thread. The readiness is registered the first time it is needed (inside a
/// runtime), with the reactor of that runtime.
///
/// **Cancellation.** The call runs only between two awaits and its result is returned at
/// once, so dropping the future (a `select!` that took another branch, a timeout) loses
/// nothing the call accepted: the next call gets the message. A waiting future that is
/// dropped withdraws its wake-up request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> ipc_core::Result<()> {
/// use ipc_core::Async;
///
/// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
/// a.set_nonblocking(true)?;
/// let mut a = Async::new(a);
/// b.send(b"ping")?;
/// let mut buf = [0u8; 16];
/// let n = a.read_with(|a| a.recv(&mut buf).map_err(ipc_core::Error::from)).await?;
/// assert_eq!(&buf[..n], b"ping");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Async<T> {
    inner: T,
    read: Option<Registered>,
    write: Option<Registered>,
}

struct Registered {
    fd: AsyncFd<OwnedFd>,
    hook: Option<Arc<dyn ReadinessHook>>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("hooked", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

/// Disarms a hook when the wait that armed it ends, however it ends (a dropped future too).
struct Armed<'a>(&'a dyn ReadinessHook);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

impl<T> Async<T> {
    /// Wraps `inner`; nothing is registered until the first wait.
    pub fn new(inner: T) -> Async<T> {
        Async {
            inner,
            read: None,
            write: None,
        }
    }

    /// The endpoint.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The endpoint, mutably (for its non-blocking calls).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The endpoint, unregistered from the runtime.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Source> Async<T> {
    /// Runs `op` (a non-blocking receive, accept or wait) until it does not fail with
    /// `WouldBlock`, waiting for the endpoint to be readable in between.
    ///
    /// # Errors
    ///
    /// `op`'s error; the registration's (no runtime with I/O enabled, out of descriptors).
    pub async fn read_with<R>(&mut self, op: impl FnMut(&mut T) -> Result<R>) -> Result<R> {
        self.with(Interest::Readable, op).await
    }

    /// Runs `op` (a non-blocking send or write) until it does not fail with `WouldBlock`,
    /// waiting for room in between.
    ///
    /// # Errors
    ///
    /// `op`'s error; the registration's.
    pub async fn write_with<R>(&mut self, op: impl FnMut(&mut T) -> Result<R>) -> Result<R> {
        self.with(Interest::Writable, op).await
    }

    async fn with<R>(
        &mut self,
        interest: Interest,
        mut op: impl FnMut(&mut T) -> Result<R>,
    ) -> Result<R> {
        let Async { inner, read, write } = self;
        let slot = match interest {
            Interest::Readable => read,
            Interest::Writable => write,
        };
        // Registered only once a call would block: a call that never waits costs nothing.
        if slot.is_none() {
            match op(inner) {
                Err(err) if err.is_would_block() => {}
                other => return other,
            }
            *slot = Some(register(inner, interest)?);
        }
        let Some(registered) = slot.as_ref() else {
            return Err(Error::new(
                "Async",
                std::io::ErrorKind::Other,
                "the registration just made is missing",
            ));
        };
        match &registered.hook {
            // A hook is armed (which checks the endpoint) before each wait.
            Some(hook) => loop {
                match op(inner) {
                    Err(err) if err.is_would_block() => {}
                    other => return other,
                }
                wait_hooked(registered, hook.as_ref()).await?;
            },
            // A descriptor's readiness is known to the reactor: as tokio's own types do,
            // await it first (at once if it is known ready) and clear it only when the
            // call would block, so that no call is made in vain.
            None => loop {
                let mut guard = match interest {
                    Interest::Readable => registered.fd.readable().await,
                    Interest::Writable => registered.fd.writable().await,
                }
                .map_err(|e| Error::from(e).with_op("AsyncFd::ready"))?;
                match op(inner) {
                    Err(err) if err.is_would_block() => guard.clear_ready(),
                    other => return other,
                }
            },
        }
    }
}

/// Registers the readiness of `source` for `interest` with the current runtime.
fn register<T: Source>(source: &T, interest: Interest) -> Result<Registered> {
    let readiness = source.readiness(interest)?;
    let (fd, fd_interest, hook) = readiness.into_parts();
    let tokio_interest = match fd_interest {
        Interest::Readable => TokioInterest::READABLE,
        Interest::Writable => TokioInterest::WRITABLE,
    };
    // Registering outside a runtime would panic in tokio: an error here instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::new(
            "Async",
            std::io::ErrorKind::Other,
            "not inside a tokio runtime: await this inside one (with I/O enabled)",
        ));
    }
    let fd = crate::sys::async_fd(fd, tokio_interest).map_err(|e| {
        Error::from(e).with_op("AsyncFd::register (is I/O enabled on the runtime?)")
    })?;
    Ok(Registered { fd, hook })
}

/// Waits until a hooked endpoint may be ready: arms the hook (done if it is ready already)
/// and waits for its descriptor, which the disarm (however the wait ends) empties.
async fn wait_hooked(registered: &Registered, hook: &dyn ReadinessHook) -> Result<()> {
    if hook.arm()? {
        return Ok(());
    }
    let _armed = Armed(hook);
    let mut guard = registered
        .fd
        .readable()
        .await
        .map_err(|e| Error::from(e).with_op("AsyncFd::ready"))?;
    // Emptied by the disarm that follows: the next event is a new wake-up.
    guard.clear_ready();
    Ok(())
}
