//! Unix-domain stream, datagram and seqpacket sockets with fd passing and peer credentials; TCP and UDP.
//!
//! **Not built yet.** This crate is a placeholder in the ipc-rs workspace and has no public
//! API; see its README for the plan. It re-exports nothing, so depending on it gives nothing.

#![deny(unsafe_code)]
