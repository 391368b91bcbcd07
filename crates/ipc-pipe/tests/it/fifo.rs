use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ipc_core::{Access, CreationMode, Permissions};
use ipc_pipe::{Fifo, FifoOptions};
use ipc_testkit::{LeakGuard, Peer, PeerContext, PeerResult, run_unprivileged};

/// Opens the reading end of the FIFO at arg 0 when told, then echoes what it reads.
pub fn fifo_reader_role(ctx: &mut PeerContext) -> PeerResult {
    let fifo = Fifo::open(ctx.arg(0)?)?;
    ctx.ready()?;
    ctx.recv()?;
    let mut reader = fifo.open_reader()?;
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    ctx.send(&text)?;
    Ok(())
}

/// Tries to open the FIFO at arg 0, which another user owns.
pub fn open_foreign_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    let err = Fifo::open(ctx.arg(0)?).unwrap_err();
    ctx.send(&format!("{:?} {err}", err.kind()))?;
    Ok(())
}

/// Opens the FIFO at arg 0, waiting for it to appear, and reports "ok" or the error kind.
pub fn open_late_role(ctx: &mut PeerContext) -> PeerResult {
    ctx.ready()?;
    match Fifo::open(ctx.arg(0)?) {
        Ok(_) => ctx.send("ok")?,
        Err(err) => ctx.send(&format!("{:?}", err.kind()))?,
    }
    Ok(())
}

#[test]
fn an_open_waits_for_a_fifo_its_creator_has_not_made_yet() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("late");
    ipc_testkit::assert_open_waits_then_not_found("FifoOptions::timeout", |t| {
        FifoOptions::new().timeout(t).open(&path)
    });

    let mut opener = Peer::spawn("fifo-open-late", &[path.to_str().unwrap()]);
    let _fifo = Fifo::create(&path).unwrap();
    assert_eq!(opener.recv().unwrap(), "ok");
    opener.wait_success().unwrap();
}

#[test]
fn creator_owns_and_removes_the_path() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("owned");
    let fifo = Fifo::create(&path).unwrap();
    assert!(fifo.is_owner());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let other = Fifo::open(&path).unwrap();
    assert!(!other.is_owner());
    drop(other);
    assert!(path.exists(), "a non-owner leaves the path alone");
    drop(fifo);
    assert!(!path.exists());

    let mut kept = Fifo::create(&path).unwrap();
    kept.persist();
    drop(kept);
    assert!(path.exists());
    Fifo::open(&path).unwrap().unlink().unwrap();
    assert!(!path.exists());
}

#[test]
fn permissions_are_exact_whatever_the_umask() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("shared");
    // The test process's umask (022 or 077) would clear group write from a plain mkfifo.
    let fifo = FifoOptions::new()
        .permissions(
            Permissions::owner_only()
                .group(Access::ReadWrite)
                .others(Access::Read),
        )
        .create(&path)
        .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o664
    );
    drop(fifo);
}

