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

/// On an empty pipe, `try_read` fails at once and `read_timeout` waits its time out.
fn assert_empty_reads_do_not_wait(r: &ipc_pipe::PipeReader) {
    let mut buf = [0u8; 8];
    assert!(r.try_read(&mut buf).unwrap_err().is_would_block());
    let start = Instant::now();
    let err = r
        .read_timeout(&mut buf, Duration::from_millis(50))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn try_and_timeout_forms_work_in_either_mode() {
    let (r, w) = pipe().unwrap();
    let mut buf = [0u8; 8];
    for nonblocking in [false, true] {
        r.set_nonblocking(nonblocking).unwrap();
        assert_eq!(r.is_nonblocking().unwrap(), nonblocking);
        assert_empty_reads_do_not_wait(&r);
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

/// Whether the open file description behind `fd` is `O_NONBLOCK`, whatever the end says.
fn description_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    flags & libc::O_NONBLOCK != 0
}

#[test]
fn a_watched_end_gets_a_description_of_its_own_and_keeps_its_blocking_mode() {
    use std::os::fd::AsFd;

    let (r, w) = pipe().unwrap();
    // A copy made before the end is watched, as a child's stdin would be.
    let copy = r.try_clone().unwrap();
    let mut selector = ipc_pipe::Selector::new().unwrap();
    selector.add(&r, ipc_pipe::Interest::Readable).unwrap();
    assert!(description_nonblocking(r.as_fd()), "the watched end's own");
    assert!(
        !description_nonblocking(copy.as_fd()),
        "the copy keeps its mode"
    );
    assert!(
        !r.is_nonblocking().unwrap(),
        "the user's choice is unchanged"
    );
    assert_empty_reads_do_not_wait(&r);
    let mut buf = [0u8; 8];
    // Blocking reads still wait for data, on the watched end and on the copy.
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut buf = [0u8; 8];
            let n = (&r).read(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        (&w).write_all(b"watched").unwrap();
        assert_eq!(reader.join().unwrap(), b"watched");
    });
    (&w).write_all(b"copy").unwrap();
    assert_eq!((&copy).read(&mut buf).unwrap(), 4);
    // The selector watches the new description.
    assert!(selector.try_wait().unwrap_err().is_would_block());
    (&w).write_all(b"x").unwrap();
    assert_eq!(selector.wait_deadline(test_deadline()).unwrap().len(), 1);
    assert_eq!(r.try_read(&mut buf).unwrap(), 1);
    // Non-blocking mode is now this end's alone.
    r.set_nonblocking(true).unwrap();
    assert!(r.is_nonblocking().unwrap());
    assert_eq!(
        (&r).read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert!(!copy.is_nonblocking().unwrap());
    r.set_nonblocking(false).unwrap();
    // Handed out, the descriptor is in the mode the user chose.
    let fd = std::os::fd::OwnedFd::from(r);
    assert!(!description_nonblocking(fd.as_fd()));
    // The writing end too; it keeps the pipe's readers.
    let watched_writer = w.try_clone().unwrap();
    let mut selector = ipc_pipe::Selector::new().unwrap();
    selector
        .add(&watched_writer, ipc_pipe::Interest::Writable)
        .unwrap();
    assert!(description_nonblocking(watched_writer.as_fd()));
    assert!(!description_nonblocking(w.as_fd()));
    drop((w, selector));
    watched_writer.try_write(b"end").unwrap();
    drop(watched_writer);
    let mut rest = Vec::new();
    (&copy).read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"end", "end of file once the last writer left");
}

/// Defect found on review: handing a clone of a watched end out (to a child's stdin) made
/// their shared description blocking, and the watched end's `try_read` then waited.
#[test]
fn handing_out_a_clone_of_a_watched_end_leaves_the_watched_end_non_blocking() {
    use std::os::fd::AsFd;

    let (r, _w) = pipe().unwrap();
    let mut selector = ipc_pipe::Selector::new().unwrap();
    selector.add(&r, ipc_pipe::Interest::Readable).unwrap();
    let clone = r.try_clone().unwrap();
    let handed = std::os::fd::OwnedFd::from(clone);
    assert!(
        !description_nonblocking(handed.as_fd()),
        "handed out blocking"
    );
    assert!(
        description_nonblocking(r.as_fd()),
        "the watched end's stays"
    );
    assert_empty_reads_do_not_wait(&r);
}
