//! Fuzz target `forwarded_for`: see `portcullis::fuzz_targets::forwarded_for` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::forwarded_for(data));
