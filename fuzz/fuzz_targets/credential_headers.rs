//! Fuzz target `credential_headers`: see `portcullis::fuzz_targets::credential_headers` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::credential_headers(data));
