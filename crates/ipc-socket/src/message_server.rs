//! An event-driven request-reply server: a few threads serve any number of clients over
//! seqpacket, Unix stream or TCP connections, one descriptor each.

#[cfg(feature = "tokio")]
mod asynch;
mod transport;

use std::os::fd::{AsFd, AsRawFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ipc_core::{Error, Result};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use transport::Connection;
pub use transport::{Client, ServerListener};

/// What a [`MessageServer`] runs for every request: the request, who sent it, and the
/// reply to fill (left empty, no reply is sent).
type Handler = dyn Fn(&[u8], &Client, &mut Vec<u8>) + Send + Sync;

/// The reply a handler of [`MessageServerOptions::serve_async`] gives, in time.
#[cfg(feature = "tokio")]
type ReplyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;

/// What [`MessageServerOptions::serve_async`] runs for every request.
#[cfg(feature = "tokio")]
type AsyncHandler = dyn Fn(Vec<u8>, Client) -> ReplyFuture + Send + Sync;

/// A worker's handler.
#[derive(Clone)]
enum Handling {
    /// Answers at once.
    Sync(Arc<Handler>),
    /// Answers in time: a reply that is not ready when first asked is awaited by a task
    /// of its own, and the client is not read from meanwhile.
    #[cfg(feature = "tokio")]
    Async(Arc<AsyncHandler>),
}

/// How many connections a thread accepts (or turns away) before it serves its clients.
const ACCEPTS_PER_TURN: usize = 64;

/// The key of the listener in every worker's `epoll` set, and of its wake-up eventfd;
/// connections are keyed by their slot plus one.
const LISTENER: u64 = 0;
const WAKER: u64 = u64::MAX;

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

    /// The number of threads serving (at least one), and of workers: each worker has its
    /// own `epoll` set and clients, and a thread serves whichever worker is ready (on
    /// `serve`, with the `tokio` feature, the number of tasks, one per worker).
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
        let handler = Handling::Sync(Arc::new(handler));
        let shared = self.shared(Box::new(listener))?;
        let workers = (0..self.threads)
            .map(|index| self.worker(&shared, index, &handler))
            .collect();
        let pool = Arc::new(Pool::new(workers)?);
        let mut server = MessageServer {
            shared,
            pool,
            threads: Vec::with_capacity(self.threads),
        };
        for index in 0..self.threads {
            let pool = Arc::clone(&server.pool);
            let spawned = std::thread::Builder::new()
                .name(format!("ipc-message-server-{index}"))
                .spawn(move || pool.run());
            match spawned {
                Ok(thread) => server.threads.push(thread),
                Err(err) => {
                    let _ = server.stop();
                    return Err(Error::from(err).with_op("thread::spawn"));
                }
            }
        }
        Ok(server)
    }
}

impl MessageServerOptions {
    /// What the threads (or tasks) serving `listener` share: a set each.
    fn shared(&self, listener: Box<dyn ServerListener>) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            load: (0..self.threads).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: (0..self.threads).map(|_| Mutex::default()).collect(),
            pollers: (0..self.threads)
                .map(|_| Poller::new())
                .collect::<Result<_>>()?,
            listener,
        }))
    }

    /// The thread (or task) `index` of a server.
    fn worker(&self, shared: &Arc<Shared>, index: usize, handler: &Handling) -> Worker {
        Worker {
            shared: Arc::clone(shared),
            index,
            handler: handler.clone(),
            options: self.clone(),
            clients: Vec::new(),
            free: Vec::new(),
            round: 0,
            again: Vec::new(),
            accepted: 0,
            #[cfg(feature = "tokio")]
            parked: Vec::new(),
        }
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
/// Each worker (one per thread) has its own `epoll` set; whichever accepts a connection
/// gives it to the worker with the fewest clients, which serves it a burst of requests at a
/// time, so that no client starves the others, and a thread with nothing to do serves
/// another thread's worker rather than sleep. A client that does not read its replies is
/// not read from until it does (one reply is kept for it, no more). A handler that panics
/// loses its client, not the server. Out of descriptors, the listener turns new clients
/// away at once (see the crate's docs) and the connected ones are served on.
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
    pool: Arc<Pool>,
    threads: Vec<JoinHandle<Result<()>>>,
}

struct Shared {
    stop: AtomicBool,
    clients: AtomicUsize,
    /// How many clients each worker serves (or has been handed).
    load: Vec<AtomicUsize>,
    /// Connections accepted by one worker for another, which has fewer clients.
    inboxes: Vec<Mutex<Vec<Served>>>,
    /// One per worker; only the worker adds to its own.
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
        let _ = self.pool.stop.write(1);
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
        for worker in &self.pool.workers {
            worker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .close();
        }
        result
    }
}

