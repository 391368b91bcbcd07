use std::io::Write;
use std::time::Duration;

use ipc_socket::{
    FramedReader, FramedWriter, MessageReceiver, MessageSender, StreamListener, UnixAddr,
    connect_stream,
};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, test_timeout};

/// A hostile client: connects to arg 0 and writes what arg 1 asks for.
pub fn hostile_role(ctx: &mut PeerContext) -> PeerResult {
    let mut stream = connect_stream(&UnixAddr::path(ctx.arg(0)?))?;
    match ctx.arg(1)? {
        // A length that would make a naive reader allocate 4 GiB.
        "huge" => stream.write_all(&u32::MAX.to_le_bytes())?,
        // Half a header, then nothing.
        "short-header" => stream.write_all(&[5, 0])?,
        // A header promising 1000 bytes, then 10 of them.
        "cut" => {
            stream.write_all(&1000u32.to_le_bytes())?;
            stream.write_all(&[1u8; 10])?;
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    ctx.ready()?;
    // Stay connected until killed, like a peer that stalls or dies mid-message.
    loop {
        std::thread::park();
    }
}

fn hostile(mode: &str) -> ipc_core::Error {
    let guard = LeakGuard::new();
    let addr = UnixAddr::path(guard.dir().join("victim.sock"));
    let listener = StreamListener::bind(&addr).unwrap();
    let mut peer = Peer::spawn(
        "hostile",
        &[addr.as_path().unwrap().to_str().unwrap(), mode],
    );
    let (stream, _) = listener.accept_timeout(test_timeout()).unwrap();
    let mut reader = FramedReader::new(stream).with_max_message_size(64 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    if mode == "huge" {
        return reader.recv_timeout(&mut buf, test_timeout()).unwrap_err();
    }
    // The peer stalls mid-message: the deadline ends the wait...
    let err = reader
        .recv_timeout(&mut buf, Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // ...and when it dies, the reader learns it, without a partial message.
    peer.kill().unwrap();
    reader.recv_timeout(&mut buf, test_timeout()).unwrap_err()
}

#[test]
fn an_absurd_length_is_refused_without_allocating() {
    let err = hostile("huge");
    assert!(err.is_corrupted(), "{err}");
    assert!(err.to_string().contains("4294967295 bytes"), "{err}");
}

#[test]
fn a_peer_killed_mid_header_or_mid_frame_is_peer_gone() {
    for mode in ["short-header", "cut"] {
        let err = hostile(mode);
        assert!(err.is_peer_gone() && err.is_cut_short(), "{mode}: {err}");
        assert!(err.to_string().contains("inside a frame"), "{mode}: {err}");
    }
}

#[test]
fn a_peer_that_stops_reading_makes_sends_time_out() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut tx = FramedWriter::new(a);
    let msg = vec![0u8; 1000];
    let mut sent = 0;
    while tx.try_send(&msg).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let err = tx
        .send_timeout(&msg, Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}
