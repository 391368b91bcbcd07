//! Semaphores and mutexes: `ipc-sem`'s primitives beside the same C library or kernel calls
//! made directly, in a cross-process ping-pong and uncontended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::{Error, IpcName, Result};
use ipc_sem::{
    MutexOptions, NamedSemaphore, RobustMutex, Semaphore, SemaphoreOptions, UndoSemaphore,
};
use ipc_shm::{SharedMemory, ShmOptions};

use crate::sys::{RawPosixSem, RawPthreadMutex, RawSysvSem, SemNames};
use crate::transport::{Link, MsgRx, MsgTx, Setup, arg};

/// A primitive, raw or through `ipc-sem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// `sem_open`, `sem_post`, `sem_wait` (floor).
    RawNamed,
    /// `NamedSemaphore`.
    Named,
    /// `sem_init(pshared)` in a segment (floor).
    RawUnnamed,
    /// `Semaphore` in a segment.
    Unnamed,
    /// `semop` with `SEM_UNDO` (floor).
    RawUndo,
    /// `UndoSemaphore`.
    Undo,
    /// A robust process-shared `pthread_mutex_t` (floor).
    RawMutex,
    /// `RobustMutex`.
    Mutex,
}

impl Flavour {
    /// Every flavour, each floor before its wrapper.
    pub const ALL: [Flavour; 8] = [
        Flavour::RawNamed,
        Flavour::Named,
        Flavour::RawUnnamed,
        Flavour::Unnamed,
        Flavour::RawUndo,
        Flavour::Undo,
        Flavour::RawMutex,
        Flavour::Mutex,
    ];

    /// The name on a peer's command line.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::RawNamed => "raw-named",
            Flavour::Named => "named",
            Flavour::RawUnnamed => "raw-unnamed",
            Flavour::Unnamed => "unnamed",
            Flavour::RawUndo => "raw-undo",
            Flavour::Undo => "undo",
            Flavour::RawMutex => "raw-mutex",
            Flavour::Mutex => "mutex",
        }
    }

    /// The label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Flavour::RawNamed => "sem: sem_open semaphores, raw (floor)",
            Flavour::Named => "sem: NamedSemaphore",
            Flavour::RawUnnamed => "sem: sem_init semaphores in shm, raw (floor)",
            Flavour::Unnamed => "sem: Semaphore in shm",
            Flavour::RawUndo => "sem: System V semop with SEM_UNDO, raw (floor)",
            Flavour::Undo => "sem: UndoSemaphore",
            Flavour::RawMutex => "sem: robust pthread mutex hand-off, raw (floor)",
            Flavour::Mutex => "sem: RobustMutex hand-off",
        }
    }

    /// The floor this flavour is compared with (itself for a floor).
    pub fn floor(self) -> Flavour {
        match self {
            Flavour::Named => Flavour::RawNamed,
            Flavour::Unnamed => Flavour::RawUnnamed,
            Flavour::Undo => Flavour::RawUndo,
            Flavour::Mutex => Flavour::RawMutex,
            floor => floor,
        }
    }

    /// The label of the uncontended row: the operations a pair consists of.
    pub fn op_label(self) -> &'static str {
        match self {
            Flavour::RawNamed => "sem: 100 × sem_post + sem_wait, uncontended (floor)",
            Flavour::Named => "sem: 100 × NamedSemaphore post + wait, uncontended",
            Flavour::RawUnnamed => "sem: 100 × sem_post + sem_wait in shm, uncontended (floor)",
            Flavour::Unnamed => "sem: 100 × Semaphore post + wait, uncontended",
            Flavour::RawUndo => "sem: 100 × semop +1, -1 with SEM_UNDO, uncontended (floor)",
            Flavour::Undo => "sem: 100 × UndoSemaphore post + wait, uncontended",
            Flavour::RawMutex => {
                "sem: 100 × robust pthread_mutex lock + unlock, uncontended (floor)"
            }
            Flavour::Mutex => "sem: 100 × RobustMutex lock + unlock, uncontended",
        }
    }

    /// Parses [`Flavour::name`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unknown name.
    pub fn parse(name: &str) -> Result<Flavour> {
        crate::transport::flavour_named(&Flavour::ALL, name, "sem", Flavour::name)
    }
}

