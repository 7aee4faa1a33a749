//! Fuzz corpus replay: every checked-in file under `fuzz/corpus/<target>/` runs through the same
//! entry point the cargo-fuzz target calls (`portcullis::fuzz_targets`), so `cargo test`
//! exercises each target's corpus and invariants without cargo-fuzz or a nightly toolchain.

use std::path::Path;

use portcullis::fuzz_targets::TARGETS;

#[test]
fn every_corpus_file_passes_its_target() {
    portcullis::install_crypto();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has no corpus");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} broke an invariant",
                f.display()
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            fuzz.join(format!("fuzz_targets/{name}.rs")).is_file(),
            "{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} not in fuzz/Cargo.toml"
        );
    }
    let dirs = std::fs::read_dir(fuzz.join("corpus")).unwrap().count();
    assert_eq!(dirs, TARGETS.len(), "a corpus directory without a target");
}
