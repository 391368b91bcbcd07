//! One message socket read by several threads at once: each receive takes one whole
//! message, so none is lost, cut or reported wrongly, whatever the interleaving.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipc_socket::{Datagram, Seqpacket, SeqpacketListener, UdpOptions, UdpSocketExt, UnixAddr};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, Rng};

/// The receivers' buffer size, smaller than the sockets' maximum message size (64 KiB);
/// messages are up to twice as large, so that some do not fit.
pub(crate) const BUFFER: usize = 2048;
/// Messages sent before the sender waits for the receivers to catch up (UDP drops what
/// does not fit the receive buffer; Unix sockets would block the sender instead).
const WINDOW: usize = 256;

/// Message `seq`: its number and length, then a pattern derived from both.
pub(crate) fn message(seq: u32, len: usize) -> Vec<u8> {
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&seq.to_le_bytes());
    msg.extend_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
    msg.extend((8..len).map(|i| u8::try_from((i + seq as usize) % 251).unwrap()));
    msg
}

/// The sequence number of a received message, after checking that it is whole.
pub(crate) fn check(msg: &[u8]) -> u32 {
    let seq = u32::from_le_bytes(msg[..4].try_into().unwrap());
    let len = u32::from_le_bytes(msg[4..8].try_into().unwrap()) as usize;
    assert_eq!(len, msg.len(), "message {seq} was cut");
    let intact = msg[8..]
        .iter()
        .enumerate()
        .all(|(i, &b)| usize::from(b) == (i + 8 + seq as usize) % 251);
    assert!(intact, "message {seq} is damaged");
    seq
}

/// How the flood sends one message.
type SendFn = dyn Fn(&[u8]) -> ipc_socket::Result<()>;

/// The sizes of the messages sent, at random from 8 to twice `BUFFER` bytes.
pub(crate) fn sizes(count: usize) -> Vec<usize> {
    // Both processes draw the same sizes (a peer inherits any seed override).
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|_| 8 + usize::try_from(rng.below(2 * BUFFER as u64 - 7)).unwrap())
        .collect()
}

/// Sends arg 2 messages of `sizes` over socket kind arg 0
/// ("datagram", "seqpacket" or "udp") to address arg 1, waiting for "more" after every
/// `WINDOW`.
pub fn flood_role(ctx: &mut PeerContext) -> PeerResult {
    let (kind, address) = (ctx.arg(0)?.to_owned(), ctx.arg(1)?.to_owned());
    let count: u32 = ctx.arg(2)?.parse()?;
    let send: Box<SendFn> = match kind.as_str() {
        "datagram" => {
            let socket = Datagram::bind(&UnixAddr::abstract_name(format!(
                "ipcrs-flood-{}",
                std::process::id()
            )))?;
            let to = UnixAddr::path(address);
            Box::new(move |msg| socket.send_to(msg, &to))
        }
        "seqpacket" => {
            let socket = Seqpacket::connect(&UnixAddr::path(address))?;
            Box::new(move |msg| socket.send(msg))
        }
        _ => {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.connect(address)?;
            Box::new(move |msg| {
                socket
                    .send(msg)
                    .map(drop)
                    .map_err(|e| ipc_socket::Error::from(e).with_op("send"))
            })
        }
    };
    ctx.ready()?;
    for (seq, len) in (0..count).zip(sizes(count as usize)) {
        send(&message(seq, len))?;
        if (seq as usize + 1) % WINDOW == 0 && ctx.recv()? != "more" {
            return Err("expected more".into());
        }
    }
    Ok(())
}