/// Sends by calling a function (a post, or a hand-over of the turn).
struct Signal<F>(F);

impl<F: FnMut() -> Result<()>> MsgTx for Signal<F> {
    fn send(&mut self, _seq: u64) -> Result<()> {
        (self.0)()
    }
}

/// Receives by calling a function (a wait); a semaphore carries no data, so the stamp is
/// the count of waits, which both sides keep in step.
struct Await<F> {
    wait: F,
    count: u64,
}

impl<F: FnMut() -> Result<()>> MsgRx for Await<F> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<bool> {
        match (self.wait)() {
            Ok(()) => {}
            // The other side removed the semaphore: the end of the stream.
            Err(err) if err.is_peer_gone() => return Ok(false),
            Err(err) => return Err(err),
        }
        buf[..8].copy_from_slice(&self.count.to_le_bytes());
        self.count += 1;
        Ok(true)
    }
}

fn link(
    post: impl FnMut() -> Result<()> + 'static,
    wait: impl FnMut() -> Result<()> + 'static,
) -> Link {
    Link {
        tx: Box::new(Signal(post)),
        rx: Box::new(Await { wait, count: 0 }),
    }
}

/// Whose turn it is in the mutex hand-off.
const PEER_TURN: u64 = 1;
const PARENT_TURN: u64 = 2;

/// A side of the mutex hand-off: hands the turn over under the lock, and waits (locking,
/// checking, unlocking) until it comes back.
fn mutex_link(
    lock_turn: impl Fn(Option<u64>) -> Result<u64> + 'static,
    mine: u64,
    theirs: u64,
) -> Link {
    let lock_turn = Arc::new(lock_turn);
    let hand_over = Arc::clone(&lock_turn);
    link(
        move || hand_over(Some(theirs)).map(drop),
        move || {
            while lock_turn(None)? != mine {
                std::hint::spin_loop();
            }
            Ok(())
        },
    )
}

/// Locks `mutex`, reads the turn, sets it to `set` if given, unlocks.
fn turn_of(mutex: &RobustMutex<Arc<SharedMemory>, u64>, set: Option<u64>) -> Result<u64> {
    let guard = mutex.lock()?.clean()?;
    let turn = guard.get();
    if let Some(turn) = set {
        guard.set(turn);
    }
    Ok(turn)
}

/// Locks the raw mutex guarding the turn at offset 64 of `segment`, as [`turn_of`].
fn raw_turn_of(mutex: &RawPthreadMutex, segment: &SharedMemory, set: Option<u64>) -> Result<u64> {
    mutex.lock();
    let turn = segment.read::<u64>(64);
    if let (Ok(_), Some(turn)) = (&turn, set) {
        segment.write(64, &turn)?;
    }
    mutex.unlock();
    turn
}

/// The objects of a ping-pong, made by the parent: one carries the parent's signals to the
/// peer, the other the peer's back (one segment holds both for the in-memory flavours).
pub(crate) fn setup(flavour: Flavour) -> Result<Setup> {
    let to_peer = IpcName::unique("ipcrs-bench-sem-to")?;
    let from_peer = IpcName::unique("ipcrs-bench-sem-from")?;
    let args = vec![to_peer.as_str().to_owned(), from_peer.as_str().to_owned()];
    let (link, args): (Link, Vec<String>) = match flavour {
        Flavour::RawNamed => {
            let to = RawPosixSem::open(to_peer.as_cstr(), true)?;
            let from = RawPosixSem::open(from_peer.as_cstr(), true)?;
            let names = SemNames(vec![to_peer.clone(), from_peer.clone()]);
            (
                link(
                    move || {
                        to.post();
                        Ok(())
                    },
                    move || {
                        let _names = &names;
                        from.wait();
                        Ok(())
                    },
                ),
                args,
            )
        }
        Flavour::Named => {
            let to = SemaphoreOptions::new().create(&to_peer)?;
            let from = SemaphoreOptions::new().create(&from_peer)?;
            (link(move || to.post(), move || from.wait()), args)
        }
        Flavour::RawUnnamed | Flavour::Unnamed | Flavour::RawMutex | Flavour::Mutex => {
            let segment = Arc::new(ShmOptions::new().size(4096).create(&to_peer)?);
            (in_segment(flavour, segment, true)?, args)
        }
        Flavour::RawUndo => {
            let to = RawSysvSem::create()?;
            let from = RawSysvSem::create()?;
            let args = vec![to.id().to_string(), from.id().to_string()];
            (
                link(
                    move || {
                        to.post();
                        Ok(())
                    },
                    move || {
                        from.wait();
                        Ok(())
                    },
                ),
                args,
            )
        }
        Flavour::Undo => {
            let to = SemaphoreOptions::new().create_undo(&to_peer)?;
            let from = SemaphoreOptions::new().create_undo(&from_peer)?;
            (link(move || to.post(), move || from.wait()), args)
        }
    };
    Ok(Setup {
        stdin: std::process::Stdio::null(),
        stdout: std::process::Stdio::null(),
        args,
        finish: Box::new(move || Ok(link)),
    })
}

