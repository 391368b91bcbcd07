//! Scenarios across the ipc-rs crates and processes: the workload they share, and the
//! message mechanisms they run it over.
//!
//! Every message of the workload says who sent it, its number in that sender's stream, a
//! payload whose length varies with the number, and a checksum over all of it, so that a
//! receiver can prove what "nothing lost" means (`ARCHITECTURE.md`): complete and intact,
//! exactly once, in order per producer.
//!
//! ```
//! use ipc_integration::{Tally, encode};
//!
//! let mut buf = Vec::new();
//! let mut tally = Tally::default();
//! for seq in 0..3 {
//!     encode(7, seq, 64, &mut buf);
//!     tally.record(&buf).unwrap();
//! }
//! assert_eq!(tally.received(), 3);
//! assert!(tally.record(&buf).is_err()); // a duplicate
//! ```

#![deny(unsafe_code)]

pub mod fuzz;
pub mod mechanism;
pub mod report;

use std::collections::BTreeMap;

pub use mechanism::{Listening, Mechanism};
pub use report::{CrashReport, injections};

/// The smallest message: producer (4 bytes), number (8), checksum (4).
pub const MIN_MESSAGE: usize = 16;

/// FNV-1a: enough to catch a torn or mixed-up message.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Writes message `seq` of `producer` into `buf`: at most `max` bytes (at least
/// [`MIN_MESSAGE`]), its length varying with `seq`.
pub fn encode(producer: u32, seq: u64, max: usize, buf: &mut Vec<u8>) {
    let max = max.max(MIN_MESSAGE);
    buf.clear();
    buf.extend_from_slice(&producer.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    let room = u64::try_from(max - MIN_MESSAGE + 1).unwrap_or(1);
    let len = usize::try_from(seq.wrapping_mul(2_654_435_761) % room).unwrap_or(0);
    let pattern = seq.to_le_bytes();
    buf.extend((0..len).map(|i| pattern[i % 8] ^ i.to_le_bytes()[0]));
    let sum = checksum(buf);
    buf.extend_from_slice(&sum.to_le_bytes());
}

/// Checks a message and returns its producer and number.
///
/// # Errors
///
/// A description of what is wrong: too short, or a checksum that does not match (torn,
/// mixed or scribbled).
pub fn decode(msg: &[u8]) -> Result<(u32, u64), String> {
    if msg.len() < MIN_MESSAGE {
        return Err(format!("a message of {} bytes is torn", msg.len()));
    }
    let (body, sum) = msg.split_at(msg.len() - 4);
    let sum = u32::from_le_bytes(sum.try_into().unwrap_or([0; 4]));
    if checksum(body) != sum {
        return Err(format!(
            "a message of {} bytes fails its checksum",
            msg.len()
        ));
    }
    let producer = u32::from_le_bytes(body[..4].try_into().unwrap_or([0; 4]));
    let seq = u64::from_le_bytes(body[4..12].try_into().unwrap_or([0; 8]));
    Ok((producer, seq))
}

/// What a receiver has seen, per producer: proves exactly-once, in-order delivery.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    next: BTreeMap<u32, u64>,
    received: u64,
}

impl Tally {
    /// Records a received message.
    ///
    /// # Errors
    ///
    /// A torn or damaged message, a duplicate, or a gap (a message lost before this one).
    pub fn record(&mut self, msg: &[u8]) -> Result<(u32, u64), String> {
        let (producer, seq) = decode(msg)?;
        let next = self.next.entry(producer).or_insert(0);
        if seq < *next {
            return Err(format!(
                "producer {producer}: message {seq} again (a duplicate)"
            ));
        }
        if seq > *next {
            return Err(format!(
                "producer {producer}: message {seq} where {next} was due (lost)"
            ));
        }
        *next += 1;
        self.received += 1;
        Ok((producer, seq))
    }

    /// Records a message allowing a restart of its producer: a producer that died and was
    /// restarted begins again at `resume`, and messages it re-sends are counted once.
    ///
    /// # Errors
    ///
    /// A torn or damaged message, or a gap.
    pub fn record_resumable(&mut self, msg: &[u8]) -> Result<bool, String> {
        let (producer, seq) = decode(msg)?;
        let next = self.next.entry(producer).or_insert(0);
        if seq < *next {
            return Ok(false);
        }
        if seq > *next {
            return Err(format!(
                "producer {producer}: message {seq} where {next} was due (lost)"
            ));
        }
        *next += 1;
        self.received += 1;
        Ok(true)
    }

    /// Messages recorded.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next number expected from `producer`.
    pub fn next_of(&self, producer: u32) -> u64 {
        self.next.get(&producer).copied().unwrap_or(0)
    }
}