/// The threads' work: every thread waits on one set of all the workers' sets, takes a
/// worker whose set is ready and serves its turns, so that a thread that has nothing to do
/// serves another's clients rather than sleep (and be woken) while the other works. Each
/// worker's set is in the pool's one-shot: one thread at a time has it, and re-arms it when
/// it is done.
///
/// A thread per set, each asleep on its own, cost 12 000 sleeps and wake-ups a second at
/// 145 000 requests/s where tokio's echo server, whose idle workers leave the reactor to
/// one of them, had 4 500 (`ipc-bench-servers`, unpinned).
#[derive(Debug)]
struct Pool {
    sets: Epoll,
    /// Written once to stop every thread (level-triggered: all of them see it).
    stop: EventFd,
    workers: Vec<Mutex<Worker>>,
}

/// How many turns a thread gives a worker before it lets the pool pick again: a busy
/// worker does not keep a thread from the others.
const TURNS_PER_TAKE: usize = 8;

impl Pool {
    fn new(workers: Vec<Worker>) -> Result<Pool> {
        let sets = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| Error::from_errno("epoll_create1", e))?;
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| Error::from_errno("eventfd", e))?;
        let ctl = |e| Error::from_errno("epoll_ctl", e);
        sets.add(&stop, EpollEvent::new(EpollFlags::EPOLLIN, WAKER))
            .map_err(ctl)?;
        for (index, worker) in workers.iter().enumerate() {
            worker.watch_listener()?;
            sets.add(&worker.poller().epoll.0, Pool::armed(index))
                .map_err(ctl)?;
        }
        Ok(Pool {
            sets,
            stop,
            workers: workers.into_iter().map(Mutex::new).collect(),
        })
    }

    fn armed(index: usize) -> EpollEvent {
        EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, index as u64)
    }

    /// A thread's loop, until the server stops.
    fn run(&self) -> Result<()> {
        let max = self.workers.first().map_or(0, |w| {
            w.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .options
                .max_message_size
        });
        let mut scratch = Scratch::new(max);
        let mut events = [EpollEvent::empty(); 1];
        loop {
            // Asleep at once when no set is ready: looking for 20 µs first spared sleeps
            // (5 900 a second against 8 300, unpinned) but took CPU from the thread that
            // had work (pinned to one CPU: 5.3 µs of CPU per request against 4.9 without;
            // unpinned: 141 000 requests/s against 151 000 without).
            match self.sets.wait(&mut events, EpollTimeout::NONE) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(errno) => return Err(Error::from_errno("epoll_wait", errno)),
            }
            let index = events[0].data();
            let Some(worker) = usize::try_from(index)
                .ok()
                .and_then(|i| self.workers.get(i))
            else {
                // The stop eventfd.
                return Ok(());
            };
            let mut worker = worker.lock().unwrap_or_else(PoisonError::into_inner);
            for _ in 0..TURNS_PER_TAKE {
                let turn = worker
                    .turn(&mut scratch, EpollTimeout::ZERO)
                    .inspect_err(|_| {
                        // Its set failed: its clients are told (peer gone) rather than left
                        // waiting for a thread that will not come.
                        worker.close();
                    })?;
                match turn {
                    Turn::Stopped => return Ok(()),
                    Turn::Idle => break,
                    Turn::Served => {}
                    Turn::OutOfDescriptors => std::thread::sleep(OUT_OF_DESCRIPTORS_PAUSE),
                }
            }
            if !worker.again.is_empty() {
                // Requests read ahead, which the set cannot report: make it ready.
                worker.poller().notify();
            }
            // Level-triggered: a set that became ready meanwhile is reported at once.
            let set = &worker.poller().epoll.0;
            self.sets
                .modify(set, &mut Pool::armed(worker.index))
                .map_err(|e| Error::from_errno("epoll_ctl", e))?;
        }
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
    /// Whether a reply waits for room (the set watches for room, not requests).
    blocked: bool,
    /// The worker's round (`epoll_wait`) in which it was last served.
    round: u64,
    /// Whether its requests come several at a time (the last look for a second request
    /// found one): a client that sends one and waits for the reply is served one per
    /// report, its next looked for by the level-triggered set rather than by a `recv`
    /// that would fail.
    pipelined: bool,
    /// How many more servings pass before a look for a second request, after one that
    /// found none: a client that answers its replies at once is often served in
    /// consecutive rounds without pipelining, and each failed look is a system call.
    quiet: u8,
    /// Looks in a row that found no second request: the next waits 2^misses servings.
    misses: u8,
    /// Which connection of the worker it is: a parked reply finds its client by it.
    id: u64,
    /// Whether a reply is being awaited (the set does not watch the client meanwhile).
    awaiting: bool,
}

