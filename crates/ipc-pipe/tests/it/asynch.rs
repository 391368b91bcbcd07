//! FIFOs on a tokio runtime, with the other end in another process: a read dropped
//! half-way loses nothing, end of file after the writer leaves, `AsyncRead`, `AsyncWrite`
//! and `vmsplice` move megabytes through a pipe's 64 KiB intact.

use std::io::{Read, Write};

use ipc_pipe::Fifo;
use ipc_testkit::{PeerContext, PeerResult};

/// Opens the FIFO at arg 0 for writing, says ready, and writes each line it receives until
/// "end", then closes it.
pub fn fifo_writer_role(ctx: &mut PeerContext) -> PeerResult {
    let fifo = Fifo::open(ctx.arg(0)?)?;
    let mut writer = fifo.open_writer_timeout(ipc_testkit::test_timeout())?;
    ctx.ready()?;
    loop {
        let line = ctx.recv()?;
        if line == "end" {
            return Ok(());
        }
        writer.write_all(line.as_bytes())?;
        ctx.send("written")?;
    }
}

/// FNV-1a of `bytes`, continuing from `hash`: what both ends compare.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The test's bytes: `len` of a pattern that a dropped or doubled chunk would change.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 7 + i / 4096).to_le_bytes()[0])
        .collect()
}

/// Opens the FIFO at arg 0 for reading, says ready, reads to the end and reports the
/// length and hash of what it read.
pub fn fifo_digest_role(ctx: &mut PeerContext) -> PeerResult {
    let fifo = Fifo::open(ctx.arg(0)?)?;
    let mut reader = fifo.open_reader()?;
    ctx.ready()?;
    let (mut len, mut hash) = (0, FNV_START);
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.read(&mut buf)? {
            0 => break,
            n => {
                len += n;
                hash = fnv(hash, &buf[..n]);
            }
        }
    }
    ctx.send(&format!("{len} {hash:x}"))?;
    Ok(())
}

