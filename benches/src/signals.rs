//! Signal round trips between two processes: `ipc-signal` beside the same libc calls.

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Error, Result};
use ipc_signal::{Signal, SignalFd};

use crate::sys::signals as raw;
use crate::transport::{Link, MsgRx, MsgTx, Setup};

/// How the signals are sent and received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// libc `kill` + `sigwaitinfo` (floor).
    RawKillSigwait,
    /// libc `kill` + `read` of a signalfd (floor).
    RawKillSignalFd,
    /// `ipc_signal::send` + `SignalFd::recv`.
    SendSignalFd,
    /// libc `sigqueue` + `read` of a signalfd (floor).
    RawQueueSignalFd,
    /// `ipc_signal::queue` + `SignalFd::recv`, payload checked.
    QueueSignalFd,
}

impl Flavour {
    /// Every flavour, each floor before its wrapper.
    pub const ALL: [Flavour; 5] = [
        Flavour::RawKillSigwait,
        Flavour::RawKillSignalFd,
        Flavour::SendSignalFd,
        Flavour::RawQueueSignalFd,
        Flavour::QueueSignalFd,
    ];

    /// The name on a peer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::RawKillSigwait => "raw-kill-sigwait",
            Flavour::RawKillSignalFd => "raw-kill-signalfd",
            Flavour::SendSignalFd => "send-signalfd",
            Flavour::RawQueueSignalFd => "raw-queue-signalfd",
            Flavour::QueueSignalFd => "queue-signalfd",
        }
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::RawKillSigwait => "signal: libc kill + sigwaitinfo (floor)",
            Flavour::RawKillSignalFd => "signal: libc kill + signalfd read (floor)",
            Flavour::SendSignalFd => "signal: send + SignalFd",
            Flavour::RawQueueSignalFd => "signal: libc sigqueue + signalfd read (floor)",
            Flavour::QueueSignalFd => "signal: queue + SignalFd, payload checked",
        }
    }

    /// The floor this flavour is compared with (itself for a floor).
    pub fn floor(self) -> Flavour {
        match self {
            Flavour::SendSignalFd => Flavour::RawKillSignalFd,
            Flavour::QueueSignalFd => Flavour::RawQueueSignalFd,
            floor => floor,
        }
    }

    /// Parses [`Flavour::name`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unknown name.
    pub fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "signal", Flavour::name)
    }
}

/// The signals: one towards the peer, one back.
fn signals() -> Result<(Signal, Signal)> {
    Ok((Signal::realtime(4)?, Signal::realtime(5)?))
}

/// Blocks the cases' signals in the calling thread. Called first thing in `main`, before
/// any thread starts, so that every thread inherits the mask: the signals are sent to the
/// process, and the kernel hands a process-directed signal to any thread that does not
/// block it, whose default action ends the process (a full run was killed so, once the
/// async cases had left a runtime's threads behind).
///
/// # Errors
///
/// If the real-time signals are not available.
pub fn block_in_every_thread() -> Result<()> {
    let (to_peer, back) = signals()?;
    raw::block(&[to_peer.number(), back.number()]);
    Ok(())
}

struct Tx {
    flavour: Flavour,
    pid: u32,
    signal: Signal,
}

impl MsgTx for Tx {
    fn send(&mut self, seq: u64) -> Result<()> {
        let value = i32::from_le_bytes(seq.to_le_bytes()[..4].try_into().unwrap_or([0; 4]));
        let pid = libc::pid_t::try_from(self.pid).unwrap_or(0);
        match self.flavour {
            Flavour::RawKillSigwait | Flavour::RawKillSignalFd => {
                raw::kill(pid, self.signal.number())
            }
            Flavour::RawQueueSignalFd => raw::sigqueue(pid, self.signal.number(), value),
            Flavour::SendSignalFd => ipc_signal::send(self.pid, self.signal),
            Flavour::QueueSignalFd => ipc_signal::queue(self.pid, self.signal, value),
        }
    }
}

/// The receiving side: what it reads with, and the count that stands for the stamp.
enum Receive {
    Sigwait(libc::sigset_t),
    RawFd(OwnedFd),
    Fd(SignalFd),
}

struct Rx {
    receive: Receive,
    count: u64,
    check_payload: bool,
}

impl MsgRx for Rx {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        let value = match &self.receive {
            Receive::Sigwait(set) => raw::sigwaitinfo(set).map(|_| 0)?,
            Receive::RawFd(fd) => raw::read_signalfd(fd.as_fd())?,
            Receive::Fd(fd) => fd.recv()?.value,
        };
        let expected =
            i32::from_le_bytes(self.count.to_le_bytes()[..4].try_into().unwrap_or([0; 4]));
        if self.check_payload && value != expected {
            return Err(Error::corrupted(
                "recv",
                format!("payload {value}, expected {expected}"),
            ));
        }
        buf[..8].copy_from_slice(&self.count.to_le_bytes());
        self.count += 1;
        Ok(true)
    }
}

/// Blocks both signals in this thread (the others inherited the mask, see
/// [`block_in_every_thread`]) and makes the receiving side.
fn receiver(flavour: Flavour, signal: Signal, other: Signal) -> Result<Rx> {
    let set = raw::block(&[signal.number(), other.number()]);
    let receive = match flavour {
        Flavour::RawKillSigwait => Receive::Sigwait(set),
        Flavour::RawKillSignalFd | Flavour::RawQueueSignalFd => {
            Receive::RawFd(raw::signalfd(&set)?)
        }
        Flavour::SendSignalFd | Flavour::QueueSignalFd => Receive::Fd(SignalFd::new(&[signal])?),
    };
    Ok(Rx {
        receive,
        count: 0,
        check_payload: matches!(flavour, Flavour::RawQueueSignalFd | Flavour::QueueSignalFd),
    })
}

/// The parent blocks its signal now; the peer reports its pid on its stdout, which the
/// parent reads when it completes its side.
pub(crate) fn setup(flavour: Flavour) -> Result<Setup> {
    let (to_peer, back) = signals()?;
    let rx = receiver(flavour, back, to_peer)?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::from_errno("pipe2", e))?;
    Ok(Setup {
        stdin: std::process::Stdio::null(),
        stdout: std::process::Stdio::from(write),
        args: Vec::new(),
        finish: Box::new(move || {
            let mut line = String::new();
            std::io::BufReader::new(std::fs::File::from(read))
                .read_line(&mut line)
                .map_err(|e| Error::from(e).with_op("read peer pid"))?;
            let pid: u32 = line
                .trim()
                .parse()
                .map_err(|_| Error::new("setup", std::io::ErrorKind::InvalidData, "no peer pid"))?;
            Ok(Link {
                tx: Box::new(Tx {
                    flavour,
                    pid,
                    signal: to_peer,
                }),
                rx: Box::new(rx),
            })
        }),
    })
}

/// The peer's side: it blocks its signal, reports its pid and signals its parent back.
pub(crate) fn peer_link(flavour: Flavour) -> Result<Link> {
    let (to_peer, back) = signals()?;
    let rx = receiver(flavour, to_peer, back)?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", std::process::id()).map_err(|e| Error::from(e).with_op("write pid"))?;
    out.flush()
        .map_err(|e| Error::from(e).with_op("write pid"))?;
    Ok(Link {
        tx: Box::new(Tx {
            flavour,
            pid: std::os::unix::process::parent_id(),
            signal: back,
        }),
        rx: Box::new(rx),
    })
}

crate::transport::benchmarked!(
    "signal",
    setup: |f, _, _| setup(f),
    peer: |f, _, _| peer_link(f),
);
