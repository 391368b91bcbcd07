use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipc_socket::{
    FramedReader, FramedWriter, MessageReceiver, Server, StreamListener, UnixAddr, connect_stream,
};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};

/// Connects to the server at arg 0 and makes arg 1 framed request-reply round trips.
pub fn echo_client_role(ctx: &mut PeerContext) -> PeerResult {
    let rounds: usize = ctx.arg(1)?.parse()?;
    let stream = connect_stream(&UnixAddr::path(ctx.arg(0)?))?;
    let mut tx = FramedWriter::new(stream.try_clone()?);
    let mut rx = FramedReader::new(stream);
    ctx.ready()?;
    let mut buf = [0u8; 128];
    for i in 0..rounds {
        let request = format!("{} #{i}", std::process::id());
        tx.send(request.as_bytes())?;
        let n = rx.recv_timeout(&mut buf, test_timeout())?;
        if buf[..n] != *request.to_uppercase().as_bytes() {
            return Err(format!("wrong reply {:?}", String::from_utf8_lossy(&buf[..n])).into());
        }
    }
    ctx.send("done")?;
    Ok(())
}

#[test]
fn many_clients_and_a_clean_shutdown() {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("server.sock"));
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let server = Server::start(
        StreamListener::bind(&addr).unwrap(),
        move |stream, _peer| {
            let mut tx = FramedWriter::new(stream.try_clone().unwrap());
            let mut rx = FramedReader::new(stream);
            let mut buf = [0u8; 128];
            // Until the client leaves or the server shuts down.
            while let Ok(n) = rx.recv(&mut buf) {
                let reply = String::from_utf8_lossy(&buf[..n]).to_uppercase();
                // Counted before the reply goes out: once a client has all its replies,
                // every one of its messages is counted.
                counter.fetch_add(1, Ordering::SeqCst);
                if tx.send(reply.as_bytes()).is_err() {
                    break;
                }
            }
        },
    )
    .unwrap();
    let path = addr.as_path().unwrap().to_str().unwrap().to_owned();
    let mut clients: Vec<Peer> = (0..8)
        .map(|_| Peer::spawn("echo-client", &[&path, "50"]))
        .collect();
    for client in &mut clients {
        assert_eq!(client.recv().unwrap(), "done");
        client.wait_success().unwrap();
    }
    assert_eq!(served.load(Ordering::SeqCst), 8 * 50);

    // The handlers of the clients above end on their own once those clients are gone.
    ipc_testkit::wait_until(ipc_testkit::test_deadline(), || server.clients() == 0)
        .expect("the handlers never ended");
    // A client that stays connected and silent: shutdown must not wait for it.
    let idle = connect_stream(&addr).unwrap();
    // Wait until the server has taken it on (a connection never accepted would be reset;
    // counting from zero, so that a handler of the earlier clients is not mistaken for it).
    ipc_testkit::wait_until(ipc_testkit::test_deadline(), || server.clients() > 0)
        .expect("the idle client was never accepted");
    let mut line = String::new();
    let reader =
        std::thread::spawn(move || BufReader::new(idle).read_line(&mut line).map(|_| line));
    server.shutdown().unwrap();
    // The idle client was disconnected.
    assert_eq!(reader.join().unwrap().unwrap(), "");
    assert!(
        !addr.as_path().unwrap().exists(),
        "the listener's socket file is gone"
    );
    let _ = std::io::stdout().flush();
}