/// The most looks in a row that found no second request that count: after them, one
/// serving in 64 looks. A quarter to a third of the requests of a thousand closed-loop
/// seqpacket clients met a failed look when every consecutive serving looked; a client
/// that starts pipelining is found within 64 of its requests (served one a round
/// meanwhile, as the set reports them).
const MAX_MISSES: u8 = 6;

/// A worker's `epoll` set, level-triggered, and the eventfd that wakes whoever waits on it.
///
/// `epoll` itself rather than a poller crate: `polling`'s `wait` re-arms its timer and
/// its notifier and reads the notifier every time (four system calls besides
/// `epoll_wait`), which a server waiting for a few clients at a time pays per request.
#[derive(Debug)]
struct Poller {
    epoll: Epoll,
    waker: EventFd,
}

impl Poller {
    fn new() -> Result<Poller> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| Error::from_errno("epoll_create1", e))?;
        let waker = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| Error::from_errno("eventfd", e))?;
        let poller = Poller { epoll, waker };
        poller.add(poller.waker.as_fd(), EpollFlags::EPOLLIN, WAKER)?;
        Ok(poller)
    }

    fn add(&self, fd: impl AsFd, flags: EpollFlags, key: u64) -> Result<()> {
        self.epoll
            .add(fd, EpollEvent::new(flags, key))
            .map_err(|e| Error::from_errno("epoll_ctl", e))
    }

    fn modify(&self, fd: impl AsFd, flags: EpollFlags, key: u64) -> Result<()> {
        self.epoll
            .modify(fd, &mut EpollEvent::new(flags, key))
            .map_err(|e| Error::from_errno("epoll_ctl", e))
    }

    fn delete(&self, fd: impl AsFd) {
        let _ = self.epoll.delete(fd);
    }

    /// Makes the set ready, so that the worker takes its turn (handed clients, a stop).
    fn notify(&self) {
        let _ = self.waker.write(1);
    }

    /// Empties the eventfd once the set reported it.
    fn woken(&self) {
        let _ = self.waker.read();
    }
}

/// What a worker owns (one per thread or task): its clients, by slot.
struct Worker {
    shared: Arc<Shared>,
    index: usize,
    handler: Handling,
    options: MessageServerOptions,
    clients: Vec<Option<Served>>,
    free: Vec<usize>,
    /// How many turns the worker has taken.
    round: u64,
    /// Clients that used up their burst with requests read ahead: served next round.
    again: Vec<usize>,
    /// How many connections the worker has adopted: the next one's id.
    accepted: u64,
    /// Replies that were not ready when first asked, for the driver to await.
    #[cfg(feature = "tokio")]
    parked: Vec<Parked>,
}

/// A reply an async handler did not have at once, and whose it is.
#[cfg(feature = "tokio")]
struct Parked {
    slot: usize,
    id: u64,
    reply: ReplyFuture,
}

impl Worker {
    fn poller(&self) -> &Poller {
        &self.shared.pollers[self.index]
    }

    /// Stops watching the listener and disconnects every client.
    fn close(&mut self) {
        self.poller().delete(self.shared.listener.as_fd());
        for slot in 0..self.clients.len() {
            self.disconnect(slot);
        }
    }

    /// Adds the listener to this worker's set (every worker accepts).
    fn watch_listener(&self) -> Result<()> {
        self.poller()
            .add(self.shared.listener.as_fd(), EpollFlags::EPOLLIN, LISTENER)
    }

    /// Waits on the set as long as `timeout` says, then serves what it reported.
    fn turn(&mut self, scratch: &mut Scratch, timeout: EpollTimeout) -> Result<Turn> {
        let Scratch {
            events,
            request,
            reply,
        } = scratch;
        let n = match self.poller().epoll.wait(events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => return Ok(Turn::Served),
            Err(errno) => return Err(Error::from_errno("epoll_wait", errno)),
        };
        if self.shared.stop.load(Ordering::SeqCst) {
            return Ok(Turn::Stopped);
        }
        self.round += 1;
        let again = std::mem::take(&mut self.again);
        let mut turn = if n == 0 && again.is_empty() {
            Turn::Idle
        } else {
            Turn::Served
        };
        for slot in again {
            self.serve(slot, request, reply);
        }
        for event in &events[..n] {
            match event.data() {
                WAKER => {
                    self.poller().woken();
                    self.take_handed();
                }
                LISTENER => {
                    if !self.accept() {
                        turn = Turn::OutOfDescriptors;
                    }
                }
                key => {
                    let slot = usize::try_from(key - 1).unwrap_or(usize::MAX);
                    self.ready(slot, request, reply);
                }
            }
        }
        Ok(turn)
    }

