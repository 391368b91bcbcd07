//! TCP and UDP through socket2, with the options people tune, deadlines, and UDP truncation
//! detection. Connections and sockets are std's types.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use ipc_core::internal::poll_fd;
use ipc_core::{Deadline, Error, Result};
use nix::poll::PollFlags;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Options for TCP sockets, applied before `bind`, `listen` or `connect`.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use ipc_socket::TcpOptions;
///
/// let options = TcpOptions::new().nodelay(true).keepalive(Duration::from_secs(30));
/// let acceptor = options.listen("127.0.0.1:0")?;
/// let mut client = options.connect_timeout(acceptor.local_addr()?, Duration::from_secs(5))?;
/// let (mut server, _) = acceptor.accept_timeout(Duration::from_secs(5))?;
/// client.write_all(b"ok")?;
/// let mut buf = [0u8; 2];
/// server.read_exact(&mut buf)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TcpOptions {
    nodelay: bool,
    reuse_address: bool,
    reuse_port: bool,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
    keepalive: Option<Duration>,
    linger: Option<Option<Duration>>,
    only_v6: Option<bool>,
    backlog: i32,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            nodelay: false,
            reuse_address: true,
            reuse_port: false,
            send_buffer: None,
            recv_buffer: None,
            keepalive: None,
            linger: None,
            only_v6: None,
            backlog: 128,
        }
    }
}

impl TcpOptions {
    /// The defaults: Nagle on, `SO_REUSEADDR` on (as std's listeners), kernel buffer sizes,
    /// no keepalive, backlog 128.
    pub fn new() -> Self {
        Self::default()
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them (Nagle). Turn it
    /// on for request-reply traffic.
    #[must_use]
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// `SO_REUSEADDR`: bind a listener's port again while old connections linger.
    #[must_use]
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT`: let several sockets listen on one port, the kernel balancing
    /// connections between them.
    #[must_use]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_SNDBUF` in bytes (the kernel doubles it and caps it at `net.core.wmem_max`).
    #[must_use]
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// `SO_RCVBUF` in bytes (the kernel doubles it and caps it at `net.core.rmem_max`).
    #[must_use]
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE` set to `idle`: probe a silent peer after `idle`.
    #[must_use]
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// `SO_LINGER`: `Some(d)` makes `close` wait up to `d` for unsent data, `Some(ZERO)`
    /// resets the connection at once, `None` restores the default.
    #[must_use]
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = Some(linger);
        self
    }

    /// `IPV6_V6ONLY` for IPv6 sockets: refuse IPv4-mapped connections.
    #[must_use]
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// The listen backlog.
    #[must_use]
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog.max(0);
        self
    }

    fn socket(&self, addr: &SocketAddr, op: &'static str) -> Result<Socket> {
        let fail = |e: io::Error| Error::from(e).with_op(op).with_subject(addr.to_string());
        // socket2 creates sockets close-on-exec.
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(fail)?;
        socket.set_reuse_address(self.reuse_address).map_err(fail)?;
        if self.reuse_port {
            socket.set_reuse_port(true).map_err(fail)?;
        }
        socket.set_tcp_nodelay(self.nodelay).map_err(fail)?;
        if let Some(bytes) = self.send_buffer {
            socket.set_send_buffer_size(bytes).map_err(fail)?;
        }
        if let Some(bytes) = self.recv_buffer {
            socket.set_recv_buffer_size(bytes).map_err(fail)?;
        }
        if let Some(idle) = self.keepalive {
            socket
                .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))
                .map_err(fail)?;
        }
        if let Some(linger) = self.linger {
            socket.set_linger(linger).map_err(fail)?;
        }
        if let (Some(only), SocketAddr::V6(_)) = (self.only_v6, addr) {
            socket.set_only_v6(only).map_err(fail)?;
        }
        Ok(socket)
    }

    /// Binds and listens on `addr` (anything std's `TcpListener::bind` takes: a
    /// [`SocketAddr`], `"host:port"`, `("host", port)`...), trying each address it resolves
    /// to until one works.
    ///
    /// # Errors
    ///
    /// `AddrInUse`, `PermissionDenied` (ports below 1024) and other `bind`/`listen` errors
    /// (of the last address tried); the resolver's error if `addr` does not resolve.
    pub fn listen(&self, addr: impl ToSocketAddrs) -> Result<TcpAcceptor> {
        each_address(addr, "bind", |addr| self.listen_on(addr))
    }

    fn listen_on(&self, addr: SocketAddr) -> Result<TcpAcceptor> {
        let socket = self.socket(&addr, "bind")?;
        let fail = |op: &'static str| {
            move |e: io::Error| Error::from(e).with_op(op).with_subject(addr.to_string())
        };
        socket.bind(&addr.into()).map_err(fail("bind"))?;
        socket.listen(self.backlog).map_err(fail("listen"))?;
        // Non-blocking, so that `try_accept` and `accept_timeout` never wait in `accept`.
        socket.set_nonblocking(true).map_err(fail("fcntl"))?;
        Ok(TcpAcceptor {
            socket,
            _reserve: crate::reserve::hold(),
            options: self.clone(),
        })
    }

    /// Connects to `addr` (as [`listen`](TcpOptions::listen) takes it, each resolved address
    /// in turn), waiting as long as the kernel's own connect timeout.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` and other `connect` errors (of the last address tried); the
    /// resolver's error if `addr` does not resolve.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> Result<TcpStream> {
        each_address(addr, "connect", |addr| self.connect_to(addr))
    }

