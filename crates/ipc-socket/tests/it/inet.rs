use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipc_socket::{TcpOptions, UdpOptions, UdpSocketExt};

#[test]
fn tcp_options_are_applied() {
    let options = TcpOptions::new()
        .nodelay(true)
        .send_buffer(256 * 1024)
        .recv_buffer(256 * 1024)
        .keepalive(Duration::from_secs(60));
    let acceptor = options.listen("127.0.0.1:0").unwrap();
    let addr = acceptor.local_addr().unwrap();
    let mut client = options
        .connect_timeout(addr, ipc_testkit::test_timeout())
        .unwrap();
    let (mut server, peer) = acceptor
        .accept_timeout(ipc_testkit::test_timeout())
        .unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert!(client.nodelay().unwrap() && server.nodelay().unwrap());
    let sock = socket2::SockRef::from(&client);
    assert!(sock.keepalive().unwrap());
    assert!(sock.send_buffer_size().unwrap() >= 256 * 1024);
    client.write_all(b"over tcp").unwrap();
    let mut buf = [0u8; 8];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over tcp");
    // Framing over TCP works the same as over Unix streams.
    let mut tx = ipc_socket::FramedWriter::new(client);
    let mut rx = ipc_socket::FramedReader::new(server);
    tx.send(b"message").unwrap();
    let n =
        ipc_socket::MessageReceiver::recv_timeout(&mut rx, &mut buf, ipc_testkit::test_timeout())
            .unwrap();
    assert_eq!(&buf[..n], b"message"[..n].as_ref());
}

#[test]
fn tcp_accept_and_connect_have_deadlines() {
    let acceptor = TcpOptions::new().backlog(0).listen("127.0.0.1:0").unwrap();
    let start = Instant::now();
    assert!(
        acceptor
            .accept_timeout(Duration::from_millis(50))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(acceptor.try_accept().unwrap_err().is_would_block());
    // Nobody accepts: once the accept queue is full the kernel drops SYNs, and a connect
    // waits for an answer that never comes, until the deadline.
    let addr = acceptor.local_addr().unwrap();
    let mut queued = Vec::new();
    let err = loop {
        match TcpOptions::new().connect_timeout(addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(err) => break err,
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    };
    assert!(err.is_timeout(), "{err}");
    // A closed port is refused at once.
    drop(queued);
    drop(acceptor);
    let err = TcpOptions::new()
        .connect_timeout(addr, ipc_testkit::test_timeout())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn udp_truncation_is_detected_and_the_datagram_kept() {
    let server = UdpOptions::new()
        .recv_buffer(1 << 20)
        .bind("127.0.0.1:0")
        .unwrap();
    let client = UdpOptions::new().bind("127.0.0.1:0").unwrap();
    // A datagram that does not fit is reported with its size (and gone), never cut.
    for len in [100, 99] {
        client
            .send_to(&vec![9u8; len], server.local_addr().unwrap())
            .unwrap();
    }
    let mut small = [0u8; 10];
    let err = server
        .recv_from_timeout(&mut small, ipc_testkit::test_timeout())
        .unwrap_err();
    assert_eq!(err.needed_len(), Some(100));
    let mut big = [0u8; 100];
    let (n, from) = server.recv_from_checked(&mut big).unwrap();
    assert_eq!((n, from), (99, client.local_addr().unwrap()));
    assert!(server.try_recv_from(&mut big).unwrap_err().is_would_block());
    let start = Instant::now();
    assert!(
        server
            .recv_from_timeout(&mut big, Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn addresses_are_taken_as_std_takes_them_and_each_is_tried_in_turn() {
    let options = TcpOptions::new();
    let acceptor = options.listen(("127.0.0.1", 0)).unwrap();
    let port = acceptor.local_addr().unwrap().port();
    let _by_string = options.connect(format!("127.0.0.1:{port}")).unwrap();
    // Nothing listens on the first address (IPv6 loopback, or no IPv6 at all): the second
    // is tried.
    let both: [SocketAddr; 2] = [
        format!("[::1]:{port}").parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    ];
    let _second = options
        .connect_timeout(&both[..], ipc_testkit::test_timeout())
        .unwrap();
    for _ in 0..2 {
        acceptor
            .accept_timeout(ipc_testkit::test_timeout())
            .unwrap();
    }

    let none: &[SocketAddr] = &[];
    let err = options.connect(none).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = options.listen("not an address").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.op(), "resolve");
    let udp = UdpOptions::new().bind(("127.0.0.1", 0)).unwrap();
    assert!(udp.local_addr().unwrap().ip().is_loopback());
}