    /// Accepts what is waiting (another worker may have taken it first), and gives each
    /// connection to the worker with the fewest clients: whichever worker wins an accept,
    /// the clients end up spread evenly. `false` when out of descriptors with no client
    /// to turn away: the caller pauses rather than spin on the ready listener.
    fn accept(&mut self) -> bool {
        // A flood of new clients (or of clients turned away) gets a turn, not the worker:
        // the level-triggered listener is reported again after the clients are served.
        for _ in 0..ACCEPTS_PER_TURN {
            match self
                .shared
                .listener
                .accept_connection(self.options.max_message_size)
            {
                Ok((conn, client)) => {
                    let served = Served {
                        conn,
                        client,
                        blocked: false,
                        round: 0,
                        pipelined: false,
                        quiet: 0,
                        misses: 0,
                        id: 0,
                        awaiting: false,
                    };
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
                        self.shared.pollers[target].notify();
                    }
                }
                // Out of descriptors, a waiting client was turned away: on to the next.
                Err(err) if err.is_limit_exceeded() => {}
                // Out of descriptors with no client turned away (another opener had the
                // reserve's slot): the listener stays ready, so pause rather than spin.
                Err(err) if out_of_descriptors(&err) => return false,
                // Nothing waits (another thread took it), or a failed accept: the listener
                // is looked at again after the clients' turn.
                Err(_) => return true,
            }
        }
        true
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
    fn adopt(&mut self, mut served: Served) {
        self.accepted += 1;
        served.id = self.accepted;
        let slot = self.free.last().copied().unwrap_or(self.clients.len());
        if self
            .poller()
            .add(served.conn.fd(), EpollFlags::EPOLLIN, slot as u64 + 1)
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
        let round = self.round;
        let poller = &self.shared.pollers[self.index];
        let Some(Some(served)) = self.clients.get_mut(slot) else {
            return;
        };
        if served.awaiting || served.blocked {
            // Reported (or read ahead) in the turn that parked its reply, or its last reply
            // waits for room: its next request waits for that reply (a blocked client is
            // served again once writable, after the reply is sent).
            return;
        }
        // Served in the round before too: perhaps more than one request at a time.
        let one = !served.pipelined && (served.round.wrapping_add(1) != round || served.quiet > 0);
        served.quiet = served.quiet.saturating_sub(1);
        served.round = round;
        for i in 0..burst {
            if i == 1 && (one || served.conn.drained()) && !served.conn.has_buffered() {
                // Reported again if another request is there.
                return;
            }
            let len = match served.conn.try_recv(request) {
                Ok(len) => {
                    if i == 1 {
                        served.pipelined = true;
                        served.misses = 0;
                    }
                    len
                }
                Err(err) if err.is_would_block() => {
                    if i == 1 {
                        served.pipelined = false;
                        served.misses = (served.misses + 1).min(MAX_MISSES);
                        served.quiet = 1 << served.misses;
                    }
                    return;
                }
                // Gone, or a request above the maximum: the client is disconnected.
                Err(_) => return self.disconnect(slot),
            };
            reply.clear();
            match answer(&self.handler, &request[..len], &served.client, reply) {
                Answer::Ready => {}
                Answer::Panicked => return self.disconnect(slot),
                #[cfg(feature = "tokio")]
                Answer::Later(future) => {
                    // Not read from until the reply is sent: replies stay in order.
                    poller.delete(served.conn.fd());
                    served.awaiting = true;
                    let id = served.id;
                    return self.parked.push(Parked {
                        slot,
                        id,
                        reply: future,
                    });
                }
            }
            if !send_reply(served, poller, slot, reply) {
                return self.disconnect(slot);
            }
            if served.blocked {
                return;
            }
        }
        // More may be waiting: the level-triggered set reports what the socket holds, but
        // not what was read ahead.
        if served.conn.has_buffered() {
            self.again.push(slot);
        }
    }

