//! async/await on tokio for every endpoint: [`Async`] registers an endpoint's readiness
//! (the same [`Source`] a [`Selector`](crate::Selector) uses) with tokio's reactor.

use std::future::poll_fn;
use std::io::IoSlice;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::poll::PollFlags;
use tokio::io::Interest as TokioInterest;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{
    Deadline, Error, Interest, MessageReceiver, MessageSender, ReadReady, ReadinessHook, Result,
    Source, WriteReady,
};

/// An endpoint used from async code on a tokio runtime: any endpoint of the ipc-rs crates
/// (a queue, a pipe end, a socket, a channel end, a semaphore, a signal receiver, ...).
///
/// - Message endpoints ([`MessageReceiver`], [`MessageSender`]: queues, seqpacket and
///   datagram sockets, shared-memory channels, framed streams) get
///   [`recv`](Self::recv), [`recv_vec`](Self::recv_vec) and [`send`](Self::send); a
///   receiver's [`messages`](Self::messages) are a [`Stream`](futures_core::Stream), and a
///   sender is a [`Sink`](futures_sink::Sink) of `Vec<u8>`.
/// - Byte streams ([`ReadReady`], [`WriteReady`]: pipes, FIFOs, Unix and TCP streams) are
///   tokio's [`AsyncRead`] and [`AsyncWrite`].
/// - Event sources ([`TryNext`]: signal receivers, signalfds, queue notifications) are
///   [`Stream`](futures_core::Stream)s.
/// - Any other call (`try_accept`, `try_wait`, `try_recv_with_fds`, `try_wait_child`, ...)
///   runs through [`read_with`](Self::read_with) or [`write_with`](Self::write_with), and a
///   call that lends from the endpoint (a loan, a lock guard) follows
///   [`readable`](Self::readable) or [`writable`](Self::writable).
///
/// While a call would block, the task waits for the endpoint's readiness without blocking
/// the runtime's thread. The readiness is registered the first time a call would block
/// (inside a runtime), with the reactor of that runtime.
///
/// **Descriptors.** The registration holds a duplicate of the endpoint's descriptor (one
/// for both directions), so an endpoint on a runtime costs two descriptors: mind
/// `RLIMIT_NOFILE` with many connections (`ipc_socket::MessageServerOptions::serve` serves
/// thousands of clients on a runtime at one descriptor each). Registering the endpoint's
/// own descriptor would be unsound: tokio requires a registered descriptor to stay open
/// and the same file until it is deregistered (`AsyncFd::register`), and
/// [`get_mut`](Self::get_mut) and the closures of [`read_with`](Self::read_with) hand out
/// `&mut T`, through which the endpoint, and its descriptor, can be replaced.
///
/// **Cancellation.** Every call runs only between two awaits and its result is returned at
/// once, so dropping a future (a `select!` that took another branch, a timeout) loses
/// nothing the call accepted: the next call gets the message. A dropped future withdraws
/// its wake-up request. Each method's documentation says whether it is cancellation-safe;
/// the repository's `ARCHITECTURE.md` gathers them in a table.
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
    /// A message the `Sink` accepted when there was no room: sent before any other.
    unsent: Option<Vec<u8>>,
}

