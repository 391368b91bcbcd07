//! Fuzz target: see `ipc_integration::fuzz::channel`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_integration::fuzz::channel(data));
