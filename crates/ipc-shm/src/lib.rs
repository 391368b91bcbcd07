//! Shared memory for Linux that a hostile peer cannot break: named segments (`shm_open`),
//! anonymous sealed segments (`memfd_create`), and segments received from other processes,
//! all mapped and accessed without undefined behaviour whatever the peer writes.
//!
//! Shared memory is the fastest way for two processes to exchange data (about a hundred
//! times faster than a kernel wake-up on a virtual machine) and the easiest to get wrong:
//! the memory changes under your feet, a peer can shrink it and crash you, and a segment
//! half-initialised by a crashed creator looks like garbage. This crate handles those.
//!
//! ```
//! use ipc_shm::IpcName;
//! use ipc_shm::{Layout, ShmOptions};
//!
//! const COUNTERS: Layout = Layout::new(0x434f_554e_5445_5253, 1); // "COUNTERS"
//! let name = IpcName::unique("doc-counters")?;
//!
//! // The creator sizes the segment, writes the header, initialises, then marks it ready.
//! let owner = ShmOptions::new().size(4096).layout(COUNTERS).create_with(&name, |segment| {
//!     segment.write::<u64>(segment.data_offset(), &1000)
//! })?;
//!
//! // Another process opens it: it waits for the creator, checks magic, version and size.
//! let peer = ShmOptions::new().layout(COUNTERS).open(&name)?;
//! let start = peer.read::<u64>(peer.data_offset())?;
//! let hits = peer.atomic_u64(peer.data_offset() + 8)?;
//! hits.fetch_add(start, std::sync::atomic::Ordering::Relaxed);
//! assert_eq!(owner.atomic_u64(owner.data_offset() + 8)?.load(std::sync::atomic::Ordering::Relaxed), 1000);
//! # Ok::<(), ipc_shm::Error>(())
//! ```
//!
//! # Channels
//!
//! A [`Producer`] and a [`Consumer`] exchange whole messages through a ring in a segment,
//! without a system call while both are busy. Either side creates the named channel (and
//! owns the name); the other opens it. Messages are copied in and out ([`Producer::send`],
//! [`Consumer::recv`]) or written and read in place ([`Producer::loan`],
//! [`Consumer::borrow`]):
//!
//! ```
//! use ipc_shm::IpcName;
//! use ipc_shm::{ChannelOptions, WaitStrategy};
//!
//! let name = IpcName::unique("doc-channel")?;
//! let options = ChannelOptions::new()
//!     .capacity(64 * 1024)
//!     .max_message_size(4096)
//!     .wait_strategy(WaitStrategy::Blocking);
//! let mut consumer = options.create_consumer(&name)?; // in the consuming process
//! let mut producer = options.open_producer(&name)?; // in the producing process
//!
//! producer.send(b"hello")?;
//! let mut loan = producer.loan(8)?; // written in place, published by `commit`
//! loan.write::<u64>(0, &42)?;
//! loan.commit()?;
//!
//! let mut buf = [0u8; 4096];
//! let n = consumer.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! let message = consumer.borrow()?; // read in place, released on drop
//! assert_eq!(message.read::<u64>(0)?, 42);
//! # Ok::<(), ipc_shm::Error>(())
//! ```
//!
//! [`WaitStrategy`] picks how a side waits for the other: busy polling (lowest latency, a
//! core each), spin-then-park (the default: spins 50 µs, then sleeps on a futex), or
//! blocking. A side that dies is reported to the other within 20 ms (through a pidfd, never
//! mistaking a reused pid for the peer), even half-way through attaching, and a new process
//! can take its place (of several that race for it, exactly one wins); nothing the peer
//! writes into the control block or the ring can make the other side read out of bounds,
//! overflow an arithmetic, loop or hang past a deadline.
//!
//! # What this crate takes care of
//!
//! - **No references into memory another process writes.** Access is by bounds-checked
//!   copies, values of [`ShmSafe`] types (every bit pattern valid), checked atomics, or raw
//!   pointers; byte slices only through `unsafe fn`s that state their contract.
//! - **No SIGBUS from a shrinking peer.** Memfds are sealed against shrink and grow before
//!   they are shared; a received descriptor is mapped only if it is a memfd sealed against
//!   shrinking, at exactly its verified size. Named segments cannot be sealed: share them
//!   only with peers you trust not to shrink them (they need write access to do so).
//! - **No SIGBUS from a full `/dev/shm`.** Space is reserved at creation
//!   (`posix_fallocate`), so a full file system is an `ENOSPC` error there; an opener
//!   checks that an existing segment's space is allocated (a foreign creator may only have
//!   sized it) and reserves it, or refuses it with a `StorageFull` error, before mapping.
//! - **No half-initialised segments.** With a [`Layout`] header, openers wait (with a
//!   deadline) until the creator has finished; a creator that died meanwhile gives them a
//!   timeout error, and a magic, version or size mismatch is an error at open.
//! - **Names are owned**: exclusive creation and owner-only permissions by default, the
//!   creator removes the name on drop, segments of other users are refused at open unless
//!   accepted, and [`stale_segments`] finds what crashed processes left.
//!
//! # Limits
//!
//! A segment's size is fixed at creation. `/dev/shm` is a tmpfs usually limited to half of
//! the memory; memfds count against the same memory. A channel has one producer and one
//! consumer at a time (a second live one is refused with `AddrInUse`); its capacity is a
//! power of two of at least 4096 bytes, and a message may be at most the configured
//! maximum, which with its 8-byte record header may take at most half the ring (so that
//! every message fits once the ring has drained, wherever the previous one ended). Both ends of a channel must run in the same pid
//! namespace: each end records its pid, and the other checks that process's liveness.

#![deny(unsafe_code)]

mod channel;
mod header;
mod segment;
mod stale;
#[allow(unsafe_code)]
mod sys;

pub use channel::{
    CHANNEL_LAYOUT, ChannelOptions, ChannelStatus, Consumer, EndpointState, Producer, RecvLoan,
    SendLoan, SideStatus, WaitStrategy,
};
pub use header::{HEADER_FORMAT, HEADER_LEN, Layout};
pub use segment::{MemfdOptions, ReceiveOptions, Seals, SharedMemory, ShmOptions};
pub use stale::{remove_stale_segments, stale_segments};

#[cfg(feature = "tokio")]
pub use ipc_core::Async;
pub use ipc_core::{
    Access, Cancel, CreationMode, Error, Interest, IpcName, Key, MessageReceiver, MessageSender,
    Permissions, Result, Selector, SharedRegion, ShmSafe, Source,
};
