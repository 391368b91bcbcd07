//! An event-driven request-reply server: a few threads serve any number of clients over
//! seqpacket, Unix stream or TCP connections, one descriptor each.

#[cfg(feature = "tokio")]
mod asynch;
mod transport;

use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ipc_core::{Error, Result};
use polling::{Event, Events, PollMode, Poller};

use transport::Connection;
pub use transport::{Client, ServerListener};

/// What a [`MessageServer`] runs for every request: the request, who sent it, and the
/// reply to fill (left empty, no reply is sent).
type Handler = dyn Fn(&[u8], &Client, &mut Vec<u8>) + Send + Sync;

/// How many connections a thread accepts (or turns away) before it serves its clients.
const ACCEPTS_PER_TURN: usize = 64;

/// The key of the listener in every worker's poller; connections are keyed by their slot
/// plus one. (`polling` keeps `usize::MAX` for its own wake-ups.)
const LISTENER: usize = 0;

/// How a [`MessageServer`] runs: how many threads, how large a request may be, and how
/// many requests of one client are served before the others get their turn.
#[derive(Clone, Debug)]
pub struct MessageServerOptions {
    threads: usize,
    max_message_size: usize,
    burst: usize,
}

impl Default for MessageServerOptions {
    fn default() -> Self {
        MessageServerOptions {
            threads: 2,
            max_message_size: crate::DEFAULT_MAX_MESSAGE_SIZE,
            burst: 16,
        }
    }
}

impl MessageServerOptions {
    /// Two threads, requests up to [`DEFAULT_MAX_MESSAGE_SIZE`](crate::DEFAULT_MAX_MESSAGE_SIZE),
    /// bursts of 16.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of threads serving (at least one): each waits on its own `epoll` set and
    /// serves the clients it accepted.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The largest request, in bytes; a client that sends a larger one is disconnected.
    #[must_use]
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max.max(1);
        self
    }

    /// How many requests of one client a thread serves in a row before it turns to the
    /// other ready clients (at least one): what keeps a busy client from starving the rest.
    #[must_use]
    pub fn burst(mut self, burst: usize) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// Starts serving the connections of `listener` (seqpacket, Unix stream or TCP),
    /// running `handler` for each request with the [`Client`] that sent it.
    ///
    /// # Errors
    ///
    /// If a thread or its `epoll` set cannot be made.
    pub fn start<L, H>(&self, listener: L, handler: H) -> Result<MessageServer>
    where
        L: ServerListener,
        H: Fn(&[u8], &Client, &mut Vec<u8>) + Send + Sync + 'static,
    {
        let pollers = (0..self.threads)
            .map(|_| Poller::new().map_err(|e| Error::from(e).with_op("epoll_create1")))
            .collect::<Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            load: (0..self.threads).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: (0..self.threads).map(|_| Mutex::default()).collect(),
            pollers,
            listener: Box::new(listener),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let mut threads = Vec::with_capacity(self.threads);
        for index in 0..self.threads {
            let worker = Worker {
                shared: Arc::clone(&shared),
                index,
                handler: Arc::clone(&handler),
                options: self.clone(),
                clients: Vec::new(),
                free: Vec::new(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("ipc-message-server-{index}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    let server = MessageServer { shared, threads };
                    let _ = server.shutdown();
                    return Err(Error::from(err).with_op("thread::spawn"));
                }
            }
        }
        Ok(MessageServer { shared, threads })
    }
}

/// An event-driven request-reply server: a few threads (two by default) serve any number
/// of clients, each connection costing one descriptor and no thread. It serves a
/// [`SeqpacketListener`](crate::SeqpacketListener) (each message a seqpacket message), a
/// [`StreamListener`](crate::StreamListener) or a [`TcpAcceptor`](crate::TcpAcceptor)
/// (each message framed as [`FramedWriter`](crate::FramedWriter) writes it; a stream
/// client also costs a read buffer of its largest message, up to 64 KiB, so set
/// [`max_message_size`](MessageServerOptions::max_message_size) for small messages). A
/// handler answers each request with a reply; requests of one client are answered in
/// order.
///
/// Each thread waits on its own `epoll` set; whichever accepts a connection gives it to
/// the thread with the fewest clients, which serves it a burst of requests at a time, so
/// that no client starves the others. A client that does not read its replies is not read
/// from until it does (one reply is kept for it, no more). A handler that panics loses its
/// client, not the server. Out of descriptors, the listener turns new clients away at once
/// (see the crate's docs) and the connected ones are served on.
/// [`shutdown`](MessageServer::shutdown) (or dropping the server) disconnects every client
/// and waits for the threads.
///
/// ```
/// use ipc_socket::{MessageServerOptions, Seqpacket, SeqpacketListener, UnixAddr};
///
/// # let dir = std::env::temp_dir().join(format!("message-server-doc-{}", std::process::id()));
/// # std::fs::create_dir(&dir)?;
/// let addr = UnixAddr::path(dir.join("upper.sock"));
/// let server = MessageServerOptions::new().start(
///     SeqpacketListener::bind(&addr)?,
///     |request, _peer, reply| reply.extend(request.to_ascii_uppercase()),
/// )?;
/// let client = Seqpacket::connect(&addr)?;
/// client.send(b"hello")?;
/// let mut buf = [0u8; 16];
/// let n = client.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"HELLO");
/// server.shutdown()?;
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MessageServer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<()>>>,
}