    fn connect_to(&self, addr: SocketAddr) -> Result<TcpStream> {
        let socket = self.socket(&addr, "connect")?;
        socket.connect(&addr.into()).map_err(|e| {
            Error::from(e)
                .with_op("connect")
                .with_subject(addr.to_string())
        })?;
        Ok(TcpStream::from(socket))
    }

    /// Connects to `addr`, waiting at most `timeout` in all (for a peer that does not
    /// answer, or a listener whose backlog is full); each resolved address is tried in turn
    /// with the time left.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`TcpOptions::connect`].
    pub fn connect_timeout(
        &self,
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> Result<TcpStream> {
        let deadline = Deadline::after(timeout);
        each_address(addr, "connect", |addr| {
            let left = deadline.remaining().unwrap_or(timeout);
            if left.is_zero() {
                return Err(Error::timed_out("connect").with_subject(addr.to_string()));
            }
            self.connect_to_within(addr, left)
        })
    }

    fn connect_to_within(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        let socket = self.socket(&addr, "connect")?;
        socket.connect_timeout(&addr.into(), timeout).map_err(|e| {
            let err = Error::from(e)
                .with_op("connect")
                .with_subject(addr.to_string());
            if err.kind() == io::ErrorKind::WouldBlock {
                Error::timed_out("connect").with_subject(addr.to_string())
            } else {
                err
            }
        })?;
        Ok(TcpStream::from(socket))
    }
}

/// Runs `attempt` on each address `addr` resolves to, as std's `bind` and `connect` do:
/// the first success, or the last error.
fn each_address<T>(
    addr: impl ToSocketAddrs,
    op: &'static str,
    mut attempt: impl FnMut(SocketAddr) -> Result<T>,
) -> Result<T> {
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| Error::from(e).with_op("resolve"))?;
    let mut last = None;
    for addr in addrs {
        match attempt(addr) {
            Ok(done) => return Ok(done),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(
            op,
            io::ErrorKind::InvalidInput,
            "the address resolved to no socket address",
        )
    }))
}

/// A listening TCP socket whose `accept` has `try_` and `_timeout` forms. Accepted
/// connections are std's [`TcpStream`], blocking, close-on-exec, with the
/// [`TcpOptions`]'s per-connection options (`TCP_NODELAY`) applied.
#[derive(Debug)]
pub struct TcpAcceptor {
    socket: Socket,
    _reserve: crate::reserve::Hold,
    options: TcpOptions,
}

