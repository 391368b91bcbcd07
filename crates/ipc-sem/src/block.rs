//! The header in front of each object this crate places in a shared region, and the
//! protocol that keeps other processes from using an object before it is initialised.
//!
//! ```text
//!  0  magic u32     what the block holds (written before the state says ready)
//!  4  state u32     0 empty, 1 ready, 1<<31 | pid while that process initialises it
//!  8  param u32     the object's parameter (a semaphore's bound, 0 for none)
//! 32  the object    (a semaphore's count, a mutex's lock word)
//! ```

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::{Deadline, Error, Result, SharedRegion};

use crate::sys::Block;

/// Where the object starts, after the header.
pub(crate) const OBJECT: usize = 32;
const MAGIC: usize = 0;
const STATE: usize = 4;
/// The object's parameter word.
pub(crate) const PARAM: usize = 8;

const READY: u32 = 1;
const CLAIMED: u32 = 1 << 31;

/// Claims an empty block (or one whose initialiser died) for initialisation by this
/// process.
///
/// # Errors
///
/// `AlreadyExists` if the block holds an object or a live process is initialising it;
/// corrupted for a state no process writes.
pub(crate) fn claim<R: SharedRegion>(block: &Block<R>, op: &'static str) -> Result<()> {
    let state = block.word(STATE);
    let me = CLAIMED | (std::process::id() & !CLAIMED);
    loop {
        let seen = state.load(Ordering::Acquire);
        let free = match seen {
            0 => true,
            READY => {
                return Err(Error::new(
                    op,
                    io::ErrorKind::AlreadyExists,
                    "the block already holds an initialised object",
                ));
            }
            claim if claim & CLAIMED != 0 => {
                let pid = claim & !CLAIMED;
                if ipc_core::process_is_alive(pid) {
                    return Err(Error::new(
                        op,
                        io::ErrorKind::AlreadyExists,
                        format!("process {pid} is initialising the block"),
                    ));
                }
                true
            }
            other => return Err(Error::corrupted(op, format!("a block state of {other:#x}"))),
        };
        if free
            && state
                .compare_exchange(seen, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(());
        }
    }
}

/// Marks a claimed block as holding an initialised object of kind `magic`.
pub(crate) fn publish<R: SharedRegion>(block: &Block<R>, magic: u32) {
    block.word(MAGIC).store(magic, Ordering::Relaxed);
    block.word(STATE).store(READY, Ordering::Release);
}

/// Waits until the block holds an initialised object of kind `magic`, at most `timeout`.
///
/// # Errors
///
/// `TimedOut` if nothing was initialised in time; `BrokenPipe`-like peer-gone if the
/// process initialising it died; corrupted for another kind of object or an impossible
/// state.
pub(crate) fn wait_ready<R: SharedRegion>(
    block: &Block<R>,
    magic: u32,
    what: &str,
    timeout: Duration,
    op: &'static str,
) -> Result<()> {
    let deadline = Deadline::after(timeout);
    loop {
        match block.word(STATE).load(Ordering::Acquire) {
            READY => {
                let found = block.word(MAGIC).load(Ordering::Relaxed);
                if found != magic {
                    return Err(Error::corrupted(
                        op,
                        format!("the block does not hold a {what} (magic {found:#010x})"),
                    ));
                }
                return Ok(());
            }
            claim if claim & CLAIMED != 0 && !ipc_core::process_is_alive(claim & !CLAIMED) => {
                return Err(Error::peer_gone(
                    op,
                    format!(
                        "process {} died while initialising the {what}",
                        claim & !CLAIMED
                    ),
                ));
            }
            state if state == 0 || state & CLAIMED != 0 => {
                if deadline.has_expired() {
                    return Err(Error::new(
                        op,
                        io::ErrorKind::TimedOut,
                        format!("no {what} was initialised in the block in time"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return Err(Error::corrupted(op, format!("a block state of {other:#x}"))),
        }
    }
}
