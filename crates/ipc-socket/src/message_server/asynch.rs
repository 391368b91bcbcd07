//! The message server on a tokio runtime: a task per client on the runtime's threads, each
//! watching its connection's own descriptor.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use ipc_core::{Error, Result};
use tokio::task::JoinSet;

use super::transport::{Client, Connection, ServerListener};
use super::{ACCEPTS_PER_TURN, Handler, MessageServerOptions};

impl MessageServerOptions {
    /// Serves `listener` on the current tokio runtime until the future is dropped (or
    /// spawn it: it owns what it needs): each
    /// client is a task (on any of the runtime's threads), each connection costs one
    /// descriptor, the runtime's reactor watches it. The options' thread count does not
    /// apply (the runtime's do); bursts, back-pressure, turning clients away when out of
    /// descriptors and a panicking handler losing only its client are as
    /// [`MessageServer`](super::MessageServer)'s. The handler runs on the runtime's
    /// threads: it must not block.
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
    /// Outside a runtime with I/O enabled; the listener's registration or accept errors
    /// other than a client turned away.
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
    let mut clients = JoinSet::new();
    // Dropped before the listener, which outlives it in this frame.
    let registration = crate::sys::async_fd(listener.as_fd())
        .map_err(|e| Error::from(e).with_op("AsyncFd::register (inside a runtime?)"))?;
    loop {
        let mut ready = registration
            .readable()
            .await
            .map_err(|e| Error::from(e).with_op("AsyncFd::readable"))?;
        // Ended tasks are reaped as the server goes, not kept until it ends.
        while clients.try_join_next().is_some() {}
        for _ in 0..ACCEPTS_PER_TURN {
            match listener.accept_connection(options.max_message_size) {
                Ok((conn, client)) => {
                    let options = options.clone();
                    let handler = Arc::clone(&handler);
                    clients.spawn(serve_client(conn, client, handler, options));
                }
                // Out of descriptors, a waiting client was turned away.
                Err(err) if err.is_limit_exceeded() => {}
                Err(err) if err.is_would_block() => {
                    ready.clear_ready();
                    break;
                }
                // Out of descriptors with no client turned away: pause rather than spin
                // (the connected clients are served meanwhile) or end.
                Err(err) if super::out_of_descriptors(&err) => {
                    tokio::time::sleep(super::OUT_OF_DESCRIPTORS_PAUSE).await;
                    break;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Answers one client until it leaves, breaks the protocol, or the server is dropped.
async fn serve_client(
    mut conn: Box<dyn Connection>,
    client: Client,
    handler: Arc<Handler>,
    options: MessageServerOptions,
) {
    // Declared after the connection, so dropped before it: the descriptor stays open for
    // as long as it is registered.
    let Ok(registration) = crate::sys::async_fd(conn.fd()) else {
        // Not watched, it would never be answered: turned away instead.
        return;
    };
    loop {
        let Ok(mut ready) = registration.readable().await else {
            return;
        };
        for _ in 0..options.burst {
            match answer_one(&mut *conn, &client, &*handler, options.max_message_size) {
                Step::Answered => {}
                Step::Idle => {
                    ready.clear_ready();
                    break;
                }
                // No room for all of the reply: wait for room, reading nothing meanwhile.
                Step::Blocked => loop {
                    let Ok(mut room) = registration.writable().await else {
                        return;
                    };
                    match conn.flush() {
                        Ok(true) => break,
                        Ok(false) => room.clear_ready(),
                        Err(_) => return,
                    }
                },
                Step::End => return,
            }
        }
        // A burst served: the others get their turn.
        tokio::task::yield_now().await;
    }
}

/// What one request did.
enum Step {
    /// Answered (or needed no answer).
    Answered,
    /// No request is there.
    Idle,
    /// The reply waits for room.
    Blocked,
    /// The client is gone, broke the protocol, or its handler panicked.
    End,
}

thread_local! {
    /// The request and reply buffers of this runtime thread's client tasks, used only
    /// between two awaits: a waiting client costs no buffer of its own.
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::default();
}

/// Receives one request, runs the handler and sends the reply, with no await.
fn answer_one(conn: &mut dyn Connection, client: &Client, handler: &Handler, max: usize) -> Step {
    BUFFERS.with_borrow_mut(|(request, reply)| {
        if request.len() < max {
            request.resize(max, 0);
        }
        let len = match conn.try_recv(&mut request[..max]) {
            Ok(len) => len,
            Err(err) if err.is_would_block() => return Step::Idle,
            Err(_) => return Step::End,
        };
        reply.clear();
        if !super::answer(handler, &request[..len], client, reply) {
            return Step::End;
        }
        if reply.is_empty() {
            return Step::Answered;
        }
        match conn.send(reply) {
            Ok(true) => Step::Answered,
            Ok(false) => Step::Blocked,
            Err(_) => Step::End,
        }
    })
}
