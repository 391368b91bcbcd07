//! The event-driven message server across processes: a thousand clients on two threads
//! under the usual descriptor limit, a client that stops reading, clients turned away when
//! descriptors run out while the connected ones are served on, Unix stream and TCP clients
//! framed.

use std::time::Duration;

use ipc_socket::{
    FramedReader, FramedWriter, MessageServerOptions, Seqpacket, SeqpacketListener, StreamListener,
    UnixAddr,
};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_deadline, test_timeout};

fn threads() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Serves arg 0 (a seqpacket path, "stream:PATH", "tcp", or "async:PATH" and
/// "async-stream:PATH" for the server on a two-worker tokio runtime, "async-handler:PATH"
/// and "async-handler-stream:PATH" for it with the async handler of [`slow_upper`]) with
/// two threads, answering each request in capitals, under a soft descriptor limit of 1 024 or, with arg 1, with
/// room for exactly that many more descriptors once started. Says ready with the number of
/// threads it started and the TCP port, then answers "clients" with how many are connected
/// until "end".
pub fn message_server_role(ctx: &mut PeerContext) -> PeerResult {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, 1024, hard)?;
    let upper = |request: &[u8], _: &ipc_socket::Client, reply: &mut Vec<u8>| {
        reply.extend(request.to_ascii_uppercase());
    };
    let options = MessageServerOptions::new().threads(2);
    let before = threads()?;
    #[cfg(feature = "tokio")]
    if let Some((kind, path)) = ctx
        .arg(0)?
        .split_once(':')
        .filter(|(k, _)| k.starts_with("async"))
    {
        // On a two-worker runtime, in a thread of its own; "end" ends the process.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let addr = UnixAddr::path(path);
        type Serving = std::pin::Pin<Box<dyn Future<Output = ipc_socket::Result<()>> + Send>>;
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let slow = move |request, _| slow_upper(request, std::sync::Arc::clone(&release));
        let serving: Serving = match kind {
            "async-stream" => Box::pin(options.serve(StreamListener::bind(&addr)?, upper)),
            "async-handler" => Box::pin(options.serve_async(SeqpacketListener::bind(&addr)?, slow)),
            "async-handler-stream" => {
                Box::pin(options.serve_async(StreamListener::bind(&addr)?, slow))
            }
            _ => Box::pin(options.serve(SeqpacketListener::bind(&addr)?, upper)),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = std::thread::spawn(move || {
            runtime.block_on(async {
                // Dropping the server's future ends it: the listener is removed.
                tokio::select! {
                    served = serving => served,
                    _ = stopped => Ok(()),
                }
            })
        });
        ctx.ready_with("0 0")?;
        while ctx.recv()? != "end" {}
        let _ = stop.send(());
        serving
            .join()
            .map_err(|_| "the server's thread panicked")??;
        return Ok(());
    }
    let mut port = 0;
    let server = match ctx.arg(0)? {
        "tcp" => {
            let acceptor = ipc_socket::TcpOptions::new().listen("127.0.0.1:0")?;
            port = acceptor.local_addr()?.port();
            options.start(acceptor, upper)?
        }
        other => match other.strip_prefix("stream:") {
            Some(path) => options.start(StreamListener::bind(&UnixAddr::path(path))?, upper)?,
            None => options.start(SeqpacketListener::bind(&UnixAddr::path(other))?, upper)?,
        },
    };
    let started = threads()? - before;
    let _filler = match ctx.args().get(1) {
        Some(room) => crate::leave_room_for(room.parse()?)?,
        None => Vec::new(),
    };
    ctx.ready_with(&format!("{started} {port}"))?;
    while ctx.recv()? == "clients" {
        ctx.send(&server.clients().to_string())?;
    }
    server.shutdown()?;
    Ok(())
}

/// The async handler of the server role: the request in capitals, after waiting for a
/// "release" request (any client's) if it starts with "hold", after a yield to the runtime
/// unless it starts with "fast" (so that most replies are not ready when first asked);
/// "panic now" panics in the handler, "panic later" in its future.
#[cfg(feature = "tokio")]
fn slow_upper(
    request: Vec<u8>,
    release: std::sync::Arc<tokio::sync::Notify>,
) -> impl Future<Output = Vec<u8>> {
    assert!(request != b"panic now", "asked to panic");
    async move {
        if request.starts_with(b"hold") {
            release.notified().await;
        } else if request == b"release" {
            release.notify_waiters();
        } else if !request.starts_with(b"fast") {
            tokio::task::yield_now().await;
        }
        assert!(request != b"panic later", "asked to panic");
        request.to_ascii_uppercase()
    }
}

/// Asks the server role how many clients it has until it says `count`.
fn wait_for_clients(server: &mut Peer, count: usize) {
    ipc_testkit::wait_until(test_deadline(), || {
        server.send("clients").unwrap();
        server.recv().unwrap() == count.to_string()
    })
    .unwrap();
}

fn connect(addr: &UnixAddr) -> Seqpacket {
    Seqpacket::connect_timeout(addr, test_timeout()).unwrap()
}

/// Three rounds of a request from every client, then every answer, checked.
fn three_rounds(clients: &[Seqpacket]) {
    for round in 0..3 {
        for (i, conn) in clients.iter().enumerate() {
            conn.send(format!("round {round} client {i}").as_bytes())
                .unwrap();
        }
        let mut buf = [0u8; 64];
        for (i, conn) in clients.iter().enumerate() {
            let n = conn.recv_timeout(&mut buf, test_timeout()).unwrap();
            assert_eq!(&buf[..n], format!("ROUND {round} CLIENT {i}").as_bytes());
        }
    }
}

/// One request and its answer.
fn ask(conn: &Seqpacket, request: &str) -> ipc_socket::Result<String> {
    conn.send(request.as_bytes())?;
    let mut buf = [0u8; 256];
    let n = conn.recv_timeout(&mut buf, test_timeout())?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn two_threads_serve_a_thousand_clients_under_a_limit_of_1024_descriptors() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("thousand.sock"));
    let mut server = Peer::spawn(
        "message-server",
        &[addr.as_path().unwrap().to_str().unwrap()],
    );
    assert!(
        server.ready_payload().starts_with("2 "),
        "two threads, whatever the clients"
    );
    let clients: Vec<Seqpacket> = (0..1000).map(|_| connect(&addr)).collect();
    // One descriptor each: a thousand fit under the limit beside the server's own.
    wait_for_clients(&mut server, 1000);
    three_rounds(&clients);
    server.send("end").unwrap();
    server.wait_success().unwrap();
    // The shutdown disconnected every client.
    let err = clients[0]
        .recv_timeout(&mut [0u8; 8], test_timeout())
        .unwrap_err();
    assert!(err.is_peer_gone(), "{err}");
}