struct Shared {
    stop: AtomicBool,
    clients: AtomicUsize,
    /// How many clients each thread serves (or has been handed).
    load: Vec<AtomicUsize>,
    /// Connections accepted by one thread for another, which has fewer clients.
    inboxes: Vec<Mutex<Vec<Served>>>,
    /// One per thread; only the thread adds to its own.
    pollers: Vec<Poller>,
    listener: Box<dyn ServerListener>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("clients", &self.clients)
            .field("load", &self.load)
            .finish_non_exhaustive()
    }
}

impl MessageServer {
    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    /// Stops accepting, disconnects every client and waits for the threads.
    ///
    /// # Errors
    ///
    /// The first error a thread stopped on (an `epoll` failure); the others are dropped.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for poller in &self.shared.pollers {
            let _ = poller.notify();
        }
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            let ended = thread.join().unwrap_or_else(|_| {
                Err(Error::new(
                    "MessageServer",
                    std::io::ErrorKind::Other,
                    "a server thread panicked (in the handler?)",
                ))
            });
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }
}

impl Drop for MessageServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// One connected client.
struct Served {
    conn: Box<dyn Connection>,
    client: Client,
}

/// What a thread owns: its clients, by slot.
struct Worker {
    shared: Arc<Shared>,
    index: usize,
    handler: Arc<Handler>,
    options: MessageServerOptions,
    clients: Vec<Option<Served>>,
    free: Vec<usize>,
}

impl Worker {
    fn poller(&self) -> &Poller {
        &self.shared.pollers[self.index]
    }

