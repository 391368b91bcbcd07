//! `ipc send`, `recv`, `tail` and `hz` against endpoints this test process holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ipc_mq::QueueOptions;
use ipc_pipe::FifoOptions;
use ipc_shm::ChannelOptions;
use ipc_socket::{Datagram, SeqpacketListener, UnixAddr};
use ipc_testkit::{LeakGuard, test_timeout};

use crate::cli::{ipc, stdout};

/// `ipc` with `args`, started with its output piped.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ipc"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ipc")
}

/// The lines `child` prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines.recv_timeout(test_timeout()).expect("a line from ipc")
}

/// Waits for `child` to exit (bounded: killed at the test timeout) and returns whether
/// it succeeded, with what it wrote on standard error.
fn finish(mut child: Child) -> (bool, String) {
    let deadline = std::time::Instant::now() + test_timeout();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ipc did not exit in time");
        }
        ipc_testkit::pause(Duration::from_millis(5));
    }
}

#[test]
fn send_and_recv_carry_messages_through_a_queue_in_every_format() {
    let guard = LeakGuard::new();
    let name = guard.name("cli-mq");
    let queue = QueueOptions::new().create(&name).unwrap();
    let sent = ipc(&["send", name.as_str(), "hello", "world"]);
    assert!(sent.status.success(), "{:?}", sent);
    let hex = ipc(&[
        "send",
        name.as_str(),
        "--format",
        "hex",
        "--priority",
        "7",
        "00ff10",
    ]);
    assert!(hex.status.success());
    let mut buf = [0u8; 8192];
    // The priority-7 message comes first.
    assert_eq!(queue.recv_priority(&mut buf).unwrap(), (3, 7));
    assert_eq!(&buf[..3], &[0x00, 0xff, 0x10]);
    assert_eq!(queue.recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    let len = queue.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"world");

    queue.send_priority(b"{\"job\":1}", 3).unwrap();
    queue.send(&[0xff, 0xfe]).unwrap();
    let json = stdout(&ipc(&[
        "recv",
        name.as_str(),
        "-n",
        "2",
        "--format",
        "json",
    ]));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["utf8"], "{\"job\":1}");
    assert_eq!(lines[0]["priority"], 3);
    assert_eq!(lines[1]["utf8"], serde_json::Value::Null);
    assert_eq!(lines[1]["hex"], "fffe");
    assert_eq!(lines[1]["n"], 2);

    // Nothing more: a timeout is a failure that says how many came.
    let empty = ipc(&["recv", name.as_str(), "--timeout", "0.3"]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("0 of 1 messages received"));
    // A bad message is refused before anything is sent.
    let bad = ipc(&["send", name.as_str(), "--format", "hex", "abc"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(queue.attributes().unwrap().queued, 0);
}

#[test]
fn tail_prints_until_interrupted_and_hz_counts() {
    let guard = LeakGuard::new();
    let name = guard.name("cli-tail");
    let queue = QueueOptions::new().create(&name).unwrap();
    let mut tail = spawn(&["tail", name.as_str(), "--kind", "mq"]);
    let lines = lines_of(&mut tail);
    for word in ["one", "two", "three"] {
        queue.send(word.as_bytes()).unwrap();
    }
    assert_eq!(next_line(&lines), "one");
    assert_eq!(next_line(&lines), "two");
    assert_eq!(next_line(&lines), "three");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(tail.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (ok, err) = finish(tail);
    assert!(ok, "an interrupted tail exits cleanly: {err}");

    let mut hz = spawn(&["hz", name.as_str(), "--duration", "1.5"]);
    for i in 0..100u32 {
        queue
            .send_timeout(&i.to_le_bytes(), test_timeout())
            .unwrap();
    }
    let lines = lines_of(&mut hz);
    let (ok, err) = finish(hz);
    assert!(ok, "{err}");
    let printed: Vec<String> = lines.try_iter().collect();
    let total = printed.last().expect("a total line");
    assert!(
        total.starts_with("total: 100 messages, 400 bytes in "),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|l| l.contains("messages/s")),
        "{printed:?}"
    );
}

#[test]
fn channels_fifos_and_sockets_carry_messages_both_ways() {
    let guard = LeakGuard::new();
    // A channel: `ipc send` attaches as its producer, `ipc recv` as its consumer.
    let name = guard.name("cli-chan");
    let options = ChannelOptions::new().timeout(test_timeout());
    let mut consumer = options.create_consumer(&name).unwrap();
    assert!(ipc(&["send", name.as_str(), "frame"]).status.success());
    let mut buf = [0u8; 64];
    let len = consumer.recv_timeout(&mut buf, test_timeout()).unwrap();
    assert_eq!(&buf[..len], b"frame");
    drop(consumer);
    let other = guard.name("cli-chan-out");
    let mut producer = options.create_producer(&other).unwrap();
    producer.send(b"a").unwrap();
    producer.send(b"b").unwrap();
    let got = stdout(&ipc(&["recv", other.as_str(), "-n", "2"]));
    assert_eq!(got, "a\nb\n");

    // A FIFO, as bytes and as frames.
    let path = guard.dir().join("events");
    let fifo = FifoOptions::new().create(&path).unwrap();
    let path = path.to_str().unwrap();
    let mut reader = fifo.open_reader().unwrap();
    assert!(ipc(&["send", path, "--framed", "x", "yz"]).status.success());
    let mut frames = ipc_core::FramedReader::new(&mut reader);
    for expected in [&b"x"[..], b"yz"] {
        let len = frames.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], expected);
    }
    drop(frames);
    let recv = spawn(&["recv", path, "--framed", "-n", "1", "--format", "hex"]);
    let writer = fifo.open_writer_timeout(test_timeout()).unwrap();
    let mut framed = ipc_core::FramedWriter::new(writer);
    framed.send(&[1, 2, 3]).unwrap();
    let child_out = recv.wait_with_output().unwrap();
    assert!(child_out.status.success());
    assert_eq!(String::from_utf8_lossy(&child_out.stdout), "010203\n");
    drop(framed);

    // A seqpacket listener, and a datagram socket.
    let addr = UnixAddr::path(guard.dir().join("seq.sock"));
    let listener = SeqpacketListener::bind(&addr).unwrap();
    let socket_path = guard.dir().join("seq.sock");
    let send = spawn(&["send", socket_path.to_str().unwrap(), "ping"]);
    let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
    let len = conn.recv_timeout(&mut buf, test_timeout()).unwrap();
    assert_eq!(&buf[..len], b"ping");
    assert!(finish(send).0);
    let recv = spawn(&["recv", socket_path.to_str().unwrap()]);
    let (conn, _) = listener.accept_timeout(test_timeout()).unwrap();
    conn.send(b"pong").unwrap();
    let child_out = recv.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&child_out.stdout), "pong\n");
    drop(listener);

    let dgram_path = guard.dir().join("dgram.sock");
    let dgram = Datagram::bind(&UnixAddr::path(&dgram_path)).unwrap();
    assert!(
        ipc(&[
            "send",
            dgram_path.to_str().unwrap(),
            "--format",
            "json",
            "[1, 2]"
        ])
        .status
        .success()
    );
    let len = dgram.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"[1,2]");
    let refused = ipc(&["recv", dgram_path.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only `ipc send` reaches it"));
    drop(dgram);
    let _ = std::io::stdout().flush();
}
