//! The message server on a tokio runtime: its threads' work done by tasks, each waiting on
//! its own level-triggered `epoll` set through tokio's reactor.
//!
//! Why not a task per client, each registered with the reactor: tokio's registrations are
//! edge-triggered, so a task learns that its client has nothing more only from a `recv`
//! that fails, one system call in three for a client that waits for each reply. A
//! level-triggered set of its own tells it without asking (`ipc-bench-servers`: the task
//! per client took 5.3 µs of CPU a request, 1.14× tokio's own echo server).

use std::future::Future;
use std::os::fd::AsFd;
use std::sync::Arc;

use ipc_core::{Error, Result};
use nix::sys::epoll::EpollTimeout;
use tokio::task::JoinSet;

use super::transport::{Client, ServerListener};
use super::{Handler, MessageServerOptions, Scratch, Turn, Worker};

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
        serve(self.clone(), listener, Arc::new(handler))
    }
}

async fn serve<L: ServerListener>(
    options: MessageServerOptions,
    listener: L,
    handler: Arc<Handler>,
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
/// a turn finds nothing, and the runtime's cooperative budget spent on every turn.
async fn drive(mut worker: Worker) -> Result<()> {
    // Declared after the worker, so dropped before it: the set, which the worker's share
    // of the server keeps open, outlives its registration.
    let set = crate::sys::async_fd(worker.poller().epoll.0.as_fd())
        .map_err(|e| Error::from(e).with_op("AsyncFd::register (inside a runtime?)"))?;
    worker.watch_listener()?;
    let mut scratch = Scratch::new(worker.options.max_message_size);
    loop {
        let mut ready = set
            .readable()
            .await
            .map_err(|e| Error::from(e).with_op("AsyncFd::readable"))?;
        loop {
            match worker.turn(&mut scratch, EpollTimeout::ZERO)? {
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