    fn run(mut self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let listener = shared.listener.as_fd();
        crate::sys::poller_add(self.poller(), listener, Event::readable(LISTENER))
            .map_err(|e| Error::from(e).with_op("epoll_ctl"))?;
        let mut events = Events::new();
        let mut request = vec![0u8; self.options.max_message_size];
        let mut reply = Vec::new();
        let result = loop {
            events.clear();
            match self.poller().wait(&mut events, None) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => break Err(Error::from(err).with_op("epoll_wait")),
            }
            if self.shared.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            self.take_handed();
            for event in events.iter() {
                if event.key == LISTENER {
                    self.accept();
                } else if event.writable {
                    self.flush(event.key - 1, &mut request, &mut reply);
                } else {
                    self.serve(event.key - 1, &mut request, &mut reply);
                }
            }
        };
        let _ = self.poller().delete(listener);
        for slot in 0..self.clients.len() {
            self.disconnect(slot);
        }
        result
    }

    /// Accepts what is waiting (another thread may have taken it first), and gives each
    /// connection to the thread with the fewest clients: whichever thread wins an accept,
    /// the clients end up spread evenly.
    fn accept(&mut self) {
        // A flood of new clients (or of clients turned away) gets a turn, not the thread:
        // the level-triggered listener is reported again after the clients are served.
        for _ in 0..ACCEPTS_PER_TURN {
            match self
                .shared
                .listener
                .accept_connection(self.options.max_message_size)
            {
                Ok((conn, client)) => {
                    let served = Served { conn, client };
                    let load = &self.shared.load;
                    let target = (0..load.len())
                        .min_by_key(|&i| (load[i].load(Ordering::Relaxed), i != self.index))
                        .unwrap_or(self.index);
                    load[target].fetch_add(1, Ordering::Relaxed);
                    self.shared.clients.fetch_add(1, Ordering::Relaxed);
                    if target == self.index {
                        self.adopt(served);
                    } else {
                        self.shared.inboxes[target]
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(served);
                        let _ = self.shared.pollers[target].notify();
                    }
                }
                // Out of descriptors, a waiting client was turned away: on to the next.
                Err(err) if err.is_limit_exceeded() => {}
                // Out of descriptors with no client turned away (another opener had the
                // reserve's slot): the listener stays ready, so pause rather than spin.
                Err(err) if out_of_descriptors(&err) => {
                    std::thread::sleep(OUT_OF_DESCRIPTORS_PAUSE);
                    return;
                }
                // Nothing waits (another thread took it), or a failed accept: the listener
                // is looked at again after the clients' turn.
                Err(_) => return,
            }
        }
    }

    /// Takes the connections another thread accepted for this one.
    fn take_handed(&mut self) {
        let handed = std::mem::take(
            &mut *self.shared.inboxes[self.index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for served in handed {
            self.adopt(served);
        }
    }

    /// Serves a connection on this thread (its client is counted already).
    fn adopt(&mut self, served: Served) {
        let slot = self.free.last().copied().unwrap_or(self.clients.len());
        if crate::sys::poller_add(self.poller(), served.conn.fd(), Event::readable(slot + 1))
            .is_err()
        {
            // Not watched, it would never be answered: turned away instead.
            self.uncount();
            return;
        }
        if slot == self.clients.len() {
            self.clients.push(Some(served));
        } else {
            self.free.pop();
            self.clients[slot] = Some(served);
        }
    }

    fn uncount(&self) {
        self.shared.load[self.index].fetch_sub(1, Ordering::Relaxed);
        self.shared.clients.fetch_sub(1, Ordering::Relaxed);
    }

    /// Answers a burst of the client's requests.
    fn serve(&mut self, slot: usize, request: &mut [u8], reply: &mut Vec<u8>) {
        let burst = self.options.burst;
        let poller = &self.shared.pollers[self.index];
        let Some(Some(served)) = self.clients.get_mut(slot) else {
            return;
        };
        for _ in 0..burst {
            let len = match served.conn.try_recv(request) {
                Ok(len) => len,
                Err(err) if err.is_would_block() => return,
                // Gone, or a request above the maximum: the client is disconnected.
                Err(_) => return self.disconnect(slot),
            };
            reply.clear();
            if !answer(&*self.handler, &request[..len], &served.client, reply) {
                return self.disconnect(slot);
            }
            if reply.is_empty() {
                continue;
            }
            match served.conn.send(reply) {
                Ok(true) => {}
                Ok(false) => {
                    // No room for all of it: wait for room instead of requests.
                    let watching = poller.modify_with_mode(
                        served.conn.fd(),
                        Event::writable(slot + 1),
                        PollMode::Level,
                    );
                    if watching.is_err() {
                        self.disconnect(slot);
                    }
                    return;
                }
                Err(_) => return self.disconnect(slot),
            }
        }
        // More may be waiting: the level-triggered set reports it again after the others.
    }

    /// Sends what a client had no room for, then serves it again.
    fn flush(&mut self, slot: usize, request: &mut [u8], reply: &mut Vec<u8>) {
        let poller = &self.shared.pollers[self.index];
        let Some(Some(served)) = self.clients.get_mut(slot) else {
            return;
        };
        match served.conn.flush() {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => return self.disconnect(slot),
        }
        if poller
            .modify_with_mode(served.conn.fd(), Event::readable(slot + 1), PollMode::Level)
            .is_err()
        {
            return self.disconnect(slot);
        }
        self.serve(slot, request, reply);
    }

    fn disconnect(&mut self, slot: usize) {
        if let Some(served) = self.clients.get_mut(slot).and_then(Option::take) {
            // Out of the set before the descriptor closes.
            let _ = self.poller().delete(served.conn.fd());
            drop(served);
            self.free.push(slot);
            self.uncount();
        }
    }
}

/// Whether `err` says the process or the system is out of descriptors.
fn out_of_descriptors(err: &Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// How long a thread waits before accepting again when out of descriptors with no client
/// to turn away: long enough not to spin, short enough to go on as soon as one leaves.
const OUT_OF_DESCRIPTORS_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Runs the handler for one request: `false` if it panicked, and its client is to go (the
/// others are served on).
fn answer(handler: &Handler, request: &[u8], client: &Client, reply: &mut Vec<u8>) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| handler(request, client, reply))).is_ok()
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("clients", &self.clients.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("fd", &self.conn.fd().as_raw_fd())
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}
