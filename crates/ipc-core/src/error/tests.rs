use std::io;

use super::*;

#[test]
fn display_reads_like_the_c_call() {
    let err = Error::from_raw_os_error("mq_open", libc::EEXIST).with_subject("/jobs");
    assert_eq!(err.to_string(), "mq_open(/jobs): File exists (os error 17)");
    let err = Error::from_raw_os_error("pipe2", libc::EMFILE);
    assert_eq!(err.to_string(), "pipe2: Too many open files (os error 24)");
    let err = Error::timed_out("").with_subject("/q");
    assert_eq!(err.to_string(), "/q: timed out");
    assert_eq!(
        Error::from_errno("", nix::errno::Errno::EAGAIN).to_string(),
        "Resource temporarily unavailable (os error 11)"
    );
}

#[test]
fn kind_follows_errno() {
    let cases = [
        (libc::EEXIST, io::ErrorKind::AlreadyExists),
        (libc::ENOENT, io::ErrorKind::NotFound),
        (libc::EACCES, io::ErrorKind::PermissionDenied),
        (libc::EAGAIN, io::ErrorKind::WouldBlock),
        (libc::EINTR, io::ErrorKind::Interrupted),
        (libc::ETIMEDOUT, io::ErrorKind::TimedOut),
        (libc::EPIPE, io::ErrorKind::BrokenPipe),
        (libc::EINVAL, io::ErrorKind::InvalidInput),
    ];
    for (errno, kind) in cases {
        assert_eq!(
            Error::from_raw_os_error("op", errno).kind(),
            kind,
            "errno {errno}"
        );
    }
    assert!(Error::from_raw_os_error("op", libc::ETIMEDOUT).is_timeout());
    assert!(Error::from_raw_os_error("op", libc::EAGAIN).is_would_block());
    assert!(Error::from_raw_os_error("op", libc::EINTR).is_interrupted());
}

#[test]
fn round_trip_through_io_error_is_lossless() {
    let original = Error::from_raw_os_error("shm_open", libc::EACCES).with_subject("/seg");
    let io: io::Error = original.clone().into();
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(io.to_string(), original.to_string());
    assert_eq!(Error::os_error_of(&io), Some(libc::EACCES));
    let back = Error::from(io);
    assert_eq!(back.op(), "shm_open");
    assert_eq!(back.subject(), Some("/seg"));
    assert_eq!(back.raw_os_error(), Some(libc::EACCES));

    let limit = Limit::new("PIPE_BUF", 4096);
    let domain = Error::limit_exceeded("write", "frame size", 5000, limit);
    let back = Error::from(io::Error::from(domain));
    assert_eq!(back.limit(), Some(limit));
    assert_eq!(back.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn from_plain_io_errors() {
    let os = Error::from(io::Error::from_raw_os_error(libc::ENOSPC));
    assert_eq!(os.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(os.op(), "");
    let os = os.with_op("ftruncate");
    assert_eq!(
        os.to_string(),
        "ftruncate: No space left on device (os error 28)"
    );

    let custom = Error::from(io::Error::new(io::ErrorKind::UnexpectedEof, "short"));
    assert_eq!(custom.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(custom.to_string(), "short");
    assert_eq!(custom.raw_os_error(), None);
    assert_eq!(Error::os_error_of(&io::Error::other("x")), None);
}

#[test]
fn from_errno_keeps_the_number() {
    let err = Error::from_errno("sem_open", nix::errno::Errno::ENAMETOOLONG);
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
}

#[test]
fn domain_predicates() {
    let gone = Error::peer_gone("recv", "writer died in the middle of a frame");
    assert!(gone.is_peer_gone());
    assert_eq!(gone.kind(), io::ErrorKind::BrokenPipe);
    assert!(Error::from_raw_os_error("write", libc::EPIPE).is_peer_gone());
    assert!(Error::from_raw_os_error("recv", libc::ECONNRESET).is_peer_gone());
    assert!(!Error::from_raw_os_error("recv", libc::EAGAIN).is_peer_gone());

    let died = Error::owner_died("lock", "owner 42 died");
    assert!(died.is_owner_died() && !died.is_peer_gone());
    assert!(Error::from_raw_os_error("pthread_mutex_lock", libc::EOWNERDEAD).is_owner_died());

    let bad = Error::corrupted("open", "bad magic 0xdead");
    assert!(bad.is_corrupted());
    assert_eq!(bad.kind(), io::ErrorKind::InvalidData);
    assert!(!gone.is_corrupted());

    let minimum = Error::buffer_below_minimum("mq_receive", 8192, "needs 8192 bytes");
    assert!(minimum.is_buffer_too_small());
    assert_eq!(minimum.needed_len(), Some(8192));
    assert_eq!(minimum.kind(), io::ErrorKind::InvalidInput);

    let small = Error::buffer_too_small("mq_receive", 8192, 100);
    assert!(small.is_buffer_too_small());
    assert_eq!(small.needed_len(), Some(8192));
    assert!(!small.is_limit_exceeded());
    assert!(
        small
            .to_string()
            .contains("8192 bytes does not fit a buffer of 100 bytes")
    );

    let limit = Limit::new("/proc/sys/fs/mqueue/msgsize_max", 8192);
    let over = Error::limit_exceeded("mq_open", "message size", 10000, limit).with_subject("/q");
    assert_eq!(
        over.to_string(),
        "mq_open(/q): message size 10000 exceeds the limit /proc/sys/fs/mqueue/msgsize_max = 8192"
    );
    assert_eq!(
        over.limit().map(|l| (l.name(), l.value())),
        Some(("/proc/sys/fs/mqueue/msgsize_max", 8192))
    );
}

#[test]
fn debug_shows_everything() {
    let err = Error::from_raw_os_error("mq_open", libc::EEXIST).with_subject("/jobs");
    let debug = format!("{err:?}");
    for part in ["mq_open", "/jobs", "17", "File exists"] {
        assert!(debug.contains(part), "{debug}");
    }
}

#[test]
fn cvt_maps_minus_one() {
    assert_eq!(cvt("op", 3i32).unwrap(), 3);
    assert_eq!(cvt("op", 0i64).unwrap(), 0);
    nix::errno::Errno::set_raw(libc::EBADF);
    let err = cvt("close", -1i32).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(err.op(), "close");
}

#[test]
fn error_is_small_and_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
    assert!(
        std::mem::size_of::<Error>() <= 80,
        "{}",
        std::mem::size_of::<Error>()
    );
}
