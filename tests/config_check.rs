//! Config check: `portcullis check` and `serve` report every problem with file:line:column, key
//! path and fix; golden files hold the exact expected output.

#[path = "common/temp.rs"]
mod temp;

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
    // Its DEMO credentials are published in the README, and check says so for each.
    for (key, what) in [
        ("admin.tokens[0].token_hash", "the demo operator token"),
        ("apps[0].key_hash", "the demo API key of app demo-admin"),
        (
            "oauth.clients[0].secret_hash",
            "the demo OAuth client secret",
        ),
    ] {
        assert!(
            out.contains(&format!("warning: {key} is {what}")),
            "{key}: {out}"
        );
    }
}

/// Every relaxed edge rule is named by `check`, which still passes.
#[test]
fn check_reports_relaxed_edge_rules() {
    let dir = temp::temp_dir("relaxed");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("relaxed.toml");
    let base = "[server]\nlisten = \"127.0.0.1:0\"\n[classes.user]\nerrors = \"partner\"\n\
                [upstreams.echo]\nkind = \"echo\"\n\
                [[routes]]\npath = \"/files/\"\nclass = \"user\"\nupstream = \"echo\"\n";
    std::fs::write(&f, base).unwrap();
    let (code, out, _) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!out.contains("note:"), "safe defaults need no note: {out}");
    let relaxed = format!(
        "{base}allow_encoded_slashes = true\n[http]\nheaders_with_underscores = \"drop\"\n\
         [forwarding]\nstrip_from_untrusted = [\"forwarded\"]\n"
    );
    std::fs::write(&f, relaxed).unwrap();
    let (code, out, err) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("note: routes[0] (path \"/files\"): allow_encoded_slashes"),
        "{out}"
    );
    assert!(
        out.contains("note: http.headers_with_underscores = \"drop\""),
        "{out}"
    );
    assert!(
        out.contains("note: forwarding.strip_from_untrusted: x-real-ip"),
        "{out}"
    );
    assert!(out.ends_with(": OK\n"), "{out}");
    // Bad values are located.
    std::fs::write(
        &f,
        format!("{base}[http]\nheaders_with_underscores = \"keep\"\n[forwarding]\nvia = \"a b\"\n"),
    )
    .unwrap();
    let (code, _, err) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("relaxed.toml:12:28: http.headers_with_underscores"),
        "{err}"
    );
    assert!(err.contains("relaxed.toml:14:7: forwarding.via"), "{err}");
    std::fs::write(&f, format!("{base}methods = [\"GET\", \"TRACE\"]\n")).unwrap();
    let (code, _, err) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("routes[0].methods[1]: TRACE is refused"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn toml_syntax_errors_are_located() {
    let dir = temp::temp_dir("syntax");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\n").unwrap();
    let (code, _, err) = run(&["check", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:2:"), "{err}");
}

/// `check` validates `[oauth]` without opening its store, so it works beside a running gateway
/// (which holds the store file's lock) — the check-then-SIGHUP workflow.
#[test]
fn check_works_while_a_gateway_holds_the_oauth_store() {
    let dir = temp::temp_dir("check-lock");
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.join("signing.pem"), key.serialize_pem()).unwrap();
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"

[classes.oauth]
errors = "oauth"

[upstreams.tokens]
kind = "oauth"

[oauth]
issuer = "https://auth.example"
audience = "partner-api"
store = "state/portcullis.db"

[[oauth.signing_keys]]
kid = "k1"
private_key_file = "signing.pem"
active = true

[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "tokens"
"#,
    )
    .unwrap();
    // Hold the store the way `serve` does.
    let _held = portcullis::store::EmbeddedStore::open(&dir.join("state/portcullis.db")).unwrap();
    assert!(
        portcullis::store::EmbeddedStore::open(&dir.join("state/portcullis.db")).is_err(),
        "the store file is locked while open"
    );
    let (code, out, err) = run(&["check", config.to_str().unwrap()]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.ends_with(": OK\n"), "stdout: {out}");

    // A real mistake in [oauth] is still reported.
    let broken = std::fs::read_to_string(&config).unwrap().replace(
        "private_key_file = \"signing.pem\"",
        "private_key_file = \"missing.pem\"",
    );
    std::fs::write(&config, broken).unwrap();
    let (code, _, err) = run(&["check", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("oauth.signing_keys[0]"), "stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