    /// Serves a client the set reported: sends what it had no room for first, if a reply
    /// was waiting, then answers its requests.
    fn ready(&mut self, slot: usize, request: &mut [u8], reply: &mut Vec<u8>) {
        let poller = &self.shared.pollers[self.index];
        let Some(Some(served)) = self.clients.get_mut(slot) else {
            return;
        };
        if served.blocked {
            match served.conn.flush() {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => return self.disconnect(slot),
            }
            served.blocked = false;
            if poller
                .modify(served.conn.fd(), EpollFlags::EPOLLIN, slot as u64 + 1)
                .is_err()
            {
                return self.disconnect(slot);
            }
        }
        self.serve(slot, request, reply);
    }

    /// Sends the reply a parked handler gave (`None`: it panicked), watches its client
    /// again and serves the requests it read ahead.
    #[cfg(feature = "tokio")]
    fn finish(&mut self, slot: usize, id: u64, reply: Option<Vec<u8>>, scratch: &mut Scratch) {
        let poller = &self.shared.pollers[self.index];
        let Some(Some(served)) = self.clients.get_mut(slot) else {
            return;
        };
        if served.id != id || !served.awaiting {
            return;
        }
        served.awaiting = false;
        let Some(reply) = reply else {
            return self.disconnect(slot);
        };
        if poller
            .add(served.conn.fd(), EpollFlags::EPOLLIN, slot as u64 + 1)
            .is_err()
            || !send_reply(served, poller, slot, &reply)
        {
            return self.disconnect(slot);
        }
        if !served.blocked && served.conn.has_buffered() {
            self.serve(slot, &mut scratch.request, &mut scratch.reply);
        }
    }

    /// The replies parked since the last call.
    #[cfg(feature = "tokio")]
    fn take_parked(&mut self) -> Vec<Parked> {
        std::mem::take(&mut self.parked)
    }

    fn disconnect(&mut self, slot: usize) {
        if let Some(served) = self.clients.get_mut(slot).and_then(Option::take) {
            // Out of the set before the descriptor closes.
            self.poller().delete(served.conn.fd());
            drop(served);
            self.free.push(slot);
            self.uncount();
        }
    }
}

/// What a worker's turn did.
enum Turn {
    /// The server is stopping.
    Stopped,
    /// Nothing was reported, and no client has requests read ahead.
    Idle,
    /// Served what was reported (clients, the listener, wake-ups).
    Served,
    /// Out of descriptors with no client to turn away: pause before the next turn.
    OutOfDescriptors,
}

/// A thread's (or task's) buffers: the events of one wait, a request, a reply.
struct Scratch {
    events: Vec<EpollEvent>,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl Scratch {
    fn new(max_message_size: usize) -> Scratch {
        Scratch {
            events: vec![EpollEvent::empty(); 1024],
            request: vec![0u8; max_message_size],
            reply: Vec::new(),
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

/// Sends a non-empty reply: `false` if the client is to go. One without room for all of
/// it makes the set watch the client for room instead of requests (`blocked`).
fn send_reply(served: &mut Served, poller: &Poller, slot: usize, reply: &[u8]) -> bool {
    if reply.is_empty() {
        return true;
    }
    match served.conn.send(reply) {
        Ok(true) => true,
        Ok(false) => {
            served.blocked = true;
            poller
                .modify(served.conn.fd(), EpollFlags::EPOLLOUT, slot as u64 + 1)
                .is_ok()
        }
        Err(_) => false,
    }
}

/// What a handler did with a request.
enum Answer {
    /// The reply is filled.
    Ready,
    /// It panicked: its client is to go (the others are served on).
    Panicked,
    /// The reply comes later.
    #[cfg(feature = "tokio")]
    Later(ReplyFuture),
}

/// Runs the handler for one request. An async handler's future is polled once at once
/// (with a waker that does nothing: the task that awaits it polls it again), so that a
/// reply that is ready costs no task.
fn answer(handler: &Handling, request: &[u8], client: &Client, reply: &mut Vec<u8>) -> Answer {
    let answered = std::panic::catch_unwind(AssertUnwindSafe(|| match handler {
        Handling::Sync(handler) => {
            handler(request, client, reply);
            Answer::Ready
        }
        #[cfg(feature = "tokio")]
        Handling::Async(handler) => {
            let mut future = handler(request.to_vec(), *client);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match future.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(ready) => {
                    *reply = ready;
                    Answer::Ready
                }
                std::task::Poll::Pending => Answer::Later(future),
            }
        }
    }));
    answered.unwrap_or(Answer::Panicked)
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
