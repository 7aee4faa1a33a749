//! Fuzz target `request_head`: see `portcullis::fuzz_targets::request_head` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::request_head(data));
