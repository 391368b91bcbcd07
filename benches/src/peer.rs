//! The other process of a benchmark: this executable, started again in a peer role.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};

use ipc_core::{Error, Result};

const ROLE_ENV: &str = "IPC_BENCH_PEER";
const CPU_ENV: &str = "IPC_BENCH_PEER_CPU";

/// The peer role this process was started in, if any. A benchmark binary calls this first
/// thing in `main` and runs the role instead of benchmarking.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// The CPU the parent asked the peer to pin itself to.
pub fn requested_cpu() -> Option<usize> {
    std::env::var(CPU_ENV).ok()?.parse().ok()
}

/// A peer process, killed and reaped on drop so that no busy-polling process outlives its
/// benchmark.
#[derive(Debug)]
pub struct BenchPeer {
    child: Child,
    /// How long the peer is given to end by itself before it is killed.
    grace: std::time::Duration,
}

impl BenchPeer {
    /// Starts this executable as a peer in `role` with `args`, to be pinned to `cpu`, with
    /// the given stdin and stdout (pipes for the pipe benchmarks).
    ///
    /// # Errors
    ///
    /// If the executable cannot be found or started.
    pub fn spawn<I: AsRef<OsStr>>(
        role: &str,
        args: impl IntoIterator<Item = I>,
        cpu: Option<usize>,
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::from(e).with_op("current_exe"))?;
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_ENV, role)
            .args(args)
            .stdin(stdin)
            .stdout(stdout);
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let child = cmd.spawn().map_err(|e| {
            Error::from(e)
                .with_op("spawn")
                .with_subject(format!("peer {role}"))
        })?;
        Ok(BenchPeer {
            child,
            grace: std::time::Duration::ZERO,
        })
    }

    /// Gives the peer up to a second, once its link is closed, to end by itself and remove
    /// what it made (a selector's wake FIFOs) before it is killed.
    pub fn ends_with_its_link(mut self) -> Self {
        self.grace = std::time::Duration::from_secs(1);
        self
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the peer has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for BenchPeer {
    fn drop(&mut self) {
        // Nothing to report from a destructor: the peer may already have exited.
        let until = std::time::Instant::now() + self.grace;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True while the process that started this one is alive. A peer polls it so that it never
/// busy-polls on after its benchmark was killed.
pub fn parent_alive(parent: u32) -> bool {
    std::os::unix::process::parent_id() == parent
}
