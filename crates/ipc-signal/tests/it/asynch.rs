//! Signals and processes on a tokio runtime: a shutdown awaited in a process that SIGTERM
//! ends, another process's exit awaited.

use ipc_signal::{ShutdownOptions, Signal};
use ipc_testkit::{PeerContext, PeerResult};

/// Installs a shutdown on SIGTERM, says ready, awaits it on a current-thread runtime (with
/// the test timeout) and reports the signal.
pub fn async_shutdown_role(ctx: &mut PeerContext) -> PeerResult {
    let shutdown = ShutdownOptions::new().signals(&[Signal::TERM]).install()?;
    ctx.ready()?;
    #[cfg(feature = "tokio")]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut shutdown = ipc_signal::Async::new(shutdown);
        let signal = runtime.block_on(async {
            tokio::time::timeout(
                ipc_testkit::test_timeout(),
                shutdown.read_with(|s| s.try_wait()),
            )
            .await
        })??;
        ctx.send(&signal.to_string())?;
    }
    #[cfg(not(feature = "tokio"))]
    {
        drop(shutdown);
        ctx.send("no tokio")?;
    }
    Ok(())
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use ipc_signal::{Async, Process, Signal};
    use ipc_testkit::{Peer, test_timeout};

    #[test]
    fn a_shutdown_awaited_on_a_runtime_ends_on_sigterm() {
        let mut peer = Peer::spawn("async-shutdown", &[]);
        Process::open(peer.pid())
            .unwrap()
            .send(Signal::TERM)
            .unwrap();
        assert_eq!(peer.recv().unwrap(), Signal::TERM.to_string());
        peer.wait_success().unwrap();
    }

    #[test]
    fn another_process_s_exit_is_awaited() {
        let mut peer = Peer::spawn("async-shutdown", &[]);
        let mut process = Async::new(Process::open(peer.pid()).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
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
}
