//! Fuzz target `token_request`: see `portcullis::fuzz_targets::token_request` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::token_request(data));
