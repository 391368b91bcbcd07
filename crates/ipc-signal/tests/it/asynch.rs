//! Signals and processes on a tokio runtime, across processes: signalfds and signal
//! receivers as streams of what another process sends, a shutdown awaited by many tasks in
//! a process that SIGTERM ends, another process's exit and a child's status awaited.

use std::sync::Arc;

use ipc_signal::{ShutdownOptions, Signal};
use ipc_testkit::{PeerContext, PeerResult};

/// Installs a shutdown on SIGTERM, says ready, awaits it in four tasks of a current-thread
/// runtime (with the test timeout) and reports the signal each saw.
pub fn async_shutdown_role(ctx: &mut PeerContext) -> PeerResult {
    let shutdown = Arc::new(ShutdownOptions::new().signals(&[Signal::TERM]).install()?);
    ctx.ready()?;
    #[cfg(feature = "tokio")]
    {
        let runtime = ipc_testkit::runtime()?;
        let seen = runtime.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let shutdown = Arc::clone(&shutdown);
                    tokio::spawn(async move {
                        tokio::time::timeout(ipc_testkit::test_timeout(), shutdown.requested())
                            .await
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for task in tasks {
                seen.push(task.await???.to_string());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seen)
        })?;
        ctx.send(&seen.join(","))?;
    }
    #[cfg(not(feature = "tokio"))]
    {
        drop(shutdown);
        ctx.send("no tokio")?;
    }
    Ok(())
}

/// Says ready, then queues real-time signal 3 to pid arg 0 with the values 0..arg 1.
pub fn queue_to_role(ctx: &mut PeerContext) -> PeerResult {
    let pid: u32 = ctx.arg(0)?.parse()?;
    let count: i32 = ctx.arg(1)?.parse()?;
    ctx.ready()?;
    for value in 0..count {
        ipc_signal::queue(pid, Signal::realtime(3)?, value)?;
    }
    Ok(())
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use std::future::poll_fn;
    use std::pin::Pin;

    use futures_core::Stream;
    use ipc_signal::{Async, ChildExit, Process, Signal, SignalFd, SignalReceiver};
    use ipc_testkit::{Peer, test_timeout};

    /// The stream's next item, within the test timeout.
    async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
        let next = poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx));
        tokio::time::timeout(test_timeout(), next)
            .await
            .expect("the next event in time")
            .expect("the stream does not end")
    }

    #[test]
    fn a_signalfd_stream_yields_what_another_process_queues_all_and_in_order() {
        // Real-time signal 3 is blocked in every thread of this binary (see main.rs).
        let rt = Signal::realtime(3).unwrap();
        let mut signals = Async::new(SignalFd::new(&[rt]).unwrap());
        let pid = std::process::id().to_string();
        let mut peer = Peer::spawn("queue-to", &[&pid, "200"]);
        ipc_testkit::runtime().unwrap().block_on(async {
            for value in 0..200 {
                let info = next(&mut signals).await.unwrap();
                assert_eq!(info.signal, rt);
                assert_eq!(info.value, value);
                assert_eq!(info.pid, peer.pid());
            }
        });
        peer.wait_success().unwrap();
    }

    #[test]
    fn a_signal_receiver_stream_yields_another_process_s_signal() {
        let mut signals = Async::new(SignalReceiver::new(&[Signal::USR2]).unwrap());
        let pid = std::process::id().to_string();
        let mut peer = Peer::spawn("send-to", &[&pid, "1"]);
        ipc_testkit::runtime().unwrap().block_on(async {
            assert_eq!(next(&mut signals).await.unwrap(), Signal::USR2);
        });
        peer.wait_success().unwrap();
    }

    #[test]
    fn a_shutdown_awaited_by_many_tasks_ends_them_all_on_sigterm() {
        let mut peer = Peer::spawn("async-shutdown", &[]);
        Process::open(peer.pid())
            .unwrap()
            .send(Signal::TERM)
            .unwrap();
        let term = Signal::TERM.to_string();
        assert_eq!(peer.recv().unwrap(), [&*term; 4].join(","));
        peer.wait_success().unwrap();
    }

    #[test]
    fn another_process_s_exit_is_awaited() {
        let mut peer = Peer::spawn("async-shutdown", &[]);
        let mut process = Async::new(Process::open(peer.pid()).unwrap());
        ipc_testkit::runtime().unwrap().block_on(async {
            let exited = process.read_with(|p| p.try_wait_exit());
            let killer = async {
                peer.kill().unwrap();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                biased;
                done = tokio::time::timeout(test_timeout(), exited) => {
                    done.expect("the exit in time").unwrap();
                }
                () = killer => unreachable!(),
            }
        });
    }

    #[test]
    fn a_child_s_exit_status_is_awaited() {
        // The child waits for its stdin to close, so that the wait below must wait. It is
        // reaped through its pidfd by `try_wait_child`, which is what this test checks.
        #[allow(clippy::zombie_processes)]
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line; exit 3"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut process = Async::new(Process::open(child.id()).unwrap());
        let stdin = child.stdin.take().unwrap();
        ipc_testkit::runtime().unwrap().block_on(async {
            let status = process.read_with(|p| p.try_wait_child());
            let closer = async {
                drop(stdin);
                std::future::pending::<()>().await;
            };
            tokio::select! {
                biased;
                done = tokio::time::timeout(test_timeout(), status) => {
                    assert_eq!(done.expect("the status in time").unwrap(), ChildExit::Exited(3));
                }
                () = closer => unreachable!(),
            }
        });
    }
}