/// An endpoint's readiness for one interest, registered with a runtime's reactor.
struct Registered {
    /// A descriptor endpoint's copy is registered once for both directions and shared by
    /// both interests; a hooked endpoint has one per interest.
    fd: Arc<AsyncFd<OwnedFd>>,
    hook: Option<Arc<dyn ReadinessHook>>,
    /// Whether the hook is armed: a wait is under way, kept across polls (of a stream, of
    /// a reader) until the descriptor fires or the registration is dropped.
    armed: AtomicBool,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("hooked", &self.hook.is_some())
            .field("armed", &self.armed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Registered {
    /// Ends a wait that armed the hook: the disarm withdraws the request and empties the
    /// descriptor.
    fn withdraw(&self) {
        if self.armed.swap(false, Ordering::Relaxed) {
            if let Some(hook) = &self.hook {
                hook.disarm();
            }
        }
    }

    /// Waits for a descriptor's readiness; the guard clears it if the call would block.
    fn poll_fd(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>>> {
        let guard = match interest {
            Interest::Readable => ready!(self.fd.poll_read_ready(cx)),
            Interest::Writable => ready!(self.fd.poll_write_ready(cx)),
        };
        Poll::Ready(guard.map_err(reactor_error))
    }

    /// Waits until a hooked endpoint may be ready: `true` if arming found it ready,
    /// `false` once the armed hook fired.
    fn poll_hook(&self, cx: &mut Context<'_>, hook: &dyn ReadinessHook) -> Poll<Result<bool>> {
        if self.armed.load(Ordering::Relaxed) {
            let fired = match ready!(self.fd.poll_read_ready(cx)) {
                Ok(mut guard) => {
                    // Emptied by the disarm that follows: the next event is a new wake-up.
                    guard.clear_ready();
                    Ok(false)
                }
                Err(err) => Err(reactor_error(err)),
            };
            self.withdraw();
            return Poll::Ready(fired);
        }
        if hook.arm()? {
            return Poll::Ready(Ok(true));
        }
        self.armed.store(true, Ordering::Relaxed);
        // Polled once armed, so that the reactor wakes this task.
        self.poll_hook(cx, hook)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.withdraw();
    }
}

fn reactor_error(err: std::io::Error) -> Error {
    Error::from(err).with_op("AsyncFd::ready")
}

/// Withdraws the wake-up request of a call's future when it is dropped, however it ends.
struct Call<'a, T> {
    this: &'a mut Async<T>,
    interest: Interest,
}

impl<T> Drop for Call<'_, T> {
    fn drop(&mut self) {
        if let Some(registered) = self.this.slot(self.interest) {
            registered.withdraw();
        }
    }
}

impl<T> Async<T> {
    /// Wraps `inner`; nothing is registered until the first wait.
    pub fn new(inner: T) -> Async<T> {
        Async {
            inner,
            read: None,
            write: None,
            unsent: None,
        }
    }

    /// The endpoint.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The endpoint, mutably (for its non-blocking calls). A message the
    /// [`Sink`](futures_sink::Sink) kept for want of room is not sent by them: flush the
    /// sink first.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The endpoint, unregistered from the runtime (a message the
    /// [`Sink`](futures_sink::Sink) kept unsent is dropped: flush it first).
    pub fn into_inner(self) -> T {
        self.inner
    }

    fn slot(&self, interest: Interest) -> Option<&Registered> {
        match interest {
            Interest::Readable => self.read.as_ref(),
            Interest::Writable => self.write.as_ref(),
        }
    }
}

impl<T: Source> Async<T> {
    /// Runs `op` (a non-blocking receive, accept or wait) until it does not fail with
    /// `WouldBlock`, waiting for the endpoint to be readable in between.
    ///
    /// Cancellation-safe when `op` is a call that either completes or changes nothing
    /// (every `try_` call of the ipc-rs crates is).
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
    /// Cancellation-safe as [`read_with`](Self::read_with) is.
    ///
    /// # Errors
    ///
    /// `op`'s error; the registration's.
    pub async fn write_with<R>(&mut self, op: impl FnMut(&mut T) -> Result<R>) -> Result<R> {
        self.with(Interest::Writable, op).await
    }

