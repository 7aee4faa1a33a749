//! Fuzz target `path_normalization`: see `portcullis::fuzz_targets::path_normalization` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::path_normalization(data));
