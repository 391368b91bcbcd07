//! FIFOs on a tokio runtime, with the writer in another process: a read dropped half-way
//! loses nothing, end of file after the writer leaves.

use std::io::Write;

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

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::time::Duration;

    use ipc_pipe::{Async, Fifo, ReadReady};
    use ipc_testkit::{LeakGuard, Peer, test_timeout};

    #[test]
    fn an_async_fifo_read_dropped_half_way_loses_nothing_and_sees_the_end() {
        let guard = LeakGuard::new();
        let path = guard.dir().join("async");
        let fifo = Fifo::create(&path).unwrap();
        let reader = fifo.open_reader().unwrap();
        let mut peer = Peer::spawn("fifo-writer", &[path.to_str().unwrap()]);
        let mut reader = Async::new(reader);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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
}