    /// Waits until the endpoint is readable now: a message is there, a semaphore can be
    /// taken, a mutex is free, or the next call ends at once otherwise (the peer is gone,
    /// an error). For calls that lend from the endpoint, which
    /// [`read_with`](Self::read_with) cannot return: a borrowed message, a lock guard.
    ///
    /// Another handle or process may take what was ready first, and an endpoint in shared
    /// memory reports what may be ready (a held mutex every 20 ms, so that a holder's death
    /// is found), so the next call can still fail with `WouldBlock`: wait again then.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> ipc_core::Result<()> {
    /// use ipc_core::Async;
    ///
    /// let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
    /// let mut b = Async::new(b);
    /// a.send(b"ping")?;
    /// // A shared-memory consumer's loan is taken the same way, with `try_borrow`.
    /// let mut buf = [0u8; 16];
    /// let n = loop {
    ///     b.readable().await?;
    ///     match b.get_ref().recv(&mut buf) {
    ///         Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
    ///         other => break other?,
    ///     }
    /// };
    /// assert_eq!(&buf[..n], b"ping");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancellation-safe: it takes nothing.
    ///
    /// # Errors
    ///
    /// The registration's; the readiness check's.
    pub async fn readable(&mut self) -> Result<()> {
        self.ready(Interest::Readable).await
    }

    /// Waits until the endpoint is writable now (room for a largest message, for a loan),
    /// as [`readable`](Self::readable) does for input.
    ///
    /// # Errors
    ///
    /// The registration's; the readiness check's.
    pub async fn writable(&mut self) -> Result<()> {
        self.ready(Interest::Writable).await
    }

    async fn with<R>(
        &mut self,
        interest: Interest,
        mut op: impl FnMut(&mut T) -> Result<R>,
    ) -> Result<R> {
        let call = Call {
            this: self,
            interest,
        };
        poll_fn(|cx| call.this.poll_op(cx, interest, &mut op)).await
    }

    async fn ready(&mut self, interest: Interest) -> Result<()> {
        let call = Call {
            this: self,
            interest,
        };
        poll_fn(|cx| call.this.poll_ready(cx, interest)).await
    }

    /// This interest's registration, made now if it is not yet.
    fn registered(&mut self, interest: Interest) -> Result<(&mut T, &Registered)> {
        let Async {
            inner, read, write, ..
        } = self;
        let (slot, other) = match interest {
            Interest::Readable => (read, write),
            Interest::Writable => (write, read),
        };
        let registered = match slot {
            Some(registered) => registered,
            None => slot.insert(register(inner, interest, other.as_ref())?),
        };
        Ok((inner, registered))
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for readiness in
    /// between.
    fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut impl FnMut(&mut T) -> Result<R>,
    ) -> Poll<Result<R>> {
        // A task whose endpoint is always ready yields to the others now and then, as
        // tokio's own types make it: each call that ends spends the task's budget.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let result = ready!(self.poll_call(cx, interest, op));
        coop.made_progress();
        Poll::Ready(result)
    }

    fn poll_call<R>(
        &mut self,
        cx: &mut Context<'_>,
        interest: Interest,
        op: &mut impl FnMut(&mut T) -> Result<R>,
    ) -> Poll<Result<R>> {
        // Registered only once a call would block: a call that never waits costs nothing.
        let mut tried = false;
        if self.slot(interest).is_none() {
            match op(&mut self.inner) {
                Err(err) if err.is_would_block() => tried = true,
                other => return Poll::Ready(other),
            }
        }
        let (inner, registered) = self.registered(interest)?;
        match registered.hook.as_deref() {
            // A hook is armed (which checks the endpoint) only after a call would block.
            Some(hook) => loop {
                if !registered.armed.load(Ordering::Relaxed) && !std::mem::take(&mut tried) {
                    match op(inner) {
                        Err(err) if err.is_would_block() => {}
                        other => return Poll::Ready(other),
                    }
                }
                ready!(registered.poll_hook(cx, hook))?;
            },
            // A descriptor's readiness is known to the reactor: as tokio's own types do,
            // await it first (at once if it is known ready) and clear it only when the
            // call would block, so that no call is made in vain.
            None => loop {
                let mut guard = ready!(registered.poll_fd(cx, interest))?;
                match op(inner) {
                    Err(err) if err.is_would_block() => guard.clear_ready(),
                    other => return Poll::Ready(other),
                }
            },
        }
    }

