//! Sockets for IPC on Linux: Unix stream, datagram and seqpacket sockets with descriptor
//! passing and peer credentials, plus TCP and UDP with the options people tune.
//!
//! It builds on std rather than replacing it: stream connections are std's
//! [`UnixStream`](std::os::unix::net::UnixStream) and [`TcpStream`](std::net::TcpStream),
//! extended by [`UnixSocketExt`] (descriptors and credentials) and [`UdpSocketExt`]; what
//! std lacks comes as new types: [`Seqpacket`] sockets, listeners that are safe to run as
//! services ([`StreamListener`], [`SeqpacketListener`]), [`Datagram`] with message
//! semantics, a thread-per-client [`Server`] for a few clients with blocking handlers, and
//! an event-driven [`MessageServer`] for many: a few threads, one descriptor per client.
//!
//! ```
//! use ipc_socket::{Seqpacket, SeqpacketListener, UnixAddr, UnixSocketExt};
//!
//! # let dir = std::env::temp_dir().join(format!("socket-crate-doc-{}", std::process::id()));
//! # std::fs::create_dir(&dir)?;
//! let addr = UnixAddr::path(dir.join("service.sock"));
//! let listener = SeqpacketListener::bind(&addr)?; // owner-only socket file
//!
//! let client = Seqpacket::connect(&addr)?;
//! let (server, peer) = listener.accept()?;
//! assert_eq!(peer.pid, std::process::id()); // who is on the other end
//!
//! // Whole messages, with an open file riding along.
//! let file = std::fs::File::open("/dev/null")?;
//! use std::os::fd::AsFd;
//! client.send_with_fds(b"take this", &[file.as_fd()])?;
//! let mut buf = [0u8; 64];
//! let (n, fds) = server.recv_with_fds(&mut buf, 1)?;
//! assert_eq!((&buf[..n], fds.len()), (&b"take this"[..], 1));
//!
//! drop(listener); // removes service.sock
//! # std::fs::remove_dir(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate takes care of
//!
//! - **Every descriptor is close-on-exec**, including received ones (`MSG_CMSG_CLOEXEC`).
//! - **No `SIGPIPE`**: this crate's sends use `MSG_NOSIGNAL`, and so does std's
//!   `UnixStream`/`TcpStream::write`; std's `write_vectored` does not (it is `writev`), so
//!   [`FramedWriter`] blocks `SIGPIPE` on its thread first ([`ipc_core::block_sigpipe`]).
//!   Tested in a process whose `SIGPIPE` disposition is the default.
//! - **Socket files** get exact permissions at bind (bound in a private directory, given
//!   their mode there, then moved into place), are removed by the listener on drop, and a
//!   stale one left by a crash is removed only after a connect proves nobody listens, under
//!   a lock file (`<path>.lock`) that keeps two starters from removing each other's socket.
//!   Abstract addresses ([`UnixAddr::Abstract`]) have no file and **no permissions**: anyone
//!   in the network namespace can connect; check credentials.
//! - **Descriptor passing** never leaks: more descriptors than the receiver allows
//!   (`MSG_CTRUNC`) is an error, and every descriptor that did arrive is closed.
//! - **Peer identity**: credentials at every accept, `SO_PEERPIDFD` pidfds, `SCM_CREDENTIALS`
//!   on datagrams, and listeners that let in only allowed users.
//! - **Messages**: [`Seqpacket`] and [`Datagram`] implement
//!   [`MessageSender`]/[`MessageReceiver`] natively; stream sockets get them through
//!   [`FramedWriter`]/[`FramedReader`] (lengths checked before allocating, a malformed frame
//!   ends the stream with an error, never a panic). Each message is taken in one system
//!   call, so threads sharing a socket never cut or steal each other's messages; one that
//!   does not fit the caller's buffer is an error saying the size it needed (a buffer of
//!   the maximum message size never loses one). Batches send and receive many messages
//!   in one system call (`send_batch`, `recv_batch` into a [`RecvBatch`]: `sendmmsg`,
//!   `recvmmsg`).
//! - **Deadlines**: `accept`, `connect` and every send and receive have `try_` and
//!   `_timeout` forms; `EINTR` is retried.
//! - **Out of descriptors**, a listener never leaves a client waiting unanswered: the
//!   process holds one descriptor in reserve while it has listeners; an `accept` that
//!   fails with `EMFILE` or `ENFILE` gives it up, accepts the first waiting client, closes
//!   that connection at once (the client's next receive reports the peer gone) and takes
//!   the reserve back, then returns a limit error naming `RLIMIT_NOFILE`. The connected
//!   clients are served on; accept again to go on. Accepting needs no second descriptor
//!   (the credentials are read on the accepted one).
//!
//! # async/await
//!
//! With the `tokio` feature, `Async` (ipc-core's, re-exported) puts any of these sockets
//! on a tokio runtime: `recv`/`send` for [`Seqpacket`] and [`Datagram`], `AsyncRead` and
//! `AsyncWrite` for std's `UnixStream` and `TcpStream`, and `read_with`/`write_with` for
//! accepts, descriptor passing ([`UnixSocketExt::try_recv_with_fds`],
//! [`UnixSocketExt::try_send_with_fds`]) and credentials
//! ([`Datagram::try_recv_with_credentials`]). A future dropped half-way loses nothing.
//! `MessageServerOptions::serve` runs the [`MessageServer`] as tasks on the runtime, one
//! descriptor per client.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ipc_socket::Result<()> {
//! use std::os::fd::AsFd;
//! use ipc_socket::{Async, Seqpacket, UnixSocketExt};
//!
//! let (a, b) = Seqpacket::pair()?;
//! let (mut a, mut b) = (Async::new(a), Async::new(b));
//! let file = std::fs::File::open("/dev/null")?;
//! a.write_with(|a| a.try_send_with_fds(b"take this", &[file.as_fd()])).await?;
//! let mut buf = [0u8; 64];
//! let (n, fds) = b.read_with(|b| b.try_recv_with_fds(&mut buf, 1)).await?;
//! assert_eq!((&buf[..n], fds.len()), (&b"take this"[..], 1));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # Limits
//!
//! - A socket path is at most 107 bytes (`sun_path`).
//! - At most 253 descriptors per message (`SCM_MAX_FD`).
//! - Seqpacket and datagram messages are limited by the send buffer (`SO_SNDBUF`, about
//!   200 KiB by default, set with [`UnixSocketExt::set_send_buffer_size`] up to
//!   `net.core.wmem_max`); this crate's default maximum is 64 KiB.
//!
//! # Safety
//!
//! The unsafe code (owning received descriptors, `SO_PEERPIDFD`, a byte-slice view for
//! socket2) is in one private module, each block with its reasoning.

