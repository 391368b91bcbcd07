//! Example programs for the ipc-rs crates, one real program per mechanism: a
//! producer-consumer, a client-server, a pipeline, a graceful shutdown.
//!
//! Each example is a binary of this package (`cargo run -p ipc-examples --bin <name>`) and
//! arrives with the crate it demonstrates; the workspace README lists the ones that exist.
//! This library part holds nothing yet: helpers shared by several examples will live here.
