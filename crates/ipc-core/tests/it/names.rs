// The names are checked against the C library's own sem_open, called raw.
#![allow(unsafe_code)]

use std::ffi::CString;

use ipc_core::IpcName;
use ipc_testkit::LeakGuard;
use nix::mqueue::{MQ_OFlag, MqAttr, mq_close, mq_open, mq_unlink};
use nix::sys::stat::Mode;

use crate::{shm_attempt, shm_unlink};

/// A valid name of exactly `IpcName::MAX_LEN` bytes after the slash, watched by `guard`.
fn longest_name(guard: &LeakGuard) -> IpcName {
    let stem = guard.name("max");
    let padding = IpcName::MAX_LEN - stem.file_name().len();
    let name = IpcName::new(format!("{stem}{}", "x".repeat(padding))).unwrap();
    assert_eq!(name.file_name().len(), IpcName::MAX_LEN);
    guard.track(&name);
    name
}

fn sem_open_close_unlink(name: &CString) -> Result<(), nix::errno::Errno> {
    let mode = libc::c_uint::from(0o600u16);
    // SAFETY: `name` is a valid NUL-terminated string; with `O_CREAT` `sem_open` reads a
    // mode and an initial value, which we pass as the variadic arguments it expects.
    let sem = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL, mode, 0u32) };
    if sem == libc::SEM_FAILED {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: `sem` was just returned by `sem_open` and is closed exactly once.
    unsafe { libc::sem_close(sem) };
    // SAFETY: `name` is a valid NUL-terminated string.
    unsafe { libc::sem_unlink(name.as_ptr()) };
    Ok(())
}

#[test]
fn the_longest_name_works_for_every_kind_of_object() {
    let guard = LeakGuard::new();
    let name = longest_name(&guard);

    drop(shm_attempt(&name, ipc_core::OpenIntent::Create).unwrap());
    shm_unlink(&name).unwrap();

    sem_open_close_unlink(&name.as_cstr().to_owned()).unwrap();

    let attr = MqAttr::new(0, 1, 16, 0);
    let mqd = mq_open(
        name.as_cstr(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        Some(&attr),
    )
    .unwrap();
    mq_close(mqd).unwrap();
    mq_unlink(name.as_cstr()).unwrap();
}

#[test]
fn one_byte_more_fails_where_the_limit_comes_from() {
    let guard = LeakGuard::new();
    let longest = longest_name(&guard);
    let too_long = format!("{longest}y");
    assert!(IpcName::new(too_long.clone()).is_err());
    // The semaphore's `sem.` prefix is why the limit is 251: glibc refuses one byte more.
    let err = sem_open_close_unlink(&CString::new(too_long).unwrap()).unwrap_err();
    assert_eq!(err, nix::errno::Errno::ENAMETOOLONG);
}