#![deny(unsafe_code)]

mod addr;
mod bind;
mod datagram;
mod ext;
mod inet;
mod message;
mod message_server;
mod reserve;
mod seqpacket;
mod server;
mod stale;
mod stream;
#[allow(unsafe_code)]
mod sys;

pub use addr::{MAX_PATH_LEN, UnixAddr};
pub use bind::{ListenerOptions, StalePolicy};
pub use datagram::Datagram;
pub use ext::{MAX_FDS_PER_MESSAGE, PeerCredentials, UnixSocketExt};
pub use inet::{TcpAcceptor, TcpOptions, UdpOptions, UdpSocketExt};
pub use message::{DEFAULT_MAX_MESSAGE_SIZE, RecvBatch};
pub use message_server::{Client, MessageServer, MessageServerOptions, ServerListener};
pub use seqpacket::{Seqpacket, SeqpacketListener};
pub use server::Server;
pub use stale::{remove_socket_file, remove_stale_sockets, stale_sockets};
pub use stream::{StreamListener, connect_stream, connect_stream_timeout};

#[cfg(feature = "tokio")]
pub use ipc_core::Async;
pub use ipc_core::{
    Access, Cancel, Deadline, Error, FramedReader, FramedWriter, Interest, Key, MessageReceiver,
    MessageSender, Permissions, Result, Selector, Source,
};