    /// Waits until the endpoint is ready now, as a `poll` of its descriptor says, or may
    /// be, as its hook says.
    fn poll_ready(&mut self, cx: &mut Context<'_>, interest: Interest) -> Poll<Result<()>> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let result = ready!(self.poll_readiness(cx, interest));
        coop.made_progress();
        Poll::Ready(result)
    }

    fn poll_readiness(&mut self, cx: &mut Context<'_>, interest: Interest) -> Poll<Result<()>> {
        let (_, registered) = self.registered(interest)?;
        match registered.hook.as_deref() {
            // Ready when arming found it so, or once the hook fired: the endpoint may be
            // ready then, and only the call can tell (a mutex's holder that died wakes
            // nobody; its hook fires on a timer, and only `try_lock` finds the death).
            Some(hook) => Poll::Ready(ready!(registered.poll_hook(cx, hook)).map(drop)),
            None => loop {
                let mut guard = ready!(registered.poll_fd(cx, interest))?;
                // The reactor's readiness may be stale: ask the descriptor.
                let events = match interest {
                    Interest::Readable => PollFlags::POLLIN,
                    Interest::Writable => PollFlags::POLLOUT,
                };
                let now = crate::internal::poll_fd_unwatched(
                    guard.get_inner(),
                    events,
                    Deadline::after(Duration::ZERO),
                    "poll",
                );
                match now {
                    Err(err) if err.is_timeout() => guard.clear_ready(),
                    other => return Poll::Ready(other.map(drop)),
                }
            },
        }
    }
}

impl<T: MessageReceiver + Source> Async<T> {
    /// Receives the next message into `buf`, waiting as long as it takes, and returns its
    /// length: [`MessageReceiver::recv`] without blocking the runtime.
    ///
    /// Cancellation-safe: a message is taken only by a call that returns it.
    ///
    /// # Errors
    ///
    /// As [`MessageReceiver::recv`]; the registration's.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_with(|inner| inner.try_recv(buf)).await
    }

    /// Receives the next message into `buf`, resized to it as
    /// [`MessageReceiver::recv_vec`] does.
    ///
    /// Cancellation-safe, as [`recv`](Self::recv) is (`buf` may have been resized).
    ///
    /// # Errors
    ///
    /// As [`MessageReceiver::recv_vec`]; the registration's.
    pub async fn recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        buf.resize(buf.capacity().max(self.inner.max_message_size()), 0);
        let result = self.read_with(|inner| try_recv_vec(inner, buf)).await;
        buf.truncate(*result.as_ref().unwrap_or(&0));
        result
    }

    /// The messages, as a [`Stream`](futures_core::Stream) of byte strings that ends when
    /// no sender is left and the queued messages are drained (the peer-gone error); any
    /// other error is an item, and the stream goes on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> ipc_core::Result<()> {
    /// use ipc_core::{Async, FramedReader, FramedWriter};
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    ///
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut writer = FramedWriter::new(a);
    /// writer.send(b"one")?;
    /// writer.send(b"two")?;
    /// drop(writer);
    /// let mut reader = Async::new(FramedReader::new(b));
    /// let mut messages = reader.messages();
    /// // With `futures::StreamExt`: `while let Some(msg) = messages.next().await`.
    /// let mut got = Vec::new();
    /// while let Some(msg) =
    ///     poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut messages), cx)).await
    /// {
    ///     got.push(msg?);
    /// }
    /// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancellation-safe: a message is taken only by the poll that returns it.
    pub fn messages(&mut self) -> Messages<'_, T> {
        let scratch = vec![0; self.inner.max_message_size()];
        Messages {
            endpoint: self,
            scratch,
            ended: false,
        }
    }
}

/// `try_recv` into `buf`, grown to the message's length if it was too small.
fn try_recv_vec<T: MessageReceiver>(inner: &mut T, buf: &mut Vec<u8>) -> Result<usize> {
    match inner.try_recv(buf) {
        Err(err) => match err.needed_len() {
            Some(needed) if needed > buf.len() => {
                buf.resize(needed, 0);
                inner.try_recv(buf)
            }
            _ => Err(err),
        },
        ok => ok,
    }
}

