//! `portcullis --version`: the crate version and the git commit the binary was built from.

use std::process::Command;
use std::time::Duration;

/// Runs the built binary with `args`, bounded in time.
fn run(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "--version hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The checkout's commit, when `git` exists and this is a checkout.
fn checkout_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let text = run(&["--version"]);
    let expected_prefix = format!("portcullis {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected_prefix), "{text}");
    let commit = text
        .trim()
        .strip_prefix(&expected_prefix)
        .and_then(|t| t.strip_suffix(')'))
        .expect("the commit in parentheses");
    match (std::env::var("PORTCULLIS_COMMIT"), checkout_commit()) {
        (Ok(forced), _) if !forced.is_empty() => assert_eq!(commit, forced.trim()),
        (_, Some(head)) => assert_eq!(commit, head, "built from the checked-out commit"),
        _ => assert_eq!(commit, "unknown"),
    }
}
