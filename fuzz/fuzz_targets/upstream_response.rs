//! Fuzz target `upstream_response`: see `portcullis::fuzz_targets::upstream_response` for the
//! invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::upstream_response(data));
