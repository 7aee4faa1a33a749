//! Fuzz target `config_load`: see `portcullis::fuzz_targets::config_load` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis::fuzz_targets::config_load(data));
