use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use ipc_socket::{
    Datagram, MessageReceiver, MessageSender, Seqpacket, SeqpacketListener, StreamListener,
    UnixAddr, connect_stream,
};
use ipc_testkit::LeakGuard;

fn cloexec(fd: impl AsFd) -> bool {
    let flags = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    flags & libc::FD_CLOEXEC != 0
}

fn abstract_addr(tag: &str) -> UnixAddr {
    UnixAddr::abstract_name(ipc_testkit::unique_name(tag).file_name())
}

#[test]
fn stream_over_path_and_abstract_addresses() {
    let guard = LeakGuard::new();
    for addr in [
        UnixAddr::path(guard.dir().join("s.sock")),
        abstract_addr("stream"),
    ] {
        let listener = StreamListener::bind(&addr).unwrap();
        assert!(cloexec(&listener));
        let mut client = connect_stream(&addr).unwrap();
        let (mut server, peer) = listener
            .accept_timeout(ipc_testkit::test_timeout())
            .unwrap();
        assert!(cloexec(&client) && cloexec(&server));
        assert_eq!(peer.pid, std::process::id());
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
}

#[test]
fn seqpacket_keeps_message_boundaries() {
    let guard = LeakGuard::new();
    for addr in [
        UnixAddr::path(guard.dir().join("q.sock")),
        abstract_addr("seq"),
    ] {
        let listener = SeqpacketListener::bind(&addr).unwrap();
        let client = Seqpacket::connect(&addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.send(b"one").unwrap();
        client.send(b"two!").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(server.recv(&mut buf).unwrap(), 3);
        assert_eq!(server.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"two!");
    }
}

#[test]
fn seqpacket_message_rules() {
    let (mut a, mut b) = Seqpacket::pair().unwrap();
    assert!(cloexec(&a));
    // Too small a buffer: the error says how much was needed; that message is gone (one
    // receive is one system call) and the next one is whole.
    a.send(&[7u8; 100]).unwrap();
    a.send(&[8u8; 99]).unwrap();
    let mut small = [0u8; 10];
    let err = b.recv(&mut small).unwrap_err();
    assert_eq!(err.needed_len(), Some(100));
    let mut big = [0u8; 100];
    assert_eq!(b.recv(&mut big).unwrap(), 99);
    assert_eq!(big[..99], [8u8; 99]);
    // Empty messages cannot be told from end of stream, so they are refused.
    assert_eq!(
        a.send(b"").unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    // Above the maximum: refused before sending.
    let a2 = a.try_clone().unwrap().with_max_message_size(8);
    assert!(a2.send(&[0u8; 9]).unwrap_err().is_limit_exceeded());
    // Try and timeout forms.
    assert!(
        MessageReceiver::try_recv(&mut b, &mut big)
            .unwrap_err()
            .is_would_block()
    );
    assert!(
        b.recv_timeout(&mut big, Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    // A peer that stops reading: sends fill the buffer, then time out.
    let mut filled = 0;
    while MessageSender::try_send(&mut a, &[1u8; 1000]).is_ok() {
        filled += 1;
    }
    assert!(filled > 0);
    assert!(
        a.send_timeout(&[1u8; 1000], Duration::from_millis(20))
            .unwrap_err()
            .is_timeout()
    );
    // Peer gone: the reader drains what is queued, then learns it.
    drop(a);
    drop(a2);
    let mut drained = 0;
    let mut message = [0u8; 1000];
    let err = loop {
        match b.recv(&mut message) {
            Ok(_) => drained += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(drained, filled);
    assert!(err.is_peer_gone(), "{err}");
}

#[test]
fn datagrams_between_bound_sockets() {
    let guard = LeakGuard::new();
    let server_addr = UnixAddr::path(guard.dir().join("d.sock"));
    let client_addr = abstract_addr("dgram-client");
    let server = Datagram::bind(&server_addr).unwrap();
    let client = Datagram::bind(&client_addr).unwrap();
    client.send_to(b"hello", &server_addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&b"hello"[..], Some(client_addr.clone()))
    );
    // A datagram that does not fit is reported with its size, never cut silently.
    client.send_to(&[1u8; 64], &server_addr).unwrap();
    client.send_to(&[2u8; 63], &server_addr).unwrap();
    assert_eq!(
        server.recv_from(&mut buf).unwrap_err().needed_len(),
        Some(64)
    );
    let mut big = [0u8; 64];
    assert_eq!(server.recv(&mut big).unwrap(), 63);
    // Connected pair, message traits, zero-length datagrams are messages too.
    let (mut a, mut b) = Datagram::pair().unwrap();
    a.send(b"").unwrap();
    assert_eq!(b.recv(&mut buf).unwrap(), 0);
    assert!(
        MessageReceiver::recv_timeout(&mut b, &mut buf, Duration::from_millis(10))
            .unwrap_err()
            .is_timeout()
    );
    MessageSender::try_send(&mut a, b"x").unwrap();
    assert_eq!(MessageReceiver::try_recv(&mut b, &mut buf).unwrap(), 1);
}

#[test]
fn stream_socketpair_and_framing() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut tx = ipc_socket::FramedWriter::new(a);
    let mut rx = ipc_socket::FramedReader::new(b);
    tx.send(b"framed").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        MessageReceiver::recv_timeout(&mut rx, &mut buf, ipc_testkit::test_timeout()).unwrap(),
        6
    );
    drop(tx);
    assert!(rx.recv(&mut buf).unwrap_err().is_peer_gone());
}

#[test]
fn paths_longer_than_sun_path_are_refused() {
    let long = UnixAddr::path(format!("/tmp/{}", "x".repeat(200)));
    let err = StreamListener::bind(&long).unwrap_err();
    assert!(err.is_limit_exceeded());
    assert!(err.to_string().contains("sun_path"), "{err}");
}

#[test]
fn unix_socket_buffers_can_be_sized_and_bound_the_message_size() {
    use ipc_socket::UnixSocketExt;

    let (a, b) = Seqpacket::pair().unwrap();
    a.set_send_buffer_size(4096).unwrap();
    // The kernel doubles what is asked, for its bookkeeping.
    assert!(a.send_buffer_size().unwrap() >= 4096);
    let err = a.try_send(&[7; 16 * 1024]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("set_send_buffer_size"), "{err}");

    a.set_send_buffer_size(64 * 1024).unwrap();
    assert!(a.send_buffer_size().unwrap() >= 64 * 1024);
    a.try_send(&[7; 16 * 1024]).unwrap();
    let mut buf = vec![0; 16 * 1024];
    assert_eq!(
        b.recv_timeout(&mut buf, ipc_testkit::test_timeout())
            .unwrap(),
        16 * 1024
    );

    b.set_recv_buffer_size(32 * 1024).unwrap();
    assert!(b.recv_buffer_size().unwrap() >= 32 * 1024);
    let (stream, _other) = std::os::unix::net::UnixStream::pair().unwrap();
    stream.set_send_buffer_size(8192).unwrap();
    assert!(stream.send_buffer_size().unwrap() >= 8192);
}

/// A blocking receive made while a cancellation token is watched waits in a poll that
/// watches it; the socket's own receive timeout still ends it as the kernel would.
#[test]
fn a_watched_blocking_receive_keeps_the_sockets_timeout_and_ends_on_cancel() {
    let (end, _other) = ipc_socket::Datagram::pair().unwrap();
    let timeout = std::time::Duration::from_millis(50);
    end.as_std().set_read_timeout(Some(timeout)).unwrap();
    let token = ipc_socket::Cancel::new().unwrap();
    let started = std::time::Instant::now();
    let err = token.watch(|| end.recv(&mut [0u8; 16])).unwrap_err();
    assert!(err.is_would_block(), "{err}");
    assert!(started.elapsed() >= timeout);
    token.cancel();
    let err = token.watch(|| end.recv(&mut [0u8; 16])).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}
