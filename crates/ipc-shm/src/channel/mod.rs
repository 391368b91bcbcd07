//! Single-producer single-consumer channels on a shared-memory segment.
//!
//! # Layout
//!
//! After the segment header ([`HEADER_LEN`](crate::HEADER_LEN) bytes) come the channel's
//! configuration, each side's position on cache lines of its own (written on every
//! message), each side's identity, and each side's wait words (written only when it
//! parks, so that checking them costs no cache miss while traffic flows); from byte 4096
//! the ring of `capacity` bytes (a power of two).
//!
//! ```text
//!   64  capacity u64, max_message u64              (written once by the creator)
//!  128  head u64                                   (the producer's position)
//!  256  tail u64                                   (the consumer's position)
//!  384  producer state u64, start time u64, parks u32, pad u32, hand-off deadline u64
//!  448  consumer state u64, start time u64, parks u32, pad u32, hand-off deadline u64
//!  512  producer futex u32, sleeping u32, wake FIFO id u64   (written only when it parks)
//!  640  consumer futex u32, sleeping u32, wake FIFO id u64
//! 4096  ring: records of [len u32, kind u32, payload rounded up to 8 bytes]
//! ```
//!
//! The ring holds variable-length records; a record never wraps: when one does not fit
//! before the end of the ring, a padding record fills the rest and the message starts at
//! the beginning. Messages are therefore contiguous, which is what lets the zero-copy API
//! hand out one region. Positions (`head`, `tail`) are 64-bit byte counters that never wrap
//! in practice and are compared with wrapping arithmetic, so even a wrap is handled.
//!
//! # Waking
//!
//! Each side has a futex word and a "sleeping" flag. A waiter reads the futex word, sets
//! its flag, re-checks the ring (sequentially consistent fences on both sides make sure
//! that either the waiter sees the new data or the other side sees the flag), and sleeps on
//! the futex. The other side bumps the futex word and calls `FUTEX_WAKE` only when the
//! flag is set, so while both sides are busy no system call is made. An endpoint that busy
//! polls never parks and says so ("parks" is 0): its peer then skips the fence and the
//! check altogether.
//!
//! The sleeping word has two bits: parked on the futex, and armed for a poller. A side
//! waiting in a poller (a [`Selector`](ipc_core::Selector)) arms a FIFO of its own
//! instead of the futex: the other side writes a byte to it (see `wake.rs` for the design
//! and the figures it was chosen on).
//!
//! # Sides and liveness
//!
//! A side's state word says whether it is detached, being claimed, attached or closed, by
//! which process (its pid and the low 24 bits of its start time), and carries a generation
//! that every change increments. Each change is a compare-exchange from the exact word
//! seen, so of several processes that race to take over a dead endpoint exactly one wins,
//! and a claim that was taken over can never complete (no ABA). Attaching is a claim
//! (record the identity and the wait strategy) and then the switch to attached.
//!
//! The other side watches the process named in the word, whether it is claiming or
//! attached: it opens a pidfd for that pid, after checking the start time (so a reused pid
//! is never taken for the peer), and the pidfd becomes readable when the peer dies,
//! whatever the way. One pidfd per peer process is shared by every channel end of this
//! process that watches it, so an end holds one descriptor of its own, its segment (test
//! `a_thousand_channels_fit_under_the_default_descriptor_limit_and_share_one_pidfd_per_peer`,
//! and `ten_thousand_channels_fit_under_a_limit_raised_just_past_them`);
//! an end that a poller watches adds one, its wake FIFO (its timer is kept by the process's
//! relay thread, on one timerfd for all; test
//! `a_polled_end_adds_one_descriptor_its_wake_fifo`), besides the duplicate the poller
//! keeps of whatever it watches. Waits check it at least
//! every 20 ms, so a dead peer (or a claimant that died half-way through attaching) is
//! reported within that bound, and a clean close is seen at once (a state word plus a
//! wake-up). A call that does not wait (an empty
//! `try_recv`, a full `try_loan`) looks at the pidfd at most once a millisecond of the
//! coarse clock, so a death is reported by such calls within a few milliseconds and a
//! program polling many channels does not pay a `poll` per look (`idle` bench: an empty
//! `try_recv` 61 ns, 722 ns when it polled every time); a side a poller watches looks every
//! time it is woken.
//!
//! An end handed to another process (`hand_off`) goes back to detached, still naming the
//! process that handed it off, with a deadline (`CLOCK_MONOTONIC` nanoseconds) by which
//! the receiver must attach: until then the other side waits as for a peer that is
//! coming, after it reports the peer gone. A detached word with pid 0 is a side that
//! never had an endpoint.

mod consumer;
mod layout;
mod options;
mod producer;
mod ring;
mod side;
mod status;
mod wake;

pub use consumer::{Consumer, RecvLoan};
pub use layout::CHANNEL_LAYOUT;
pub use options::ChannelOptions;
pub use producer::{Producer, SendLoan};
pub use ring::WaitStrategy;
pub use status::{ChannelStatus, EndpointState, SideStatus};
