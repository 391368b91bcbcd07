//! The ipc-rs benchmarks: the machine's floors, the cases every mechanism is compared on,
//! and the report behind `cargo xtask bench`.
//!
//! Every case runs between two processes pinned to different CPUs, with the raw floor
//! measured in the same run, and is reported as one-way latency (median, p99, p99.9) and
//! as a ratio to its floor. The criterion benches in `benches/` use the same cases.
//!
//! ```no_run
//! use ipc_bench::floor::ShmPingPong;
//!
//! let mut pingpong = ShmPingPong::start(None)?;
//! let mut samples = Vec::new();
//! ipc_bench::floor::sample_one_way(1000, &mut samples, || pingpong.round_trip())?;
//! let summary = ipc_bench::stats::Summary::of(&mut samples).unwrap();
//! println!("one-way median {:?}", summary.median);
//! # Ok::<(), ipc_core::Error>(())
//! ```

#![deny(unsafe_code)]

pub mod affinity;
pub mod case;
pub mod channels;
pub mod chart;
pub mod floor;
pub mod peer;
#[cfg(feature = "peers")]
pub mod peers;
pub mod pipes;
pub mod queues;
pub mod report;
pub mod runner;
pub mod sems;
pub mod shm;
pub mod signals;
pub mod sockets;
pub mod stats;
#[allow(unsafe_code)]
mod sys;
pub mod transport;