/// Receives `count` messages with four threads calling `recv` on one socket, then checks
/// that every one that fits the buffer arrived once and whole, and that every one that did
/// not was reported with its size; the sender is told to go on after every window.
fn receive_with_four_threads(
    peer: &mut Peer,
    count: usize,
    recv: &(dyn Fn(&mut [u8]) -> ipc_socket::Result<usize> + Sync),
) {
    let seen: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
    let too_large = std::sync::Mutex::new(Vec::new());
    let taken = AtomicUsize::new(0);
    // A bound against losing messages (the threads would wait for ever), not a speed
    // claim: 100 000 datagrams in a debug build on a loaded machine take a while.
    let deadline = ipc_core::Deadline::after(ipc_testkit::test_timeout() * 6);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut buf = vec![0u8; BUFFER];
                while taken.load(Ordering::SeqCst) < count {
                    assert!(!deadline.has_expired(), "messages were lost");
                    match recv(&mut buf) {
                        Ok(n) => {
                            let seq = check(&buf[..n]) as usize;
                            seen[seq].fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if e.is_buffer_too_small() => {
                            too_large.lock().unwrap().push(e.needed_len().unwrap());
                        }
                        Err(e) if e.is_would_block() || e.is_timeout() => continue,
                        // The sender closed after its last message, which another thread
                        // took: the counts below tell whether anything is missing.
                        Err(e) if e.is_peer_gone() => break,
                        Err(e) => panic!("{e}"),
                    }
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Lets the sender go on whenever a window has been taken.
        let mut released = 0;
        while released + WINDOW <= count {
            assert!(!deadline.has_expired(), "messages were lost");
            if taken.load(Ordering::SeqCst) >= released + WINDOW {
                released += WINDOW;
                peer.send("more").unwrap();
            } else {
                std::thread::yield_now();
            }
        }
    });
    let sizes = sizes(count);
    for (seq, times) in seen.iter().enumerate() {
        let expected = usize::from(sizes[seq] <= BUFFER);
        assert_eq!(times.load(Ordering::SeqCst), expected, "message {seq}");
    }
    let mut reported = too_large.into_inner().unwrap();
    reported.sort_unstable();
    let mut oversized: Vec<usize> = sizes.into_iter().filter(|&len| len > BUFFER).collect();
    oversized.sort_unstable();
    assert_eq!(reported, oversized, "the messages too large for the buffer");
    peer.wait_success().unwrap();
}

/// Defect: the receive paths peeked at the next message's size and then received, so
/// another thread could take that message in between: `recv_from` returned part of a
/// longer datagram as if it were whole, and `recv` dropped datagrams below the maximum
/// with a misleading "above the maximum" error.
#[test]
fn four_threads_share_a_datagram_socket_and_lose_nothing() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("flood.sock");
    let socket = Datagram::bind(&UnixAddr::path(&path)).unwrap();
    socket
        .as_std()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let count = 100_000;
    let mut peer = Peer::spawn(
        "flood",
        &["datagram", path.to_str().unwrap(), &count.to_string()],
    );
    // Half the threads' calls take the sender's address too.
    let calls = AtomicUsize::new(0);
    receive_with_four_threads(&mut peer, count, &|buf| {
        if calls.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            socket.recv(buf)
        } else {
            socket.recv_from(buf).map(|(n, _)| n)
        }
    });
}

#[test]
fn four_threads_share_a_seqpacket_connection_and_lose_nothing() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("flood.sock");
    let listener = SeqpacketListener::bind(&UnixAddr::path(&path)).unwrap();
    let count = 20_000;
    let mut peer = Peer::spawn(
        "flood",
        &["seqpacket", path.to_str().unwrap(), &count.to_string()],
    );
    let (socket, _) = listener
        .accept_timeout(ipc_testkit::test_timeout())
        .unwrap();
    receive_with_four_threads(&mut peer, count, &|buf| {
        socket.recv_timeout(buf, Duration::from_millis(50))
    });
}

#[test]
fn four_threads_share_a_udp_socket_and_lose_nothing() {
    let socket = UdpOptions::new()
        .recv_buffer(4 << 20)
        .bind("127.0.0.1:0")
        .unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let count = 20_000;
    let mut peer = Peer::spawn("flood", &["udp", &address, &count.to_string()]);
    receive_with_four_threads(&mut peer, count, &|buf| {
        socket
            .recv_from_timeout(buf, Duration::from_millis(50))
            .map(|(n, _)| n)
    });
}
