//! A small server: accept many clients, one thread each, and shut down cleanly.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ipc_core::{Deadline, Error, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::{PeerCredentials, StreamListener};

type Clients = Arc<Mutex<HashMap<u64, UnixStream>>>;

/// A Unix stream server that runs `handler` on its own thread for every client, and whose
/// [`shutdown`](Server::shutdown) stops accepting, disconnects every client (so handlers
/// blocked in a read return) and waits for all handler threads.
///
/// Why a thread per client: a handler that simply blocks on its connection is the easiest
/// code to get right, for tens of clients. For hundreds or thousands, use the event-driven
/// [`MessageServer`](crate::MessageServer) (request-reply over seqpacket). The
/// accept loop waits on the listener and a wake-up socket together, so shutdown never
/// depends on a client arriving.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use ipc_socket::{Server, StreamListener, UnixAddr, connect_stream};
///
/// # let dir = std::env::temp_dir().join(format!("server-doc-{}", std::process::id()));
/// # std::fs::create_dir(&dir)?;
/// let addr = UnixAddr::path(dir.join("echo.sock"));
/// let server = Server::start(StreamListener::bind(&addr)?, |stream, _peer| {
///     let mut lines = BufReader::new(stream.try_clone().unwrap());
///     let mut line = String::new();
///     while lines.read_line(&mut line).unwrap_or(0) > 0 {
///         let _ = (&stream).write_all(line.as_bytes());
///         line.clear();
///     }
/// })?;
/// let mut client = connect_stream(&addr)?;
/// client.write_all(b"hello\n")?;
/// let mut reply = String::new();
/// BufReader::new(&client).read_line(&mut reply)?;
/// assert_eq!(reply, "hello\n");
/// server.shutdown()?;
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    wake: Option<UnixStream>,
    accept_thread: Option<JoinHandle<Result<()>>>,
    clients: Clients,
}

impl Server {
    /// Starts accepting on `listener`; `handler` runs on a new thread for every connection
    /// from an allowed peer.
    ///
    /// # Errors
    ///
    /// If the wake-up socket or the accept thread cannot be created.
    pub fn start<H>(listener: StreamListener, handler: H) -> Result<Server>
    where
        H: Fn(UnixStream, PeerCredentials) + Send + Sync + 'static,
    {
        let (wake, woken) = UnixStream::pair().map_err(|e| Error::from(e).with_op("socketpair"))?;
        let clients: Clients = Arc::default();
        let registry = Arc::clone(&clients);
        let handler = Arc::new(handler);
        let accept_thread = std::thread::Builder::new()
            .name("ipc-socket-server".into())
            .spawn(move || accept_loop(&listener, &woken, &registry, &handler))
            .map_err(|e| Error::from(e).with_op("thread::spawn"))?;
        Ok(Server {
            wake: Some(wake),
            accept_thread: Some(accept_thread),
            clients,
        })
    }

    /// The number of clients connected now.
    pub fn clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Stops accepting, disconnects every client and waits for every handler to return.
    ///
    /// # Errors
    ///
    /// The error that ended the accept loop early, if any.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        // Closing our end of the wake-up pair makes the accept loop's poll return.
        drop(self.wake.take());
        match self.accept_thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::new(
                    "Server",
                    std::io::ErrorKind::Other,
                    "the accept loop panicked",
                ))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A destructor cannot report the accept loop's error; `shutdown` does.
        let _ = self.stop();
    }
}

fn accept_loop<H>(
    listener: &StreamListener,
    woken: &UnixStream,
    clients: &Clients,
    handler: &Arc<H>,
) -> Result<()>
where
    H: Fn(UnixStream, PeerCredentials) + Send + Sync + 'static,
{
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let result = loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(woken.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => break Err(Error::from_errno("poll", errno)),
            Ok(_) => {}
        }
        if fds[1].any().unwrap_or(true) {
            break Ok(());
        }
        let (stream, peer) = match listener.try_accept() {
            Ok(accepted) => accepted,
            Err(err) if err.is_would_block() => continue,
            // Out of descriptors, a waiting client was turned away: on to the next.
            Err(err) if err.is_limit_exceeded() => continue,
            Err(err)
                if err.raw_os_error() == Some(libc::EMFILE)
                    || err.raw_os_error() == Some(libc::ENFILE) =>
            {
                // Out of descriptors: wait for clients to leave rather than spin.
                let _ = ipc_core::internal::poll_fd(
                    woken,
                    PollFlags::POLLIN,
                    Deadline::after(std::time::Duration::from_millis(50)),
                    "poll",
                );
                continue;
            }
            Err(err) => break Err(err),
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(copy) = stream.try_clone() {
            clients
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, copy);
        }
        let registry = Arc::clone(clients);
        let handler = Arc::clone(handler);
        threads.retain(|t| !t.is_finished());
        let spawned = std::thread::Builder::new()
            .name(format!("ipc-socket-client-{id}"))
            .spawn(move || {
                handler(stream, peer);
                registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(_) => {
                // No thread for this client: disconnect it rather than leave it hanging.
                if let Some(copy) = clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id)
                {
                    let _ = copy.shutdown(Shutdown::Both);
                }
            }
        }
    };
    // Disconnect every client so that handlers blocked on their connection return, then
    // wait for them.
    for (_, stream) in clients
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
    {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for thread in threads {
        let _ = thread.join();
    }
    result
}
