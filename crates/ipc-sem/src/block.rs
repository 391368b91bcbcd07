//! The header in front of each object this crate places in a shared region, and the
//! protocol that keeps other processes from using an object before it is initialised.
//!
//! ```text
//!  0  magic u32     what the block holds (written before the state says ready)
//!  4  state u32     0 not initialised, 1 ready
//!  8  param u32     the object's parameter (a semaphore's bound, 0 for none)
//! 16  claim u64     0, or the thread initialising it (ipc_core::internal::ThreadIdentity: its id and
//!                   start time, so that a later thread with the same id is not taken for it)
//! 32  the object    (a semaphore's count, a mutex's lock word)
//! ```

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::internal::{Backoff, ThreadIdentity};
use ipc_core::{Deadline, Error, Result, SharedRegion};

use crate::sys::Block;

/// Where the object starts, after the header.
pub(crate) const OBJECT: usize = 32;
const MAGIC: usize = 0;
const STATE: usize = 4;
/// The object's parameter word.
pub(crate) const PARAM: usize = 8;
const CLAIM: usize = 16;

const READY: u32 = 1;

/// Claims an empty block (or one whose initialiser died) for initialisation by this
/// thread.
///
/// # Errors
///
/// `AlreadyExists` if the block holds an object or a live thread is initialising it;
/// corrupted for a state no process writes.
pub(crate) fn claim<R: SharedRegion>(block: &Block<R>, op: &'static str) -> Result<()> {
    let me = ThreadIdentity::current().to_bits();
    let claim = block.word64(CLAIM);
    loop {
        match block.word(STATE).load(Ordering::Acquire) {
            0 => {}
            READY => {
                return Err(Error::new(
                    op,
                    io::ErrorKind::AlreadyExists,
                    "the block already holds an initialised object",
                ));
            }
            other => return Err(Error::corrupted(op, format!("a block state of {other:#x}"))),
        }
        let seen = claim.load(Ordering::Acquire);
        if seen != 0 {
            let claimant = ThreadIdentity::from_bits(seen);
            if claimant.is_alive() {
                return Err(Error::new(
                    op,
                    io::ErrorKind::AlreadyExists,
                    format!("thread {} is initialising the block", claimant.tid()),
                ));
            }
        }
        // Of several processes that find the block free (or its claimant dead), one wins.
        if claim
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
    let mut backoff = Backoff::new(Duration::from_millis(5));
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
            0 => {
                let claim = block.word64(CLAIM).load(Ordering::Acquire);
                let claimant = ThreadIdentity::from_bits(claim);
                if claim != 0 && !claimant.is_alive() {
                    return Err(Error::peer_gone(
                        op,
                        format!(
                            "the thread (id {}) initialising the {what} died",
                            claimant.tid()
                        ),
                    ));
                }
                if !backoff.pause(deadline, op)? {
                    return Err(Error::new(
                        op,
                        io::ErrorKind::TimedOut,
                        format!("no {what} was initialised in the block in time"),
                    ));
                }
            }
            other => return Err(Error::corrupted(op, format!("a block state of {other:#x}"))),
        }
    }
}