/// Opens the FIFO at arg 0 for writing, says ready, writes arg 1 bytes of the pattern and
/// exits.
pub fn fifo_pattern_writer_role(ctx: &mut PeerContext) -> PeerResult {
    let fifo = Fifo::open(ctx.arg(0)?)?;
    let mut writer = fifo.open_writer_timeout(ipc_testkit::test_timeout())?;
    ctx.ready()?;
    writer.write_all(&pattern(ctx.arg(1)?.parse()?))?;
    Ok(())
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::time::Duration;

    use ipc_pipe::{Async, Fifo, ReadReady};
    use ipc_testkit::{LeakGuard, Peer, test_timeout};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{FNV_START, fnv, pattern};

    const LEN: usize = 4 << 20;

    /// The digest role read `data`, whole and in order, and left.
    fn expect_digest(peer: &mut Peer, data: &[u8]) {
        let expected = format!("{} {:x}", data.len(), fnv(FNV_START, data));
        assert_eq!(peer.recv().unwrap(), expected);
        peer.wait_success().unwrap();
    }

    #[test]
    fn async_write_moves_megabytes_to_another_process_intact() {
        let guard = LeakGuard::new();
        let path = guard.dir().join("async-write");
        let fifo = Fifo::create(&path).unwrap();
        let mut peer = Peer::spawn("fifo-digest", &[path.to_str().unwrap()]);
        let mut writer = Async::new(fifo.open_writer().unwrap());
        let data = pattern(LEN);
        ipc_testkit::runtime().unwrap().block_on(async {
            tokio::time::timeout(test_timeout(), async {
                writer.write_all(&data).await.unwrap();
                writer.shutdown().await.unwrap();
            })
            .await
            .expect("written in time");
        });
        // The reader sees the end only once the last writer is gone.
        drop(writer);
        expect_digest(&mut peer, &data);
    }

    #[test]
    fn async_read_takes_megabytes_from_another_process_intact() {
        let guard = LeakGuard::new();
        let path = guard.dir().join("async-read");
        let fifo = Fifo::create(&path).unwrap();
        let reader = fifo.open_reader().unwrap();
        let mut peer = Peer::spawn(
            "fifo-pattern-writer",
            &[path.to_str().unwrap(), &LEN.to_string()],
        );
        let mut reader = Async::new(reader);
        let read = ipc_testkit::runtime().unwrap().block_on(async {
            let mut read = Vec::new();
            tokio::time::timeout(test_timeout(), reader.read_to_end(&mut read))
                .await
                .expect("read in time")
                .unwrap();
            read
        });
        assert!(read == pattern(LEN), "every byte once, in order");
        peer.wait_success().unwrap();
    }

    #[test]
    fn an_async_fifo_read_dropped_half_way_loses_nothing_and_sees_the_end() {
        let guard = LeakGuard::new();
        let path = guard.dir().join("async");
        let fifo = Fifo::create(&path).unwrap();
        let reader = fifo.open_reader().unwrap();
        let mut peer = Peer::spawn("fifo-writer", &[path.to_str().unwrap()]);
        let mut reader = Async::new(reader);
        let runtime = ipc_testkit::runtime().unwrap();
        runtime.block_on(async {
            let mut buf = [0u8; 64];
            let dropped = tokio::time::timeout(
                Duration::from_millis(30),
                reader.read_with(|r| r.try_read(&mut buf)),
            );
            assert!(dropped.await.is_err());
            peer.send("hello").unwrap();
            assert_eq!(peer.recv().unwrap(), "written");
            let n =
                tokio::time::timeout(test_timeout(), reader.read_with(|r| r.try_read(&mut buf)))
                    .await
                    .expect("the bytes in time")
                    .unwrap();
            assert_eq!(&buf[..n], b"hello");
            peer.send("end").unwrap();
            let n =
                tokio::time::timeout(test_timeout(), reader.read_with(|r| r.try_read(&mut buf)))
                    .await
                    .expect("the end in time")
                    .unwrap();
            assert_eq!(n, 0, "end of file once the writer left");
        });
        peer.wait_success().unwrap();
    }

    #[test]
    fn vmsplice_on_a_runtime_moves_megabytes_to_another_process_intact() {
        let guard = LeakGuard::new();
        let path = guard.dir().join("async-vmsplice");
        let fifo = Fifo::create(&path).unwrap();
        let mut peer = Peer::spawn("fifo-digest", &[path.to_str().unwrap()]);
        let mut writer = Async::new(ipc_pipe::VmspliceWriter::new(fifo.open_writer().unwrap()));
        let data = pattern(LEN);
        ipc_testkit::runtime().unwrap().block_on(async {
            tokio::time::timeout(test_timeout(), async {
                for chunk in data.chunks(64 * 1024) {
                    let mut rest = chunk.to_vec();
                    loop {
                        // Room first, then a buffer is given to the pipe: what did not fit
                        // goes in a new one (the given one stays until it is consumed).
                        writer.writable().await.unwrap();
                        match writer.get_mut().try_send(rest.clone()) {
                            Ok(n) if n == rest.len() => break,
                            Ok(n) => rest.drain(..n).for_each(drop),
                            Err(err) if err.is_would_block() => {}
                            Err(err) => panic!("{err}"),
                        }
                        while writer.get_mut().reclaim().unwrap().is_some() {}
                    }
                }
            })
            .await
            .expect("written in time");
        });
        drop(writer);
        expect_digest(&mut peer, &data);
    }

    /// The flags of a child's stdin, as `/proc` shows them to the child.
    fn stdin_flags_in_a_child(stdin: ipc_pipe::PipeReader) -> u32 {
        let output = std::process::Command::new("grep")
            .args(["^flags:", "/proc/self/fdinfo/0"])
            .stdin(stdin)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        let octal = text.trim().trim_start_matches("flags:").trim();
        u32::from_str_radix(octal, 8).unwrap()
    }

    #[test]
    fn an_anonymous_pipe_from_a_child_reads_on_a_runtime_and_leaves_shared_copies_blocking() {
        let _guard = LeakGuard::new();
        let (reader, writer) = ipc_pipe::pipe().unwrap();
        let shared = reader.try_clone().unwrap();
        let mut child = std::process::Command::new("seq")
            .args(["1", "200000"])
            .stdout(writer)
            .spawn()
            .unwrap();
        let mut reader = Async::new(reader);
        let text = ipc_testkit::runtime().unwrap().block_on(async {
            let mut text = String::new();
            tokio::time::timeout(test_timeout(), reader.read_to_string(&mut text))
                .await
                .expect("read in time")
                .unwrap();
            text
        });
        assert!(child.wait().unwrap().success());
        let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
        assert!(text == expected, "every line once, in order");
        // The copy shares the description the end had before the runtime watched it: a
        // child given it as stdin finds it blocking.
        let nonblock = u32::try_from(libc::O_NONBLOCK).unwrap();
        assert_eq!(stdin_flags_in_a_child(shared) & nonblock, 0);
        // So does a child given the watched end itself.
        assert_eq!(stdin_flags_in_a_child(reader.into_inner()) & nonblock, 0);
    }
}