/// The link of an in-segment flavour: semaphores at offsets 0 (to the peer) and 64 (back),
/// or the mutex at 0 guarding the turn. `parent` says which side this is.
fn in_segment(flavour: Flavour, segment: Arc<SharedMemory>, parent: bool) -> Result<Link> {
    let (send_at, recv_at) = if parent { (0, 64) } else { (64, 0) };
    let (mine, theirs) = if parent {
        (PARENT_TURN, PEER_TURN)
    } else {
        (PEER_TURN, PARENT_TURN)
    };
    Ok(match flavour {
        Flavour::RawUnnamed => {
            let send = RawPosixSem::at(&segment, send_at, parent)?;
            let recv = RawPosixSem::at(&segment, recv_at, parent)?;
            let keep = Arc::clone(&segment);
            link(
                move || {
                    send.post();
                    Ok(())
                },
                move || {
                    let _mapped = &keep;
                    recv.wait();
                    Ok(())
                },
            )
        }
        Flavour::Unnamed => {
            let (send, recv): (Semaphore<_>, Semaphore<_>) = if parent {
                (
                    SemaphoreOptions::new().init_in(Arc::clone(&segment), send_at)?,
                    SemaphoreOptions::new().init_in(Arc::clone(&segment), recv_at)?,
                )
            } else {
                (
                    SemaphoreOptions::new().open_in(Arc::clone(&segment), send_at)?,
                    SemaphoreOptions::new().open_in(Arc::clone(&segment), recv_at)?,
                )
            };
            link(move || send.post(), move || recv.wait())
        }
        Flavour::RawMutex => {
            let mutex = RawPthreadMutex::at(&segment, 0, parent)?;
            if parent {
                segment.write(64, &0u64)?;
            }
            mutex_link(move |set| raw_turn_of(&mutex, &segment, set), mine, theirs)
        }
        _ => {
            let mutex: RobustMutex<_, u64> = if parent {
                MutexOptions::new().init_in(segment, 0, 0)?
            } else {
                MutexOptions::new().open_in(segment, 0)?
            };
            mutex_link(move |set| turn_of(&mutex, set), mine, theirs)
        }
    })
}

/// The peer's side: it opens what the parent made.
pub(crate) fn peer_link(flavour: Flavour, args: &[String]) -> Result<Link> {
    let to_peer = arg(args, 0)?;
    let from_peer = arg(args, 1)?;
    Ok(match flavour {
        Flavour::RawNamed => {
            let recv = RawPosixSem::open(IpcName::new(to_peer)?.as_cstr(), false)?;
            let send = RawPosixSem::open(IpcName::new(from_peer)?.as_cstr(), false)?;
            link(
                move || {
                    send.post();
                    Ok(())
                },
                move || {
                    recv.wait();
                    Ok(())
                },
            )
        }
        Flavour::Named => {
            let recv: NamedSemaphore = SemaphoreOptions::new().open(&IpcName::new(to_peer)?)?;
            let send = SemaphoreOptions::new().open(&IpcName::new(from_peer)?)?;
            link(move || send.post(), move || recv.wait())
        }
        Flavour::RawUnnamed | Flavour::Unnamed | Flavour::RawMutex | Flavour::Mutex => {
            let segment = Arc::new(ShmOptions::new().open(&IpcName::new(to_peer)?)?);
            in_segment(flavour, segment, false)?
        }
        Flavour::RawUndo => {
            let recv = RawSysvSem::open(to_peer.parse().map_err(|_| bad_id())?);
            let send = RawSysvSem::open(from_peer.parse().map_err(|_| bad_id())?);
            link(
                move || {
                    send.post();
                    Ok(())
                },
                move || {
                    recv.wait();
                    Ok(())
                },
            )
        }
        Flavour::Undo => {
            let recv: UndoSemaphore = SemaphoreOptions::new().open_undo(&IpcName::new(to_peer)?)?;
            let send = SemaphoreOptions::new().open_undo(&IpcName::new(from_peer)?)?;
            link(move || send.post(), move || recv.wait())
        }
    })
}