impl TcpAcceptor {
    /// Waits for a connection.
    ///
    /// # Errors
    ///
    /// Out of descriptors (`EMFILE`, `ENFILE`): a limit error, after one waiting client was
    /// turned away (see the crate's docs); accept again to go on. Other `accept` errors.
    pub fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        self.accept_with(Some(Deadline::NEVER))
    }

    /// Accepts a connection if one is waiting.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if none is.
    pub fn try_accept(&self) -> Result<(TcpStream, SocketAddr)> {
        self.accept_with(None)
    }

    /// Waits at most `timeout` for a connection.
    ///
    /// # Errors
    ///
    /// `TimedOut` if none comes.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
        self.accept_with(Some(Deadline::after(timeout)))
    }

    fn accept_with(&self, deadline: Option<Deadline>) -> Result<(TcpStream, SocketAddr)> {
        use crate::reserve::Refused;
        let errno = |e: io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
        loop {
            match crate::reserve::accept("accept", || self.socket.accept().map_err(errno)) {
                Ok((socket, addr)) => {
                    let fail = |e: io::Error| Error::from(e).with_op("accept");
                    // Accepted sockets inherit nothing of the listener's mode on Linux, but
                    // be explicit: connections block.
                    socket.set_nonblocking(false).map_err(fail)?;
                    socket.set_tcp_nodelay(self.options.nodelay).map_err(fail)?;
                    let addr = addr.as_socket().ok_or_else(|| {
                        Error::new("accept", io::ErrorKind::InvalidData, "not an IP address")
                    })?;
                    return Ok((TcpStream::from(socket), addr));
                }
                Err(Refused::TurnedAway(err)) => return Err(err),
                Err(Refused::Errno(nix::errno::Errno::EINTR)) => {}
                Err(Refused::Errno(nix::errno::Errno::EAGAIN)) => match deadline {
                    None => return Err(Error::would_block("accept")),
                    Some(deadline) => {
                        poll_fd(&self.socket, PollFlags::POLLIN, deadline, "accept")?;
                    }
                },
                Err(Refused::Errno(errno)) => return Err(Error::from_errno("accept", errno)),
            }
        }
    }

    /// The address the socket is bound to (with the port the kernel chose for port 0).
    ///
    /// # Errors
    ///
    /// The `getsockname` error.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket
            .local_addr()
            .map_err(|e| Error::from(e).with_op("getsockname"))?
            .as_socket()
            .ok_or_else(|| {
                Error::new(
                    "getsockname",
                    io::ErrorKind::InvalidData,
                    "not an IP address",
                )
            })
    }
}

impl AsFd for TcpAcceptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Options for UDP sockets.
#[derive(Clone, Debug, Default)]
pub struct UdpOptions {
    reuse_address: bool,
    reuse_port: bool,
    broadcast: bool,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
    only_v6: Option<bool>,
}

impl UdpOptions {
    /// No reuse, no broadcast, kernel buffer sizes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SO_REUSEADDR`.
    #[must_use]
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT`: several sockets on one port, datagrams balanced between them.
    #[must_use]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_BROADCAST`.
    #[must_use]
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// `SO_SNDBUF` in bytes.
    #[must_use]
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// `SO_RCVBUF` in bytes: raise it when bursts of datagrams must not be dropped.
    #[must_use]
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// `IPV6_V6ONLY` for IPv6 sockets.
    #[must_use]
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// Binds a UDP socket to `addr` (as [`TcpOptions::listen`] takes it, each resolved
    /// address in turn).
    ///
    /// # Errors
    ///
    /// `AddrInUse` and other `bind` or `setsockopt` errors (of the last address tried); the
    /// resolver's error if `addr` does not resolve.
    pub fn bind(&self, addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        each_address(addr, "bind", |addr| self.bind_to(addr))
    }

