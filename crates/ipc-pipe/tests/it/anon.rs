use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::time::{Duration, Instant};

use ipc_pipe::pipe;
use ipc_testkit::{LeakGuard, SignalStorm, test_deadline};

#[test]
fn bytes_flow_and_end_of_file_follows_the_last_writer() {
    let _guard = LeakGuard::new();
    let (mut r, mut w) = pipe().unwrap();
    let w2 = w.try_clone().unwrap();
    w.write_all(b"abc").unwrap();
    (&w2).write_all(b"def").unwrap();
    drop(w);
    let mut buf = [0u8; 6];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcdef");
    // One writer is left: no end of file yet, just nothing to read.
    assert!(r.try_read(&mut buf).unwrap_err().is_would_block());
    drop(w2);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    assert_eq!(r.try_read(&mut buf).unwrap(), 0);
}

#[test]
fn vectored_io_gathers_and_scatters() {
    let (mut r, mut w) = pipe().unwrap();
    let n = w
        .write_vectored(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
        .unwrap();
    assert_eq!(n, 11);
    let (mut a, mut b) = ([0u8; 6], [0u8; 5]);
    let n = r
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap();
    assert_eq!(n, 11);
    assert_eq!((&a, &b), (b"hello ", b"world"));
}

#[test]
fn try_and_timeout_forms_work_in_either_mode() {
    let (r, w) = pipe().unwrap();
    let mut buf = [0u8; 8];
    for nonblocking in [false, true] {
        r.set_nonblocking(nonblocking).unwrap();
        assert_eq!(r.is_nonblocking().unwrap(), nonblocking);
        assert!(r.try_read(&mut buf).unwrap_err().is_would_block());
        let start = Instant::now();
        let err = r
            .read_timeout(&mut buf, Duration::from_millis(50))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
    // Non-blocking std reads say WouldBlock instead of waiting.
    assert_eq!(
        (&r).read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    r.set_nonblocking(false).unwrap();

    // Fill the pipe: a try_write that does not fit whole writes nothing.
    let capacity = w.capacity().unwrap();
    let chunk = vec![1u8; 4096];
    let mut written = 0;
    loop {
        match w.try_write(&chunk) {
            Ok(n) => written += n,
            Err(err) => {
                assert!(err.is_would_block(), "{err}");
                break;
            }
        }
    }
    assert_eq!(written, capacity);
    assert_eq!(r.unread_bytes().unwrap(), capacity);
    let start = Instant::now();
    assert!(
        w.write_timeout(&chunk, Duration::from_millis(50))
            .unwrap_err()
            .is_timeout()
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn capacity_can_grow_to_the_system_limit_and_no_further() {
    let (r, w) = pipe().unwrap();
    assert_eq!(r.capacity().unwrap(), 64 * 1024);
    // The kernel rounds up to a power of two pages.
    assert_eq!(w.set_capacity(100_000).unwrap(), 128 * 1024);
    assert_eq!(r.capacity().unwrap(), 128 * 1024);
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(w.set_capacity(max).unwrap(), max);
    let err = w.set_capacity(max + 1).unwrap_err();
    assert!(err.is_limit_exceeded());
    assert!(
        err.to_string().contains("/proc/sys/fs/pipe-max-size"),
        "{err}"
    );
    assert_eq!(err.limit().unwrap().value(), max as u64);
    assert_eq!(
        r.capacity().unwrap(),
        max,
        "a refused request changes nothing"
    );

    // Shrinking below what the pipe holds is refused with a clear error.
    let (_r, w) = pipe().unwrap();
    w.set_capacity(1 << 20).unwrap();
    (&w).write_all(&vec![0u8; 200_000]).unwrap();
    let err = w.set_capacity(4096).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
}

#[test]
fn reads_survive_a_signal_storm() {
    let (r, w) = pipe().unwrap();
    let storm = SignalStorm::start();
    let before = SignalStorm::received();
    // A timed read that nothing satisfies times out, never fails with EINTR.
    let start = Instant::now();
    let err = r
        .read_timeout(&mut [0u8; 4], Duration::from_millis(200))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    // A blocking read gets data that arrives after many interruptions.
    let writer = std::thread::spawn(move || {
        ipc_testkit::wait_until(test_deadline(), || SignalStorm::received() >= before + 100)
            .expect("the storm's signals never arrived");
        (&w).write_all(b"late").unwrap();
    });
    let mut buf = [0u8; 4];
    (&r).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
    writer.join().unwrap();
    assert!(SignalStorm::received() > before);
    drop(storm);
}

#[test]
fn pipes_are_close_on_exec() {
    let (r, w) = pipe().unwrap();
    let r2 = r.try_clone().unwrap();
    use std::os::fd::AsFd;
    for fd in [r.as_fd(), w.as_fd(), r2.as_fd()] {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}
