//! Config check: `portcullis check` and `serve` report every problem with file:line:column, key
//! path and fix; golden files hold the exact expected output.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn three_mistakes_are_all_named_with_their_lines() {
    let (code, _, err) = run(&["check", "three_mistakes.toml"]);
    assert_eq!(code, 1);
    assert_eq!(err, golden("three_mistakes.txt"));
    assert!(err.contains("three_mistakes.toml:5:23: limits.header_read_timeout"));
    assert!(err.contains("three_mistakes.toml:15:9: routes[0].class: unknown class \"users\""));
    assert!(
        err.contains("three_mistakes.toml:21:12: routes[1].upstream: unknown upstream \"admin\"")
    );
    assert!(err.ends_with("3 problem(s) found\n"));
}

#[test]
fn every_unknown_key_is_reported_together_with_semantic_problems() {
    let (code, _, err) = run(&["check", "unknown_keys.toml"]);
    assert_eq!(code, 1);
    assert_eq!(err, golden("unknown_keys.txt"));
}

#[test]
fn bad_values_and_duplicate_routes_are_reported() {
    let (code, _, err) = run(&["check", "duplicates.toml"]);
    assert_eq!(code, 1);
    assert_eq!(err, golden("duplicates.txt"));
}

#[test]
fn serve_refuses_a_bad_file_with_the_same_diagnostics() {
    let (code, _, err) = run(&["serve", "--config", "three_mistakes.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains(&golden("three_mistakes.txt")), "{err}");
}

#[test]
fn the_example_config_checks_clean() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portcullis.toml");
    let (code, out, err) = run(&["check", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(": OK\n"));
}

#[test]
fn toml_syntax_errors_are_located() {
    let dir = std::env::temp_dir().join(format!("portcullis-syntax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\n").unwrap();
    let (code, _, err) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:2:"), "{err}");
}