#[test]
fn a_client_that_stops_reading_holds_up_nobody_and_loses_no_reply() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("stuck.sock"));
    let mut server = Peer::spawn(
        "message-server",
        &[addr.as_path().unwrap().to_str().unwrap()],
    );
    let (stuck, other) = (connect(&addr), connect(&addr));
    wait_for_clients(&mut server, 2);
    // Requests until neither the server nor the socket takes more: the server stopped
    // reading this client, whose replies fill its receive buffer.
    let request = |i: usize| format!("{i:0>200}");
    let mut sent = 0;
    let deadline = test_deadline();
    // A send that finds no room for a while: pushed back (a slow server only shortens
    // the run, which the replies below check all the same).
    while stuck
        .send_timeout(request(sent).as_bytes(), Duration::from_millis(100))
        .is_ok()
    {
        sent += 1;
        assert!(
            deadline.remaining() != Some(Duration::ZERO),
            "the server never pushed back"
        );
    }
    assert!(sent > 100, "{sent} requests before the push-back");
    // Another client is served all the while.
    for i in 0..10 {
        assert_eq!(
            ask(&other, &format!("ping {i}")).unwrap(),
            format!("PING {i}")
        );
    }
    // Read at last: every reply, in order.
    let mut buf = [0u8; 256];
    for i in 0..sent {
        let n = stuck.recv_timeout(&mut buf, test_timeout()).unwrap();
        assert_eq!(&buf[..n], request(i).as_bytes(), "reply {i} of {sent}");
    }
    server.send("end").unwrap();
    server.wait_success().unwrap();
}