/// The messages of an [`Async`] receiver, as a [`Stream`](futures_core::Stream): see
/// [`Async::messages`].
#[derive(Debug)]
pub struct Messages<'a, T> {
    endpoint: &'a mut Async<T>,
    /// Received into, then copied out at the message's length.
    scratch: Vec<u8>,
    ended: bool,
}

impl<T: MessageReceiver + Source + Unpin> futures_core::Stream for Messages<'_, T> {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let scratch = &mut this.scratch;
        let received = ready!(this.endpoint.poll_op(
            cx,
            Interest::Readable,
            &mut |inner: &mut T| try_recv_vec(inner, scratch)
        ));
        match received {
            Ok(n) => Poll::Ready(Some(Ok(this.scratch[..n].to_vec()))),
            Err(err) if err.is_peer_gone() => {
                this.ended = true;
                Poll::Ready(None)
            }
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }
}

impl<T> Drop for Messages<'_, T> {
    /// A stream dropped while it waited withdraws its wake-up request.
    fn drop(&mut self) {
        if let Some(registered) = self.endpoint.slot(Interest::Readable) {
            registered.withdraw();
        }
    }
}

impl<T: MessageSender + Source> Async<T> {
    /// Sends `msg`, waiting as long as it takes for room: [`MessageSender::send`] without
    /// blocking the runtime. A message the [`Sink`](futures_sink::Sink) kept for want of
    /// room goes first.
    ///
    /// Cancellation-safe: a dropped future has sent `msg` whole or not at all.
    ///
    /// # Errors
    ///
    /// As [`MessageSender::send`]; the registration's.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        let call = Call {
            this: self,
            interest: Interest::Writable,
        };
        poll_fn(|cx| {
            ready!(call.this.poll_unsent(cx))?;
            call.this
                .poll_op(cx, Interest::Writable, &mut |inner: &mut T| {
                    inner.try_send(msg)
                })
        })
        .await
    }

    /// Sends the message the `Sink` kept, if any.
    fn poll_unsent(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(msg) = self.unsent.take() else {
            return Poll::Ready(Ok(()));
        };
        let sent = self.poll_op(cx, Interest::Writable, &mut |inner: &mut T| {
            inner.try_send(&msg)
        });
        if sent.is_pending() {
            self.unsent = Some(msg);
        }
        sent
    }

    /// Sends what the `Sink` kept, then what the endpoint kept
    /// ([`MessageSender::try_flush`]).
    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_unsent(cx))?;
        // Asked first: a registration that does not know the endpoint writable would
        // otherwise wait for room that nothing needs.
        match self.inner.try_flush() {
            Err(err) if err.is_would_block() => {
                self.poll_op(cx, Interest::Writable, &mut T::try_flush)
            }
            done => Poll::Ready(done),
        }
    }
}

/// Messages sent in order, each whole: `poll_ready` waits until no accepted message is
/// waiting for room; `start_send` sends at once, or keeps a message that finds no room
/// (one at a time) to send before any other; `poll_flush` and `poll_close` return once
/// everything accepted is sent (dropping the endpoint closes it). Cancellation-safe: a
/// message is accepted only by a `start_send` that returns `Ok`, and an accepted message
/// is never lost to a dropped future (only to dropping the endpoint before a flush).
///
/// Items are `Vec<u8>`, the items of [`Async::messages`], so a stream of messages can be
/// forwarded to a sink (`messages.forward(sink)`); [`Async::send`] sends a slice.
impl<T: MessageSender + Source + Unpin> futures_sink::Sink<Vec<u8>> for Async<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_unsent(cx)
    }

    /// # Errors
    ///
    /// As [`MessageSender::try_send`], but for `WouldBlock`; an error if a message is
    /// still waiting for room (`poll_ready` did not return `Ready(Ok)` first).
    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<()> {
        let this = self.get_mut();
        if this.unsent.is_some() {
            return Err(Error::new(
                "Sink::start_send",
                std::io::ErrorKind::Other,
                "a message is still waiting for room: call poll_ready (or use SinkExt::send) before each start_send",
            ));
        }
        match this.inner.try_send(&item) {
            Err(err) if err.is_would_block() => {
                this.unsent = Some(item);
                Ok(())
            }
            sent => sent,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_all(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_all(cx)
    }
}

/// An endpoint that delivers a sequence of events through a non-blocking call: a signal
/// receiver, a signalfd, a queue's notification. `Async` of one is a
/// [`Stream`](futures_core::Stream) of them.
pub trait TryNext: Source {
    /// What one event is.
    type Item;

    /// Takes the next event if there is one now; otherwise fails with
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock).
    ///
    /// # Errors
    ///
    /// `WouldBlock`, or the endpoint's error.
    fn try_next(&mut self) -> Result<Self::Item>;
}

