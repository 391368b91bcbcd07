use std::io::{Read, Seek, Write};

use ipc_pipe::{VmspliceWriter, pipe, splice, tee};
use ipc_testkit::LeakGuard;

#[test]
fn splice_moves_between_pipes_and_files() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("data");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.write_all(b"from a file").unwrap();
    file.rewind().unwrap();

    // file -> pipe
    let (r, w) = pipe().unwrap();
    assert_eq!(splice(&file, &w, 1024).unwrap(), 11);
    // pipe -> file
    let mut out = tempfile_in(&guard, "out");
    assert_eq!(splice(&r, &out, 1024).unwrap(), 11);
    out.rewind().unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    assert_eq!(text, "from a file");
    // End of file on the source is 0 bytes moved.
    drop(w);
    assert_eq!(splice(&r, &out, 1024).unwrap(), 0);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(guard.dir().join("out")).unwrap();
}

fn tempfile_in(guard: &LeakGuard, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(guard.dir().join(name))
        .unwrap()
}

#[test]
fn tee_duplicates_without_consuming() {
    let (r1, mut w1) = pipe().unwrap();
    let (mut r2, w2) = pipe().unwrap();
    w1.write_all(b"twice").unwrap();
    assert_eq!(tee(&r1, &w2, 100).unwrap(), 5);
    let mut a = [0u8; 5];
    let mut b = [0u8; 5];
    (&r1).read_exact(&mut a).unwrap();
    r2.read_exact(&mut b).unwrap();
    assert_eq!((&a, &b), (b"twice", b"twice"));
}

#[test]
fn vmsplice_keeps_buffers_until_the_reader_has_them() {
    let (mut r, w) = pipe().unwrap();
    w.set_capacity(1 << 20).unwrap();
    let mut sender = VmspliceWriter::new(w);
    let buffers: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 64 * 1024]).collect();
    for b in buffers.clone() {
        sender.send(b).unwrap();
    }
    assert_eq!(sender.in_flight(), 8);
    assert!(sender.reclaim().unwrap().is_none());
    let mut buf = vec![0u8; 64 * 1024];
    for (i, expected) in buffers.iter().enumerate() {
        // Half of a buffer read is not enough to reclaim it.
        r.read_exact(&mut buf[..32 * 1024]).unwrap();
        assert!(
            sender.reclaim().unwrap().is_none(),
            "buffer {i} reclaimed too early"
        );
        r.read_exact(&mut buf[32 * 1024..]).unwrap();
        assert_eq!(&buf, expected);
        assert_eq!(sender.reclaim().unwrap().as_ref(), Some(expected));
    }
    assert_eq!(sender.in_flight(), 0);
}

#[test]
fn vmsplice_through_a_reader_thread_reuses_buffers() {
    let (r, w) = pipe().unwrap();
    let mut sender = VmspliceWriter::new(w);
    const N: usize = 200;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        for i in 0..N {
            (&r).read_exact(&mut buf).unwrap();
            assert!(
                buf.iter().all(|&b| b == u8::try_from(i % 251).unwrap()),
                "message {i} damaged"
            );
        }
    });
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut allocated = 0;
    for i in 0..N {
        while let Some(b) = sender.reclaim().unwrap() {
            pool.push(b);
        }
        let mut buf = pool.pop().unwrap_or_else(|| {
            allocated += 1;
            vec![0u8; 16 * 1024]
        });
        buf.fill(u8::try_from(i % 251).unwrap());
        sender.send(buf).unwrap();
    }
    reader.join().unwrap();
    // The pipe holds 64 KiB: four buffers in flight, plus the one being filled.
    assert!(allocated <= 6, "allocated {allocated} buffers");
}

#[test]
fn splice_moves_between_a_pipe_and_a_socket() {
    use std::os::unix::net::UnixStream;
    let (mut left, right) = UnixStream::pair().unwrap();
    let (r, mut w) = pipe().unwrap();
    w.write_all(b"to the socket").unwrap();
    assert_eq!(splice(&r, &right, 64).unwrap(), 13);
    let mut buf = [0u8; 13];
    left.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to the socket");
    left.write_all(b"and back").unwrap();
    let (mut r2, w2) = pipe().unwrap();
    assert_eq!(splice(&right, &w2, 64).unwrap(), 8);
    let mut back = [0u8; 8];
    r2.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"and back");
}

#[test]
fn zero_copy_calls_have_try_and_timeout_forms() {
    use std::time::{Duration, Instant};
    let (r1, mut w1) = pipe().unwrap();
    let (r2, w2) = pipe().unwrap();
    // Nothing to move yet.
    assert!(
        ipc_pipe::try_splice(&r1, &w2, 10)
            .unwrap_err()
            .is_would_block()
    );
    assert!(
        ipc_pipe::try_tee(&r1, &w2, 10)
            .unwrap_err()
            .is_would_block()
    );
    let start = Instant::now();
    let err = ipc_pipe::splice_timeout(&r1, &w2, 10, Duration::from_millis(50)).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(
        ipc_pipe::tee_timeout(&r1, &w2, 10, Duration::from_millis(10))
            .unwrap_err()
            .is_timeout()
    );
    w1.write_all(b"abc").unwrap();
    assert_eq!(ipc_pipe::try_tee(&r1, &w2, 10).unwrap(), 3);
    assert_eq!(
        ipc_pipe::splice_timeout(&r1, &w2, 10, Duration::from_secs(5)).unwrap(),
        3
    );
    assert_eq!(r2.unread_bytes().unwrap(), 6);

    // A full pipe: vmsplice says how much went in, and nothing when nothing fits.
    let (r3, w3) = pipe().unwrap();
    let capacity = w3.capacity().unwrap();
    let mut sender = VmspliceWriter::new(w3);
    let sent = sender
        .send_timeout(vec![7u8; capacity + 4096], Duration::from_millis(50))
        .unwrap();
    assert!(sent > 0 && sent <= capacity, "{sent}");
    let err = sender.try_send(vec![1u8; 4096]).unwrap_err();
    assert!(err.is_would_block(), "{err}");
    let err = sender
        .send_timeout(vec![1u8; 4096], Duration::from_millis(20))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Unsent buffers come back at once; the sent one only after the reader has it.
    let mut reclaimed = Vec::new();
    while let Some(b) = sender.reclaim().unwrap() {
        reclaimed.push(b);
    }
    assert!(
        reclaimed.is_empty(),
        "the first buffer is still in the pipe"
    );
    let mut sink = vec![0u8; sent];
    (&r3).read_exact(&mut sink).unwrap();
    while let Some(b) = sender.reclaim().unwrap() {
        reclaimed.push(b);
    }
    assert_eq!(reclaimed.len(), 3);
}
