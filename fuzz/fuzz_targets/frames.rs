//! Fuzz target: see `ipc_integration::fuzz::frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_integration::fuzz::frames(data));