#[test]
fn creation_modes() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("modes");
    let first = Fifo::create(&path).unwrap();
    let err = Fifo::create(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("mkfifo"), "{err}");

    let second = FifoOptions::new()
        .creation_mode(CreationMode::OpenOrCreate)
        .create(&path)
        .unwrap();
    assert!(!second.is_owner());
    drop(second);

    // A stale FIFO is replaced by a fresh one that the purger owns. (Inode numbers are
    // reused at once, so mark the stale one by its mode.)
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut first = first;
    first.persist();
    let purged = FifoOptions::new()
        .creation_mode(CreationMode::PurgeAndCreate)
        .create(&path)
        .unwrap();
    assert!(purged.is_owner());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(purged);

    // Purging never removes something that is not a FIFO.
    std::fs::write(&path, b"precious").unwrap();
    let err = FifoOptions::new()
        .creation_mode(CreationMode::PurgeAndCreate)
        .create(&path)
        .unwrap_err();
    assert!(err.to_string().contains("regular file"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn symlinks_files_and_foreign_fifos_are_refused() {
    let guard = LeakGuard::new();
    let target = guard.dir().join("target");
    let fifo = Fifo::create(&target).unwrap();
    let link = guard.dir().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Fifo::open(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_file(&link).unwrap();

    let file = guard.dir().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Fifo::open(&file).unwrap_err();
    assert!(
        err.to_string().contains("is a regular file, not a FIFO"),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();

    // The path is swapped for a symlink after the Fifo was opened: opening an end refuses.
    let opened = Fifo::open(&target).unwrap();
    let mut owner = fifo;
    owner.persist();
    drop(owner);
    std::fs::remove_file(&target).unwrap();
    let decoy = guard.dir().join("decoy");
    drop(Fifo::create(&decoy).unwrap().persist_and_return());
    std::os::unix::fs::symlink(&decoy, &target).unwrap();
    let err = opened.open_reader().unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    std::fs::remove_file(&target).unwrap();

    // A FIFO that another user owns is refused before anything is opened.
    let foreign = guard.dir().join("foreign");
    drop(Fifo::create(&foreign).unwrap().persist_and_return());
    nix::unistd::chown(
        &foreign,
        Some(nix::unistd::Uid::from_raw(ipc_testkit::NOBODY)),
        None,
    )
    .unwrap();
    let err = Fifo::open(&foreign).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    assert!(
        err.to_string()
            .contains("FifoOptions::accept_other_owner(true)"),
        "the error names the fix: {err}"
    );
    // Accepted on purpose, it opens.
    let accepted = FifoOptions::new()
        .accept_other_owner(true)
        .open(&foreign)
        .unwrap();
    drop(accepted.open_reader().unwrap());
    std::fs::remove_file(&foreign).unwrap();
    std::fs::remove_file(&decoy).unwrap();
}

/// Lets a test keep the path of a FIFO it created, without owning it.
trait PersistAndReturn {
    fn persist_and_return(self) -> Self;
}

impl PersistAndReturn for Fifo {
    fn persist_and_return(mut self) -> Self {
        self.persist();
        self
    }
}

#[test]
fn another_users_fifo_is_refused_to_them_too() {
    let guard = LeakGuard::new();
    let path = guard.dir().join("roots");
    let fifo = FifoOptions::new()
        .permissions(Permissions::owner_only().others(Access::ReadWrite))
        .create(&path)
        .unwrap();
    let lines = run_unprivileged("fifo-open-foreign", &[path.to_str().unwrap()]).unwrap();
    assert!(lines[0].starts_with("PermissionDenied"), "{lines:?}");
    assert!(lines[0].contains("belongs to uid 0"), "{lines:?}");
    drop(fifo);
}

#[test]
fn writer_open_without_a_reader_neither_hangs_nor_fails_spuriously() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("lonely")).unwrap();
    assert!(fifo.try_open_writer().unwrap_err().is_would_block());
    let start = Instant::now();
    let err = fifo
        .open_writer_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    // With a reader, the same calls succeed.
    let _reader = fifo.open_reader().unwrap();
    drop(fifo.try_open_writer().unwrap());
}

#[test]
fn writer_waits_for_a_reader_in_another_process() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("meet")).unwrap();
    let mut peer = Peer::spawn("fifo-reader", &[fifo.path().to_str().unwrap()]);
    peer.send("open now").unwrap();
    let mut writer = fifo
        .open_writer_timeout(ipc_testkit::test_timeout())
        .unwrap();
    writer.write_all(b"across processes").unwrap();
    drop(writer);
    assert_eq!(peer.recv().unwrap(), "across processes");
    peer.wait_success().unwrap();
}

#[test]
fn early_reader_waits_for_the_first_writer_instead_of_seeing_eof() {
    let guard = LeakGuard::new();
    let fifo = Fifo::create(guard.dir().join("early")).unwrap();
    let reader = fifo.open_reader().unwrap();
    let mut buf = [0u8; 8];
    // No writer yet: not end of file, just nothing.
    assert!(reader.try_read(&mut buf).unwrap_err().is_would_block());
    assert!(
        reader
            .read_timeout(&mut buf, Duration::from_millis(30))
            .unwrap_err()
            .is_timeout()
    );
    let mut writer = fifo.open_writer().unwrap();
    writer.write_all(b"hi").unwrap();
    assert_eq!(
        reader
            .read_timeout(&mut buf, ipc_testkit::test_timeout())
            .unwrap(),
        2
    );
    drop(writer);
    // The writer came and went: now it is end of file.
    assert_eq!((&reader).read(&mut buf).unwrap(), 0);
}

/// Creates a FIFO in directory arg 0 under a name of its own (tagged arg 1, naming this
/// process), holds it open, reports its path and waits to be killed, leaving it behind.
pub fn left_behind_role(ctx: &mut PeerContext) -> PeerResult {
    let name = ipc_testkit::unique_name(ctx.arg(1)?);
    let path = std::path::Path::new(ctx.arg(0)?).join(name.file_name());
    let mut fifo = FifoOptions::new().create(&path)?;
    fifo.persist();
    let _reader = fifo.open_reader()?;
    ctx.ready_with(&path.display().to_string())?;
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_creators_fifo_is_stale_and_one_held_open_is_not() {
    let guard = LeakGuard::new();
    let dir = guard.dir();
    let mut peer = Peer::spawn("fifo-left-behind", &[dir.to_str().unwrap(), "fifo-stale"]);
    let left = std::path::PathBuf::from(peer.ready_payload());
    assert!(
        ipc_pipe::stale_fifos(dir, "ipcrs-test-fifo-stale")
            .unwrap()
            .is_empty()
    );
    peer.kill().unwrap();
    assert_eq!(
        ipc_pipe::stale_fifos(dir, "ipcrs-test-fifo-stale").unwrap(),
        vec![left.clone()]
    );
    assert_eq!(
        ipc_pipe::remove_stale_fifos(dir, "ipcrs-test-fifo-stale").unwrap(),
        vec![left.clone()]
    );
    assert!(!left.exists());
}
