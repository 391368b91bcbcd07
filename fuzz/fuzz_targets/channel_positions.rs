//! Fuzz target: see `ipc_integration::fuzz::channel_positions`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_integration::fuzz::channel_positions(data));
