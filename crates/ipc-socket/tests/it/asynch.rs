//! Sockets on a tokio runtime, across processes: an async seqpacket server that checks
//! each client's credentials and passes it a descriptor, clients with a runtime of their
//! own, a receive dropped half-way, tasks sharing a connection when its peer is killed, and
//! datagrams with their senders' credentials.

use std::os::fd::AsFd;

use ipc_socket::{Datagram, Seqpacket, UnixAddr, UnixSocketExt};
use ipc_testkit::{PeerContext, PeerResult, test_timeout};

/// Connects to the seqpacket listener at arg 0 and, on a current-thread runtime, asks for
/// a descriptor ("give"), then reports what the file it received says.
pub fn async_client_role(ctx: &mut PeerContext) -> PeerResult {
    let conn = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    ctx.ready()?;
    #[cfg(feature = "tokio")]
    {
        use std::io::Read;

        let runtime = ipc_testkit::runtime()?;
        let mut conn = ipc_socket::Async::new(conn);
        let (n, fds) = runtime.block_on(async {
            conn.send(b"give").await?;
            let mut buf = [0u8; 16];
            let (n, fds) = tokio::time::timeout(
                test_timeout(),
                conn.read_with(|c| c.try_recv_with_fds(&mut buf, 1)),
            )
            .await??;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((buf[..n].to_vec(), fds))
        })?;
        let mut text = String::from_utf8(n)?;
        for fd in fds {
            text.push(' ');
            std::fs::File::from(fd).read_to_string(&mut text)?;
        }
        ctx.send(&text)?;
    }
    #[cfg(not(feature = "tokio"))]
    {
        drop(conn);
        ctx.send("no tokio")?;
    }
    Ok(())
}

/// Connects to the seqpacket listener at arg 0, says ready, and sends each line it
/// receives as a message with a descriptor of its `/proc/self/status` attached, answering
/// "sent", until "end".
pub fn line_sender_role(ctx: &mut PeerContext) -> PeerResult {
    let conn = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    let status = std::fs::File::open("/proc/self/status")?;
    ctx.ready()?;
    loop {
        let line = ctx.recv()?;
        if line == "end" {
            return Ok(());
        }
        conn.send_with_fds(line.as_bytes(), &[status.as_fd()])?;
        ctx.send("sent")?;
    }
}

/// Sends datagrams "0".."arg 1" to the socket at arg 0, then exits.
pub fn datagram_sender_role(ctx: &mut PeerContext) -> PeerResult {
    let count: usize = ctx.arg(1)?.parse()?;
    let socket = Datagram::unbound()?;
    ctx.ready()?;
    let to = UnixAddr::path(ctx.arg(0)?);
    for n in 0..count {
        socket.send_to(n.to_string().as_bytes(), &to)?;
    }
    Ok(())
}

/// Connects to the seqpacket listener at arg 0 and says ready; reads nothing until told
/// "go", then receives messages until "end" and reports their count and whether each was
/// `message i`, in order; then sends "reply 0".."reply 2" and exits.
pub fn slow_reader_role(ctx: &mut PeerContext) -> PeerResult {
    let mut conn = Seqpacket::connect_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    ctx.ready()?;
    if ctx.recv()? != "go" {
        return Err("expected go".into());
    }
    let mut buf = [0u8; 64];
    let mut count = 0;
    let mut in_order = true;
    loop {
        let n = ipc_socket::MessageReceiver::recv_timeout(&mut conn, &mut buf, test_timeout())?;
        if &buf[..n] == b"end" {
            break;
        }
        in_order &= buf[..n] == *format!("message {count}").as_bytes();
        count += 1;
    }
    ctx.send(&format!("{count} {in_order}"))?;
    for i in 0..3 {
        conn.send(format!("reply {i}").as_bytes())?;
    }
    Ok(())
}

