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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// Fuzzing-lite for CI: generated paths keep the path_normalization invariants.
    #[test]
    fn generated_paths_keep_the_invariants(p in "/[a/.;%2eEfF5cC0dDaA\\\\]{0,24}") {
        portcullis::fuzz_targets::path_normalization(p.as_bytes());
    }

    /// Generated request heads keep the request_head invariants.
    #[test]
    fn generated_heads_keep_the_invariants(
        target in "(/|http://[a-z@:0-9]{1,8}/)[a-z%/.]{0,8}",
        host in "[a-z0-9@:/,\\[\\] .]{0,12}",
        name in "[a-zA-Z_-]{1,10}",
        via in "(1\\.1 |2 )?(portcullis|PortCullis|x)(, 1\\.1 portcullis)?",
        version in "HTTP/1\\.1|HTTP/1\\.0|HTTP/2",
    ) {
        let head = format!("GET {target} {version}\r\nHost: {host}\r\n{name}: v\r\nVia: {via}\r\n");
        portcullis::fuzz_targets::request_head(head.as_bytes());
    }

    /// Generated X-Forwarded-For lines keep the forwarded_for invariant.
    #[test]
    fn generated_forwarded_for_keeps_the_invariant(xff in "([0-9.:\\[\\]a-f]{0,16}(, )?){0,4}(\n[0-9.,: ]{0,12})?") {
        portcullis::fuzz_targets::forwarded_for(xff.as_bytes());
    }
}