#[test]
fn out_of_descriptors_new_clients_are_turned_away_at_once_and_the_others_served() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("full.sock"));
    let mut server = Peer::spawn(
        "message-server",
        &[addr.as_path().unwrap().to_str().unwrap(), "5"],
    );
    let mut served = Vec::new();
    for i in 0..8 {
        let conn = connect(&addr);
        match ask(&conn, &format!("client {i}")) {
            Ok(reply) => {
                assert_eq!(reply, format!("CLIENT {i}"));
                served.push(conn);
            }
            Err(err) => assert!(
                err.is_peer_gone(),
                "client {i} turned away, not left waiting: {err}"
            ),
        }
    }
    assert_eq!(served.len(), 5, "as many as there were descriptors for");
    wait_for_clients(&mut server, 5);
    for (i, conn) in served.iter().enumerate() {
        assert_eq!(
            ask(conn, &format!("again {i}")).unwrap(),
            format!("AGAIN {i}")
        );
    }
    server.send("end").unwrap();
    server.wait_success().unwrap();
}

#[test]
fn unix_stream_and_tcp_clients_are_served_framed_even_when_replies_outgrow_the_socket() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("framed.sock");
    for kind in ["stream", "tcp"] {
        let arg = match kind {
            "stream" => format!("stream:{}", path.display()),
            _ => "tcp".to_owned(),
        };
        let mut server = Peer::spawn("message-server", &[&arg]);
        let port = server.ready_payload().split(' ').nth(1).unwrap().to_owned();
        let connect = || -> (Box<dyn std::io::Read>, Box<dyn std::io::Write>) {
            if kind == "stream" {
                let stream =
                    ipc_socket::connect_stream_timeout(&UnixAddr::path(&path), test_timeout())
                        .unwrap();
                (Box::new(stream.try_clone().unwrap()), Box::new(stream))
            } else {
                let stream = ipc_socket::TcpOptions::new()
                    .connect_timeout(format!("127.0.0.1:{port}"), test_timeout())
                    .unwrap();
                (Box::new(stream.try_clone().unwrap()), Box::new(stream))
            }
        };
        let clients: Vec<_> = (0..20).map(|_| connect()).collect();
        wait_for_clients(&mut server, 20);
        for (i, (read, write)) in clients.into_iter().enumerate() {
            let mut reader = FramedReader::new(read);
            let mut writer = FramedWriter::new(write);
            // Five 60 KB requests before reading: 300 KB of replies, more than the socket
            // holds, so the server's replies wait for room part-way through a frame.
            let request = |n: usize| {
                format!("{kind} client {i} request {n} ").repeat(3000)[..60_000].to_owned()
            };
            for n in 0..5 {
                writer.send(request(n).as_bytes()).unwrap();
            }
            let mut buf = vec![0u8; 64 * 1024];
            for n in 0..5 {
                let len = reader.recv(&mut buf).unwrap();
                assert!(
                    buf[..len] == *request(n).to_ascii_uppercase().as_bytes(),
                    "{kind}: reply {n} to client {i}"
                );
            }
        }
        server.send("end").unwrap();
        server.wait_success().unwrap();
    }
}