/// Connects to the stream listener at arg 0, says ready and echoes every frame it reads
/// (blocking `FramedReader`/`FramedWriter`) until the stream ends.
pub fn framed_echo_role(ctx: &mut PeerContext) -> PeerResult {
    let stream = ipc_socket::connect_stream_timeout(&UnixAddr::path(ctx.arg(0)?), test_timeout())?;
    let mut reader =
        ipc_socket::FramedReader::new(stream.try_clone()?).with_max_message_size(FRAMED_MAX);
    let mut writer = ipc_socket::FramedWriter::new(stream).with_max_message_size(FRAMED_MAX);
    ctx.ready()?;
    let mut buf = vec![0u8; FRAMED_MAX];
    loop {
        match reader.recv(&mut buf) {
            Ok(n) => writer.send(&buf[..n])?,
            Err(err) if err.is_peer_gone() && !err.is_cut_short() => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
}

/// Connects to the TCP address arg 0 (through `TcpOptions`), says ready and echoes every
/// byte until the stream ends.
pub fn tcp_echo_role(ctx: &mut PeerContext) -> PeerResult {
    let stream = ipc_socket::TcpOptions::new()
        .nodelay(true)
        .connect_timeout(ctx.arg(0)?, test_timeout())?;
    ctx.ready()?;
    std::io::copy(&mut &stream, &mut &stream)?;
    Ok(())
}

/// Binds a UDP socket (through `UdpOptions`), sends "hello" to arg 0, and echoes arg 1
/// datagrams back to their senders.
pub fn udp_echo_role(ctx: &mut PeerContext) -> PeerResult {
    use ipc_socket::UdpSocketExt;

    let count: usize = ctx.arg(1)?.parse()?;
    let socket = ipc_socket::UdpOptions::new().bind("127.0.0.1:0")?;
    ctx.ready()?;
    socket.send_to(b"hello", ctx.arg(0)?)?;
    let mut buf = [0u8; 64];
    for _ in 0..count {
        let (n, from) = socket.recv_from_timeout(&mut buf, test_timeout())?;
        socket.send_to(&buf[..n], from)?;
    }
    Ok(())
}

/// The largest framed message in the echo test: several socket buffers.
const FRAMED_MAX: usize = 1 << 20;

/// Message `i` of the framed echo test: sizes from one byte to `FRAMED_MAX`.
#[cfg(feature = "tokio")]
fn framed_message(i: usize) -> Vec<u8> {
    let len = [1, 100, 4096, 70_000, 300_000, FRAMED_MAX][i % 6];
    (0..len).map(|j| (i + j).to_le_bytes()[0]).collect()
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::collections::BTreeSet;
    use std::io::Read;
    use std::sync::Arc;
    use std::time::Duration;

    use ipc_socket::{Async, Datagram, SeqpacketListener, UnixAddr, UnixSocketExt};
    use ipc_testkit::{LeakGuard, Peer, test_timeout};

    #[test]
    fn an_async_server_checks_each_client_s_credentials_and_passes_it_a_descriptor() {
        let guard = LeakGuard::new();
        let addr = UnixAddr::path(guard.dir().join("async.sock"));
        let mut listener = Async::new(SeqpacketListener::bind(&addr).unwrap());
        let path = addr.as_path().unwrap().to_str().unwrap().to_owned();
        let mut clients: Vec<Peer> = (0..3)
            .map(|_| Peer::spawn("async-client", &[&path]))
            .collect();
        let pids: BTreeSet<u32> = clients.iter().map(Peer::pid).collect();
        let files = guard.dir().to_owned();
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut served = BTreeSet::new();
            let mut tasks = Vec::new();
            for _ in 0..clients.len() {
                let (conn, creds) =
                    tokio::time::timeout(test_timeout(), listener.read_with(|l| l.try_accept()))
                        .await
                        .expect("a connection in time")
                        .unwrap();
                assert!(pids.contains(&creds.pid), "a client of this test");
                served.insert(creds.pid);
                let path = files.join(format!("for-{}", creds.pid));
                tasks.push(tokio::spawn(async move {
                    let mut conn = Async::new(conn);
                    let mut buf = [0u8; 16];
                    let n = conn.recv(&mut buf).await.unwrap();
                    assert_eq!(&buf[..n], b"give");
                    std::fs::write(&path, format!("for {}", creds.pid)).unwrap();
                    let file = std::fs::File::open(&path).unwrap();
                    std::fs::remove_file(&path).unwrap();
                    conn.write_with(|c| {
                        c.try_send_with_fds(b"here", &[std::os::fd::AsFd::as_fd(&file)])
                    })
                    .await
                    .unwrap();
                }));
            }
            assert_eq!(served, pids, "each client once");
            for task in tasks {
                task.await.unwrap();
            }
        });
        for client in &mut clients {
            assert_eq!(client.recv().unwrap(), format!("here for {}", client.pid()));
            client.wait_success().unwrap();
        }
    }

    #[test]
    fn a_receive_with_descriptors_dropped_half_way_loses_nothing() {
        let guard = LeakGuard::new();
        let addr = UnixAddr::path(guard.dir().join("drop.sock"));
        let listener = SeqpacketListener::bind(&addr).unwrap();
        let mut peer = Peer::spawn("line-sender", &[addr.as_path().unwrap().to_str().unwrap()]);
        let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
        let mut conn = Async::new(conn);
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut buf = [0u8; 16];
            let dropped = tokio::time::timeout(
                Duration::from_millis(30),
                conn.read_with(|c| c.try_recv_with_fds(&mut buf, 1)),
            );
            assert!(dropped.await.is_err());
            peer.send("after the drop").unwrap();
            assert_eq!(peer.recv().unwrap(), "sent");
            let (n, fds) = tokio::time::timeout(
                test_timeout(),
                conn.read_with(|c| c.try_recv_with_fds(&mut buf, 1)),
            )
            .await
            .expect("the message in time")
            .unwrap();
            assert_eq!(&buf[..n], b"after the drop");
            let mut status = String::new();
            std::fs::File::from(fds.into_iter().next().unwrap())
                .read_to_string(&mut status)
                .unwrap();
            assert!(status.contains(&format!("\nPid:\t{}\n", peer.pid())));
        });
        peer.send("end").unwrap();
        peer.wait_success().unwrap();
    }

    #[test]
    fn tasks_sharing_a_connection_get_every_message_once_and_see_its_peer_killed() {
        let guard = LeakGuard::new();
        let addr = UnixAddr::path(guard.dir().join("shared.sock"));
        let listener = SeqpacketListener::bind(&addr).unwrap();
        let mut peer = Peer::spawn("line-sender", &[addr.as_path().unwrap().to_str().unwrap()]);
        let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
        let conn = Arc::new(conn);
        let runtime = ipc_testkit::runtime().unwrap();
        let received = runtime.block_on(async {
            // Each task has its own registration of the one connection.
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let mut conn = Async::new(Arc::clone(&conn));
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        let mut buf = [0u8; 16];
                        loop {
                            let received = tokio::time::timeout(
                                test_timeout(),
                                conn.read_with(|c| c.try_recv_with_fds(&mut buf, 1)),
                            )
                            .await
                            .expect("a message or the end in time");
                            match received {
                                Ok((n, _)) => {
                                    got.push(String::from_utf8_lossy(&buf[..n]).into_owned())
                                }
                                Err(err) => {
                                    assert!(err.is_peer_gone(), "{err}");
                                    return got;
                                }
                            }
                        }
                    })
                })
                .collect();
            for n in 0..40 {
                peer.send(&n.to_string()).unwrap();
                assert_eq!(peer.recv().unwrap(), "sent");
                tokio::task::yield_now().await;
            }
            // Killed while every task waits: each wait ends.
            peer.kill().unwrap();
            let mut received = Vec::new();
            for task in tasks {
                received.extend(task.await.unwrap());
            }
            received
        });
        let received: BTreeSet<u32> = received.iter().map(|m| m.parse().unwrap()).collect();
        assert_eq!(received, (0..40).collect(), "each message once, none lost");
    }

    #[test]
    fn datagrams_arrive_with_their_sender_s_credentials() {
        let guard = LeakGuard::new();
        let addr = UnixAddr::path(guard.dir().join("creds.sock"));
        let socket = Datagram::bind(&addr).unwrap();
        socket.set_pass_credentials(true).unwrap();
        let mut socket = Async::new(socket);
        let mut peer = Peer::spawn(
            "datagram-sender",
            &[addr.as_path().unwrap().to_str().unwrap(), "20"],
        );
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut buf = [0u8; 16];
            for expected in 0..20 {
                let (n, creds) = tokio::time::timeout(
                    test_timeout(),
                    socket.read_with(|s| s.try_recv_with_credentials(&mut buf)),
                )
                .await
                .expect("the datagram in time")
                .unwrap();
                assert_eq!(&buf[..n], expected.to_string().as_bytes());
                let creds = creds.expect("credentials are passed");
                assert_eq!((creds.pid, creds.uid), (peer.pid(), 0));
            }
        });
        peer.wait_success().unwrap();
    }

    /// A framed connection to a `framed-echo` peer: its reading and writing halves.
    fn framed_echo(
        guard: &LeakGuard,
    ) -> (
        Peer,
        Async<ipc_socket::FramedReader<std::os::unix::net::UnixStream>>,
        Async<ipc_socket::FramedWriter<std::os::unix::net::UnixStream>>,
    ) {
        let addr = UnixAddr::path(guard.dir().join("framed.sock"));
        let listener = ipc_socket::StreamListener::bind(&addr).unwrap();
        let peer = Peer::spawn("framed-echo", &[addr.as_path().unwrap().to_str().unwrap()]);
        let (stream, _) = listener.accept_timeout(test_timeout()).unwrap();
        let reader = Async::new(
            ipc_socket::FramedReader::new(stream.try_clone().unwrap())
                .with_max_message_size(super::FRAMED_MAX),
        );
        let writer = Async::new(
            ipc_socket::FramedWriter::new(stream).with_max_message_size(super::FRAMED_MAX),
        );
        (peer, reader, writer)
    }

    #[test]
    fn framed_streams_are_async_message_endpoints_across_processes() {
        let guard = LeakGuard::new();
        let (mut peer, mut reader, mut writer) = framed_echo(&guard);
        let count = 24;
        ipc_testkit::runtime().unwrap().block_on(async {
            // Both directions at once on one thread: a send that would block must not, or
            // the echo (which waits for this side to read) would never finish.
            let sending = async {
                for i in 0..count {
                    writer.send(&super::framed_message(i)).await.unwrap();
                }
                writer.write_with(|w| w.try_flush()).await.unwrap();
                assert!(!writer.get_ref().has_pending());
            };
            let receiving = async {
                let mut buf = Vec::new();
                for i in 0..count {
                    let n = reader.recv_vec(&mut buf).await.unwrap();
                    assert_eq!(n, super::framed_message(i).len(), "message {i}");
                    assert!(buf == super::framed_message(i), "message {i} intact");
                }
            };
            tokio::time::timeout(test_timeout(), async { tokio::join!(sending, receiving) })
                .await
                .expect("every message echoed in time");
        });
        // Closing this side ends the echo.
        drop(writer);
        drop(reader);
        peer.wait_success().unwrap();
    }

    #[test]
    fn tcp_built_through_our_options_is_async_read_and_write_across_processes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let acceptor = ipc_socket::TcpOptions::new()
            .nodelay(true)
            .listen("127.0.0.1:0")
            .unwrap();
        let addr = acceptor.local_addr().unwrap().to_string();
        let mut peer = Peer::spawn("tcp-echo", &[&addr]);
        let mut acceptor = Async::new(acceptor);
        let data: Vec<u8> = (0..1usize << 20)
            .map(|i| (i / 3).to_le_bytes()[0])
            .collect();
        ipc_testkit::runtime().unwrap().block_on(async {
            let (stream, from) =
                tokio::time::timeout(test_timeout(), acceptor.read_with(|a| a.try_accept()))
                    .await
                    .expect("the connection in time")
                    .unwrap();
            assert!(from.ip().is_loopback());
            let mut reader = Async::new(stream.try_clone().unwrap());
            let mut writer = Async::new(stream);
            let echoed = tokio::time::timeout(test_timeout(), async {
                let sending = async {
                    writer.write_all(&data).await.unwrap();
                    writer.shutdown().await.unwrap();
                };
                let mut echoed = Vec::new();
                let receiving = reader.read_to_end(&mut echoed);
                let ((), read) = tokio::join!(sending, receiving);
                read.unwrap();
                echoed
            })
            .await
            .expect("the echo in time");
            assert!(echoed == data, "1 MiB echoed intact");
        });
        peer.wait_success().unwrap();
    }

    /// The next datagram and its sender, within the test timeout.
    async fn udp_recv(
        socket: &mut Async<std::net::UdpSocket>,
        buf: &mut [u8],
    ) -> (usize, std::net::SocketAddr) {
        use ipc_socket::UdpSocketExt;

        tokio::time::timeout(test_timeout(), socket.read_with(|s| s.try_recv_from(buf)))
            .await
            .expect("a datagram in time")
            .unwrap()
    }

    #[test]
    fn udp_built_through_our_options_sends_and_receives_async_across_processes() {
        let socket = ipc_socket::UdpOptions::new().bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let count = 20;
        let mut peer = Peer::spawn("udp-echo", &[&addr, &count.to_string()]);
        let mut socket = Async::new(socket);
        ipc_testkit::runtime().unwrap().block_on(async {
            let mut buf = [0u8; 64];
            let (n, echo) = udp_recv(&mut socket, &mut buf).await;
            assert_eq!(&buf[..n], b"hello");
            for i in 0..count {
                let msg = format!("datagram {i}");
                socket
                    .write_with(|s| {
                        s.send_to(msg.as_bytes(), echo)
                            .map_err(ipc_socket::Error::from)
                    })
                    .await
                    .unwrap();
                let (n, from) = udp_recv(&mut socket, &mut buf).await;
                assert_eq!((&buf[..n], from), (msg.as_bytes(), echo));
            }
        });
        peer.wait_success().unwrap();
    }

    #[test]
    fn a_connection_is_a_sink_and_its_messages_a_stream_across_processes() {
        use futures_util::{SinkExt, StreamExt};

        let guard = LeakGuard::new();
        let addr = UnixAddr::path(guard.dir().join("sink.sock"));
        let listener = SeqpacketListener::bind(&addr).unwrap();
        let mut peer = Peer::spawn("slow-reader", &[addr.as_path().unwrap().to_str().unwrap()]);
        let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
        let mut conn = Async::new(conn);
        let count = 5_000;
        let replies = ipc_testkit::runtime().unwrap().block_on(async {
            // The peer reads nothing yet: the socket fills, one message is kept for want of
            // room, and the next `feed` waits; dropped there, it has accepted nothing.
            let mut accepted = 0;
            while accepted < count {
                let message = format!("message {accepted}").into_bytes();
                match tokio::time::timeout(Duration::from_millis(50), conn.feed(message)).await {
                    Ok(fed) => fed.unwrap(),
                    Err(_) => break,
                }
                accepted += 1;
            }
            assert!(accepted < count, "the socket held all {count} messages");
            peer.send("go").unwrap();
            for i in accepted..count {
                conn.feed(format!("message {i}").into_bytes())
                    .await
                    .unwrap();
            }
            // `send` goes after what the sink accepted.
            conn.send(b"end").await.unwrap();
            conn.flush().await.unwrap();
            let mut replies = Vec::new();
            let mut messages = conn.messages();
            while let Some(message) = tokio::time::timeout(test_timeout(), messages.next())
                .await
                .expect("the replies and the end in time")
            {
                replies.push(String::from_utf8(message.unwrap()).unwrap());
            }
            replies
        });
        assert_eq!(peer.recv().unwrap(), format!("{count} true"));
        assert_eq!(replies, ["reply 0", "reply 1", "reply 2"], "then the end");
        peer.wait_success().unwrap();
    }

    #[test]
    fn a_framed_sink_closes_only_once_its_cut_frames_are_sent() {
        use futures_util::{SinkExt, StreamExt};

        let guard = LeakGuard::new();
        let (mut peer, mut reader, mut writer) = framed_echo(&guard);
        let count = 12;
        ipc_testkit::runtime().unwrap().block_on(async {
            let sending = async {
                let mut messages =
                    futures_util::stream::iter((0..count).map(|i| Ok(super::framed_message(i))));
                writer.send_all(&mut messages).await.unwrap();
                // Frames larger than the socket buffer are cut: closing waits for their rest.
                writer.close().await.unwrap();
                assert!(!writer.get_ref().has_pending());
            };
            let receiving = async {
                let echoed: Vec<Vec<u8>> = reader
                    .messages()
                    .take(count)
                    .map(|message| message.unwrap())
                    .collect()
                    .await;
                for (i, message) in echoed.iter().enumerate() {
                    assert!(*message == super::framed_message(i), "message {i} intact");
                }
                echoed.len()
            };
            let ((), received) =
                tokio::time::timeout(test_timeout(), async { tokio::join!(sending, receiving) })
                    .await
                    .expect("every message echoed in time");
            assert_eq!(received, count);
        });
        drop(writer);
        drop(reader);
        peer.wait_success().unwrap();
    }
}