/// Each item is the next event, or the error of taking it; the stream does not end.
/// Cancellation-safe: an event is taken only by the poll that returns it.
impl<T: TryNext + Unpin> futures_core::Stream for Async<T> {
    type Item = Result<T::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_op(cx, Interest::Readable, &mut T::try_next)
            .map(Some)
    }
}

/// Reads what is there, waiting for input while there is none. Cancellation-safe.
impl<T: ReadReady + Source + Unpin> AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let dst = buf.initialize_unfilled();
        let n = ready!(this.poll_op(cx, Interest::Readable, &mut |inner: &mut T| {
            inner.try_read(dst)
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Writes what fits, waiting for room while none is free. Cancellation-safe. Shutting down
/// ends the writing direction of a socket; a pipe's write end is closed by dropping it.
impl<T: WriteReady + Source + Unpin> AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(this.poll_op(cx, Interest::Writable, &mut |inner: &mut T| {
            inner.try_write_vectored(bufs)
        }));
        Poll::Ready(written.map_err(std::io::Error::from))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here: done at once.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().inner.shutdown_write().map_err(Into::into))
    }
}

/// Registers the readiness of `source` for `interest` with the current runtime, sharing
/// `other`'s (the other interest's) registration when both are the endpoint's descriptor.
fn register<T: Source>(
    source: &T,
    interest: Interest,
    other: Option<&Registered>,
) -> Result<Registered> {
    // Asked for even when shared: it says whether the endpoint can wait this way at all.
    let readiness = source.readiness(interest)?;
    let (fd, fd_interest, hook) = readiness.into_parts();
    let tokio_interest = match (&hook, fd_interest) {
        // A descriptor endpoint is registered for both directions at once, as tokio's own
        // types are: one descriptor, not two, and the same wake-ups as theirs (an
        // endpoint registered for input only slept through the room events a socket gets
        // each time its peer reads; kept awake by them, it answered 1.2–1.3× later).
        (None, _) => TokioInterest::READABLE | TokioInterest::WRITABLE,
        (Some(_), Interest::Readable) => TokioInterest::READABLE,
        (Some(_), Interest::Writable) => TokioInterest::WRITABLE,
    };
    if let (None, Some(other)) = (&hook, other.filter(|other| other.hook.is_none())) {
        return Ok(Registered {
            fd: Arc::clone(&other.fd),
            hook: None,
            armed: AtomicBool::new(false),
        });
    }
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
    Ok(Registered {
        fd: Arc::new(fd),
        hook,
        armed: AtomicBool::new(false),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::{UnixDatagram, UnixStream};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A datagram socket as an event source: each datagram is one event.
    struct Events(UnixDatagram);

    impl Source for Events {
        fn readiness(&self, interest: Interest) -> Result<crate::Readiness> {
            self.0.readiness(interest)
        }
    }

    impl TryNext for Events {
        type Item = Vec<u8>;

        fn try_next(&mut self) -> Result<Vec<u8>> {
            let mut buf = [0u8; 64];
            let n = crate::internal::retry_eintr(|| {
                nix::sys::socket::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&self.0),
                    &mut buf,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                )
                .map_err(|e| Error::from_errno("recv", e))
            })?;
            Ok(buf[..n].to_vec())
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_stream_socket_is_async_read_and_write_and_shuts_down_its_writing_side() {
        runtime().block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let (mut a, mut b) = (Async::new(a), Async::new(b));
            // More than the socket buffer holds: the writer waits for the reader.
            let sent: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
            let writer = async {
                a.write_all(&sent).await.unwrap();
                a.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let reader = b.read_to_end(&mut got);
            let ((), read) = tokio::join!(writer, reader);
            assert_eq!(read.unwrap(), sent.len());
            assert!(got == sent);
        });
    }

    #[test]
    fn an_event_source_is_a_stream_that_loses_no_event_to_a_dropped_poll() {
        runtime().block_on(async {
            let (a, b) = UnixDatagram::pair().unwrap();
            let mut events = Async::new(Events(b));
            // Nothing there: a poll that is dropped takes nothing.
            let waited = tokio::time::timeout(
                Duration::from_millis(20),
                poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut events), cx)),
            )
            .await;
            assert!(waited.is_err());
            a.send(b"one").unwrap();
            a.send(b"two").unwrap();
            for want in [&b"one"[..], b"two"] {
                let next =
                    poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut events), cx)).await;
                assert_eq!(next.unwrap().unwrap(), want);
            }
        });
    }

    #[test]
    fn readable_waits_until_input_is_there_now() {
        runtime().block_on(async {
            let (a, b) = UnixDatagram::pair().unwrap();
            let mut b = Async::new(b);
            a.send(b"x").unwrap();
            b.readable().await.unwrap();
            // Taken behind the reactor's back: its readiness is stale, and readable() must
            // not trust it.
            let mut buf = [0u8; 4];
            b.get_ref().recv(&mut buf).unwrap();
            let stale = tokio::time::timeout(Duration::from_millis(20), b.readable()).await;
            assert!(stale.is_err(), "readable() returned with nothing to read");
            a.send(b"y").unwrap();
            b.readable().await.unwrap();
            assert_eq!(b.get_ref().recv(&mut buf).unwrap(), 1);
        });
    }

    #[test]
    fn a_call_outside_a_runtime_that_would_block_is_an_error_not_a_panic() {
        let (_a, b) = UnixDatagram::pair().unwrap();
        let mut events = Async::new(Events(b));
        let polled = std::pin::pin!(events.read_with(TryNext::try_next));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match polled.poll(&mut cx) {
            Poll::Ready(Err(err)) => assert!(err.to_string().contains("tokio runtime")),
            other => panic!("expected an error, got {:?}", other.map(|r| r.map(drop))),
        }
    }

    #[test]
    fn a_task_whose_endpoint_is_always_ready_lets_the_others_run() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let (a, b) = UnixDatagram::pair().unwrap();
        // Fewer than a socket buffer holds, more than a task's budget (128).
        let count = 200;
        for _ in 0..count {
            a.send(b"x").unwrap();
        }
        let mut b = Async::new(b);
        let ran = Arc::new(AtomicBool::new(false));
        let received_before_the_other_ran = runtime.block_on(async {
            let other = Arc::clone(&ran);
            let task = tokio::spawn(async move { other.store(true, Ordering::SeqCst) });
            let mut buf = [0u8; 8];
            let mut before = None;
            for i in 0..count {
                b.read_with(|b| b.recv(&mut buf).map_err(Error::from))
                    .await
                    .unwrap();
                if before.is_none() && ran.load(Ordering::SeqCst) {
                    before = Some(i);
                }
            }
            task.await.unwrap();
            before
        });
        // Every receive was ready at once; the budget still made the loop yield.
        assert!(
            received_before_the_other_ran.is_some_and(|i| i < count - 1),
            "{received_before_the_other_ran:?}"
        );
    }
}
