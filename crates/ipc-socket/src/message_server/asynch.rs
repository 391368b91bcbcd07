//! The message server on a tokio runtime: its threads' work done by tasks, each waiting on
//! its own level-triggered `epoll` set through tokio's reactor.
//!
//! Why not a task per client, each registered with the reactor: tokio's registrations are
//! edge-triggered, so a task learns that its client has nothing more only from a `recv`
//! that fails, one system call in three for a client that waits for each reply. A
//! level-triggered set of its own tells it without asking (`ipc-bench-servers`: the task
//! per client took 5.3 µs of CPU a request, 1.14× tokio's own echo server).

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::task::Poll;

use ipc_core::{Error, Result};
use nix::sys::epoll::EpollTimeout;
use tokio::io::unix::AsyncFdReadyGuard;
use tokio::task::JoinSet;

use super::transport::{Client, ServerListener};
use super::{Handling, MessageServerOptions, ReplyFuture, Scratch, Turn, Worker};

impl MessageServerOptions {
    /// Serves `listener` on the current tokio runtime until the future is dropped (or
    /// spawn it: it owns what it needs): the work of
    /// [`MessageServer`](super::MessageServer)'s threads is done by as many tasks (give
    /// it [`threads`](Self::threads) as many as the runtime has workers), each waiting
    /// on its own `epoll` set through the runtime's reactor; each connection costs one
    /// descriptor. Bursts, back-pressure, the spreading of clients, turning them away
    /// when out of descriptors and a panicking handler losing only its client are as the
    /// threaded server's. The handler runs on the runtime's threads: it must not block.
    ///
    /// Dropping the future (a `select!` on a shutdown signal, say) ends every client's task
    /// and closes its connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ipc_socket::{MessageServerOptions, Seqpacket, SeqpacketListener, UnixAddr};
    ///
    /// # let dir = std::env::temp_dir().join(format!("serve-doc-{}", std::process::id()));
    /// # std::fs::create_dir(&dir)?;
    /// let addr = UnixAddr::path(dir.join("upper.sock"));
    /// let serving = MessageServerOptions::new().serve(
    ///     SeqpacketListener::bind(&addr)?,
    ///     |request, _client, reply| reply.extend(request.to_ascii_uppercase()),
    /// );
    /// let asking = tokio::task::spawn_blocking(move || {
    ///     let client = Seqpacket::connect(&addr)?;
    ///     client.send(b"hello")?;
    ///     let mut buf = [0u8; 16];
    ///     let n = client.recv(&mut buf)?;
    ///     Ok::<_, ipc_socket::Error>(buf[..n].to_vec())
    /// });
    /// tokio::select! {
    ///     served = serving => served?,
    ///     reply = asking => assert_eq!(reply??, b"HELLO"),
    /// }
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Outside a runtime with I/O and time enabled; if an `epoll` set cannot be made or
    /// registered, or fails.
    pub fn serve<L, H>(
        &self,
        listener: L,
        handler: H,
    ) -> impl Future<Output = Result<()>> + Send + 'static
    where
        L: ServerListener,
        H: Fn(&[u8], &Client, &mut Vec<u8>) + Send + Sync + 'static,
    {
        // The future owns what it needs, so that it can be spawned.
        serve(self.clone(), listener, Handling::Sync(Arc::new(handler)))
    }

    /// [`serve`](Self::serve) with an async handler: it gets the request and its client
    /// and returns the reply (empty: no reply is sent), awaiting what it needs (a database,
    /// another service) without holding up the other clients. A reply ready when first
    /// polled is sent in the same turn, as `serve`'s (the request is copied and the future
    /// boxed, no task spawned); one that is not is awaited by a task of its own, and its client is not read from until the reply is sent, so each
    /// client's requests are answered one at a time, in order (the clients' handlers run
    /// concurrently). A handler that panics, at once or in its future, loses its client,
    /// not the server; dropping the future drops the handlers' futures too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use ipc_socket::{MessageServerOptions, Seqpacket, SeqpacketListener, UnixAddr};
    ///
    /// # let dir = std::env::temp_dir().join(format!("serve-async-doc-{}", std::process::id()));
    /// # std::fs::create_dir(&dir)?;
    /// let addr = UnixAddr::path(dir.join("slow-upper.sock"));
    /// let listener = SeqpacketListener::bind(&addr)?;
    /// tokio::spawn(MessageServerOptions::new().serve_async(listener, |request, _client| {
    ///     async move {
    ///         tokio::time::sleep(Duration::from_millis(1)).await; // a slow backend
    ///         request.to_ascii_uppercase()
    ///     }
    /// }));
    /// // A client on the same runtime.
    /// let mut client = ipc_socket::Async::new(Seqpacket::connect(&addr)?);
    /// client.send(b"hello").await?;
    /// let mut buf = [0u8; 16];
    /// let n = client.recv(&mut buf).await?;
    /// assert_eq!(&buf[..n], b"HELLO");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve).
    pub fn serve_async<L, H, F>(
        &self,
        listener: L,
        handler: H,
    ) -> impl Future<Output = Result<()>> + Send + 'static
    where
        L: ServerListener,
        H: Fn(Vec<u8>, Client) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<u8>> + Send + 'static,
    {
        let handler = move |request, client| -> ReplyFuture { Box::pin(handler(request, client)) };
        serve(self.clone(), listener, Handling::Async(Arc::new(handler)))
    }
}