fn bad_id() -> Error {
    Error::new(
        "peer",
        std::io::ErrorKind::InvalidInput,
        "not a semaphore id",
    )
}

/// Uncontended operations in one process: a post and a wait on the same semaphore, or a
/// lock and an unlock.
pub struct Uncontended {
    raw_named: RawPosixSem,
    named: NamedSemaphore,
    raw_unnamed: RawPosixSem,
    unnamed: Semaphore<Arc<SharedMemory>>,
    raw_undo: RawSysvSem,
    undo: UndoSemaphore,
    raw_mutex: RawPthreadMutex,
    mutex: RobustMutex<Arc<SharedMemory>, u64>,
    _segment: Arc<SharedMemory>,
    _raw_name: SemNames,
}

impl std::fmt::Debug for Uncontended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uncontended")
    }
}

impl Uncontended {
    /// Makes one of each primitive.
    ///
    /// # Errors
    ///
    /// If one cannot be made.
    pub fn new() -> Result<Self> {
        let raw_name = IpcName::unique("ipcrs-bench-sem-raw")?;
        let segment = Arc::new(ipc_shm::MemfdOptions::new(4096).create()?);
        Ok(Uncontended {
            raw_named: RawPosixSem::open(raw_name.as_cstr(), true)?,
            named: SemaphoreOptions::new().create(&IpcName::unique("ipcrs-bench-sem")?)?,
            raw_unnamed: RawPosixSem::at(&segment, 0, true)?,
            unnamed: SemaphoreOptions::new().init_in(Arc::clone(&segment), 64)?,
            raw_undo: RawSysvSem::create()?,
            undo: SemaphoreOptions::new().create_undo(&IpcName::unique("ipcrs-bench-undo")?)?,
            raw_mutex: RawPthreadMutex::at(&segment, 128, true)?,
            mutex: MutexOptions::new().init_in(Arc::clone(&segment), 256, 0)?,
            _segment: segment,
            _raw_name: SemNames(vec![raw_name]),
        })
    }

    /// Runs `count` post+wait (or lock+unlock) pairs of `flavour` and returns the time they
    /// took.
    ///
    /// # Errors
    ///
    /// The primitive's error.
    pub fn time(&self, flavour: Flavour, count: u64) -> Result<Duration> {
        let start = Instant::now();
        for _ in 0..count {
            match flavour {
                Flavour::RawNamed => {
                    self.raw_named.post();
                    self.raw_named.wait();
                }
                Flavour::Named => {
                    self.named.post()?;
                    self.named.wait()?;
                }
                Flavour::RawUnnamed => {
                    self.raw_unnamed.post();
                    self.raw_unnamed.wait();
                }
                Flavour::Unnamed => {
                    self.unnamed.post()?;
                    self.unnamed.wait()?;
                }
                Flavour::RawUndo => {
                    self.raw_undo.post();
                    self.raw_undo.wait();
                }
                Flavour::Undo => {
                    self.undo.post()?;
                    self.undo.wait()?;
                }
                Flavour::RawMutex => {
                    self.raw_mutex.lock();
                    self.raw_mutex.unlock();
                }
                Flavour::Mutex => drop(self.mutex.lock()?),
            }
        }
        Ok(start.elapsed())
    }
}

crate::transport::benchmarked!(
    "sem",
    setup: |f, _, _| setup(f),
    peer: |f, _, args| peer_link(f, args),
);
