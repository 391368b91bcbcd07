//! Unix stream sockets: a listener with the safety std's lacks, and connecting with a
//! deadline. Connections are std's `UnixStream`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ipc_core::{Deadline, Result};
use nix::sys::socket::SockType;

use crate::bind::{self, BoundPath, ListenerOptions};
use crate::{PeerCredentials, UnixAddr};

/// The listening end of Unix stream connections; accepted connections are std's
/// [`UnixStream`], so everything std and this crate's
/// [`UnixSocketExt`](crate::UnixSocketExt) offer works on them.
///
/// Compared with std's `UnixListener`: the socket file gets exact permissions at bind
/// (owner-only by default), a stale file left by a crashed process is reclaimed safely, the
/// file is removed when the listener is dropped, only allowed users can be let in, every
/// accept reports the peer's credentials, and `accept` has `try_` and `_timeout` forms.
///
/// ```
/// use std::io::{Read, Write};
/// use ipc_socket::{StreamListener, UnixAddr, connect_stream};
///
/// # let dir = std::env::temp_dir().join(format!("stream-doc-{}", std::process::id()));
/// # std::fs::create_dir(&dir)?;
/// let addr = UnixAddr::path(dir.join("echo.sock"));
/// let listener = StreamListener::bind(&addr)?;
/// let mut client = connect_stream(&addr)?;
/// let (mut server_side, peer) = listener.accept()?;
/// assert_eq!(peer.pid, std::process::id());
/// client.write_all(b"hi")?;
/// let mut buf = [0u8; 2];
/// server_side.read_exact(&mut buf)?;
/// drop(listener); // removes echo.sock
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StreamListener {
    pub(crate) fd: OwnedFd,
    pub(crate) addr: UnixAddr,
    pub(crate) bound: Option<BoundPath>,
    pub(crate) allowed_uids: Option<Vec<u32>>,
    _reserve: crate::reserve::Hold,
}

impl StreamListener {
    /// Binds with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind_stream`].
    pub fn bind(addr: &UnixAddr) -> Result<Self> {
        ListenerOptions::new().bind_stream(addr)
    }

    /// Waits for a connection from an allowed peer.
    ///
    /// # Errors
    ///
    /// Out of descriptors (`EMFILE`, `ENFILE`): a limit error, after one waiting client was
    /// turned away (see the crate's docs); accept again to go on. Other `accept4` errors.
    pub fn accept(&self) -> Result<(UnixStream, PeerCredentials)> {
        self.accept_with(Some(Deadline::NEVER))
    }

    /// Accepts a connection if one is waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is; the `accept4` error otherwise.
    pub fn try_accept(&self) -> Result<(UnixStream, PeerCredentials)> {
        self.accept_with(None)
    }

    /// Waits at most `timeout` for a connection.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none comes; the `accept4` error otherwise.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(UnixStream, PeerCredentials)> {
        self.accept_with(Some(Deadline::after(timeout)))
    }

    fn accept_with(&self, deadline: Option<Deadline>) -> Result<(UnixStream, PeerCredentials)> {
        let (fd, credentials) = accept_allowed(&self.fd, &self.allowed_uids, deadline)?;
        Ok((UnixStream::from(fd), credentials))
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> &UnixAddr {
        &self.addr
    }

    /// Keeps the socket file after the listener is dropped.
    pub fn persist(&mut self) {
        if let Some(bound) = &mut self.bound {
            bound.persist();
        }
    }
}

/// Accepts connections until one comes from an allowed user; the others are closed at once.
pub(crate) fn accept_allowed(
    listener: &OwnedFd,
    allowed: &Option<Vec<u32>>,
    deadline: Option<Deadline>,
) -> Result<(OwnedFd, PeerCredentials)> {
    loop {
        let fd = bind::accept(listener, deadline, "accept4")?;
        // Read on the accepted descriptor itself: no second one, even for a moment.
        let credentials = crate::ext::peer_credentials_of(fd.as_fd())?;
        match allowed {
            Some(uids) if !uids.contains(&credentials.uid) => drop(fd),
            _ => return Ok((fd, credentials)),
        }
    }
}

impl AsFd for StreamListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl ListenerOptions {
    /// Binds a stream listener to `addr`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if a process listens on the path (or holds its lock), or the path exists
    /// and [`StalePolicy::Fail`](crate::StalePolicy::Fail) is set; `AlreadyExists` if the
    /// path is not a socket (it is never removed); `PermissionDenied` if another user owns
    /// the socket file; a limit error for a path longer than 107 bytes; other `bind` errors.
    pub fn bind_stream(&self, addr: &UnixAddr) -> Result<StreamListener> {
        let (fd, bound) = bind::bind(SockType::Stream, addr, self, true)?;
        Ok(StreamListener {
            fd,
            addr: addr.clone(),
            bound,
            allowed_uids: self.allowed_uids.clone(),
            _reserve: crate::reserve::hold(),
        })
    }
}

/// Connects to a Unix stream listener (close-on-exec), waiting as long as a full backlog
/// takes to make room.
///
/// # Errors
///
/// `ConnectionRefused` if nobody listens; `NotFound` if the path does not exist; other
/// `connect` errors.
pub fn connect_stream(addr: &UnixAddr) -> Result<UnixStream> {
    bind::connect(SockType::Stream, addr, Deadline::NEVER).map(UnixStream::from)
}

/// Connects to a Unix stream listener, waiting at most `timeout` for a full backlog.
///
/// # Errors
///
/// `TimedOut`; otherwise as [`connect_stream`].
pub fn connect_stream_timeout(addr: &UnixAddr, timeout: Duration) -> Result<UnixStream> {
    bind::connect(SockType::Stream, addr, Deadline::after(timeout)).map(UnixStream::from)
}

impl ipc_core::Source for StreamListener {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a listener")
    }
}