#[cfg(feature = "tokio")]
#[test]
fn on_a_tokio_runtime_a_thousand_clients_are_served_under_a_limit_of_1024_descriptors() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("async-thousand.sock"));
    let arg = format!("async:{}", addr.as_path().unwrap().display());
    let mut server = Peer::spawn("message-server", &[&arg]);
    // One descriptor each, as the synchronous server: the reactor watches the connections
    // themselves.
    let clients: Vec<Seqpacket> = (0..1000).map(|_| connect(&addr)).collect();
    three_rounds(&clients);
    server.send("end").unwrap();
    server.wait_success().unwrap();
}

#[test]
fn pipelined_requests_read_ahead_in_one_read_are_all_answered() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("pipelined.sock");
    let mut kinds = vec!["stream"];
    if cfg!(feature = "tokio") {
        kinds.extend(["async-stream", "async-handler-stream"]);
    }
    for kind in kinds {
        let mut server = Peer::spawn("message-server", &[&format!("{kind}:{}", path.display())]);
        let stream =
            ipc_socket::connect_stream_timeout(&UnixAddr::path(&path), test_timeout()).unwrap();
        // 200 requests in one write: the server reads them ahead, many to a read, more than
        // a burst (16), with nothing left in the socket for its set to report.
        let mut frames = FramedWriter::new(Vec::new());
        for n in 0..200 {
            frames.send(format!("request {n}").as_bytes()).unwrap();
        }
        std::io::Write::write_all(&mut &stream, &frames.into_inner()).unwrap();
        let mut reader = FramedReader::new(&stream);
        let mut buf = [0u8; 64];
        for n in 0..200 {
            let len = reader.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], format!("REQUEST {n}").as_bytes(), "{kind}");
        }
        drop(reader);
        server.send("end").unwrap();
        server.wait_success().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_handler_awaits_without_holding_up_the_others_and_answers_each_client_in_order() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("async-handler.sock"));
    let arg = format!("async-handler:{}", addr.as_path().unwrap().display());
    let mut server = Peer::spawn("message-server", &[&arg]);
    let held = connect(&addr);
    held.send(b"hold on").unwrap();
    // Its handler waits: another client is answered meanwhile, at once or in time.
    let other = connect(&addr);
    assert_eq!(ask(&other, "fast one").unwrap(), "FAST ONE");
    assert_eq!(ask(&other, "in time").unwrap(), "IN TIME");
    let mut buf = [0u8; 64];
    let waited = held.recv_timeout(&mut buf, Duration::from_millis(50));
    assert!(
        waited.unwrap_err().is_timeout(),
        "answered before the release"
    );
    assert_eq!(ask(&other, "release").unwrap(), "RELEASE");
    let n = held.recv_timeout(&mut buf, test_timeout()).unwrap();
    assert_eq!(&buf[..n], b"HOLD ON");
    // Requests sent in a row, some answered at once and some in time: in order.
    let pipelined = connect(&addr);
    for n in 0..100 {
        let kind = if n % 3 == 0 { "fast" } else { "slow" };
        pipelined.send(format!("{kind} {n}").as_bytes()).unwrap();
    }
    for n in 0..100 {
        let kind = if n % 3 == 0 { "FAST" } else { "SLOW" };
        let len = pipelined.recv_timeout(&mut buf, test_timeout()).unwrap();
        assert_eq!(&buf[..len], format!("{kind} {n}").as_bytes());
    }
    // A handler that panics, at once or in its future, loses its client only.
    for request in ["panic now", "panic later"] {
        let doomed = connect(&addr);
        doomed.send(request.as_bytes()).unwrap();
        let err = doomed.recv_timeout(&mut buf, test_timeout()).unwrap_err();
        assert!(err.is_peer_gone(), "{request}: {err}");
    }
    // Many clients at once, their handlers awaited concurrently.
    let clients: Vec<Seqpacket> = (0..300).map(|_| connect(&addr)).collect();
    three_rounds(&clients);
    assert_eq!(ask(&other, "still served").unwrap(), "STILL SERVED");
    server.send("end").unwrap();
    server.wait_success().unwrap();
}