    fn bind_to(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let fail = |e: io::Error| {
            Error::from(e)
                .with_op("bind")
                .with_subject(addr.to_string())
        };
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(fail)?;
        socket.set_reuse_address(self.reuse_address).map_err(fail)?;
        if self.reuse_port {
            socket.set_reuse_port(true).map_err(fail)?;
        }
        socket.set_broadcast(self.broadcast).map_err(fail)?;
        if let Some(bytes) = self.send_buffer {
            socket.set_send_buffer_size(bytes).map_err(fail)?;
        }
        if let Some(bytes) = self.recv_buffer {
            socket.set_recv_buffer_size(bytes).map_err(fail)?;
        }
        if let (Some(only), SocketAddr::V6(_)) = (self.only_v6, addr) {
            socket.set_only_v6(only).map_err(fail)?;
        }
        socket.bind(&addr.into()).map_err(fail)?;
        Ok(UdpSocket::from(socket))
    }
}

/// Receiving UDP datagrams without silent truncation, with try and timeout forms, for
/// std's [`UdpSocket`].
///
/// A plain `recv_from` into a buffer that is too small cuts the datagram and says nothing.
/// These methods take each datagram in one system call that also reports its real size
/// (`MSG_TRUNC`): one that did not fit is an error saying how large a buffer it needed,
/// never a silently shorter datagram, and threads sharing the socket never take each
/// other's datagrams. A buffer of 65 527 bytes (the largest UDP payload) never cuts one.
pub trait UdpSocketExt: AsFd {
    /// Receives the next datagram and its sender, waiting for one.
    ///
    /// # Errors
    ///
    /// Buffer too small, with the size the datagram needed (that datagram is gone); other
    /// `recvfrom` errors.
    fn recv_from_checked(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        udp_recv(self.as_fd(), buf, Some(Deadline::NEVER))
    }

    /// Receives the next datagram if one is queued.
    ///
    /// # Errors
    ///
    /// `WouldBlock`; otherwise as [`recv_from_checked`](UdpSocketExt::recv_from_checked).
    fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        udp_recv(self.as_fd(), buf, None)
    }

    /// Receives the next datagram, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; otherwise as [`recv_from_checked`](UdpSocketExt::recv_from_checked).
    fn recv_from_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<(usize, SocketAddr)> {
        udp_recv(self.as_fd(), buf, Some(Deadline::after(timeout)))
    }
}

impl UdpSocketExt for UdpSocket {}

fn udp_recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Deadline>,
) -> Result<(usize, SocketAddr)> {
    const OP: &str = "recvfrom";
    let socket = SockRef::from(&fd);
    // Waiting without a deadline is a plain blocking receive, the cheapest wake-up; a
    // socket the user made non-blocking says EAGAIN and is then waited on with poll.
    let flags = if deadline.is_some_and(|d| d.is_never()) {
        0
    } else {
        libc::MSG_DONTWAIT
    };
    let wait = |deadline: Option<Deadline>| match deadline {
        None => Err(Error::would_block(OP)),
        Some(deadline) => poll_fd(fd, PollFlags::POLLIN, deadline, OP).map(drop),
    };
    loop {
        match socket.recv_from_with_flags(crate::sys::as_uninit(buf), flags | libc::MSG_TRUNC) {
            Ok((n, _)) if n > buf.len() => {
                return Err(Error::buffer_too_small(OP, n, buf.len()));
            }
            Ok((n, addr)) => {
                let addr = addr.as_socket().ok_or_else(|| {
                    Error::new(OP, io::ErrorKind::InvalidData, "not an IP address")
                })?;
                return Ok((n, addr));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(deadline)?,
            Err(e) => return Err(Error::from(e).with_op(OP)),
        }
    }
}

impl ipc_core::Source for TcpAcceptor {
    fn readiness(&self, interest: ipc_core::Interest) -> ipc_core::Result<ipc_core::Readiness> {
        ipc_core::internal::readable_only(std::os::fd::AsFd::as_fd(self), interest, "a listener")
    }
}
