//! Fuzz target `jwt_token`: see `portcullis::fuzz_targets::jwt_token` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::jwt_token(data));