async fn serve<L: ServerListener>(
    options: MessageServerOptions,
    listener: L,
    handler: Handling,
) -> Result<()> {
    let shared = options.shared(Box::new(listener))?;
    // Dropping the future aborts the tasks, which close their clients' connections.
    let mut tasks = JoinSet::new();
    for index in 0..options.threads {
        let worker = options.worker(&shared, index, &handler);
        tasks.spawn(drive(worker));
    }
    drop(shared);
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(err)) => Err(Error::new(
            "MessageServerOptions::serve",
            std::io::ErrorKind::Other,
            format!("a server task ended: {err}"),
        )),
        None => Ok(()),
    }
}

/// A thread's loop as a task: a turn whenever the reactor reports the set readable, until
/// a turn finds nothing, and the runtime's cooperative budget spent on every turn. Replies
/// an async handler parked are awaited by tasks of their own, and sent as they come.
async fn drive(mut worker: Worker) -> Result<()> {
    // Declared after the worker, so dropped before it: the set, which the worker's share
    // of the server keeps open, outlives its registration.
    let set = crate::sys::async_fd(worker.poller().epoll.0.as_fd())
        .map_err(|e| Error::from(e).with_op("AsyncFd::register (inside a runtime?)"))?;
    worker.watch_listener()?;
    let mut scratch = Scratch::new(worker.options.max_message_size);
    let mut replies = Replies::default();
    loop {
        // A reply that came first, then the set.
        let event = std::future::poll_fn(|cx| {
            if !replies.tasks.is_empty() {
                if let Poll::Ready(Some(done)) = replies.tasks.poll_join_next_with_id(cx) {
                    return Poll::Ready(Event::Reply(done));
                }
            }
            set.poll_read_ready(cx).map(Event::Ready)
        })
        .await;
        let mut ready = match event {
            Event::Reply(done) => {
                replies.finish(&mut worker, done, &mut scratch);
                continue;
            }
            Event::Ready(ready) => {
                ready.map_err(|e| Error::from(e).with_op("AsyncFd::readable"))?
            }
        };
        loop {
            let turn = worker.turn(&mut scratch, EpollTimeout::ZERO)?;
            replies.start(&mut worker);
            while let Some(done) = replies.tasks.try_join_next_with_id() {
                replies.finish(&mut worker, done, &mut scratch);
            }
            match turn {
                Turn::Idle => {
                    // Cleared only if no event came since the guard was taken.
                    ready.clear_ready();
                    break;
                }
                Turn::Served | Turn::Stopped => {}
                Turn::OutOfDescriptors => {
                    tokio::time::sleep(super::OUT_OF_DESCRIPTORS_PAUSE).await;
                }
            }
            tokio::task::consume_budget().await;
        }
    }
}

/// What the driver woke up for.
enum Event<'a, T: AsRawFd> {
    Reply(std::result::Result<(tokio::task::Id, Vec<u8>), tokio::task::JoinError>),
    Ready(std::io::Result<AsyncFdReadyGuard<'a, T>>),
}

/// The parked replies being awaited, each by a task, and whose each is.
#[derive(Default)]
struct Replies {
    tasks: JoinSet<Vec<u8>>,
    owners: HashMap<tokio::task::Id, (usize, u64)>,
}

impl Replies {
    /// Starts a task for each reply the worker parked.
    fn start(&mut self, worker: &mut Worker) {
        for parked in worker.take_parked() {
            let task = self.tasks.spawn(parked.reply);
            self.owners.insert(task.id(), (parked.slot, parked.id));
        }
    }

    /// Gives the worker a reply that came (or the panic of its handler).
    fn finish(
        &mut self,
        worker: &mut Worker,
        done: std::result::Result<(tokio::task::Id, Vec<u8>), tokio::task::JoinError>,
        scratch: &mut Scratch,
    ) {
        let (task, reply) = match done {
            Ok((task, reply)) => (task, Some(reply)),
            Err(err) => (err.id(), None),
        };
        if let Some((slot, id)) = self.owners.remove(&task) {
            worker.finish(slot, id, reply, scratch);
        }
        // What the reply's client read ahead was served, and may have parked replies.
        self.start(worker);
    }
}
