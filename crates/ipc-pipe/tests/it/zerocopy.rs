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
