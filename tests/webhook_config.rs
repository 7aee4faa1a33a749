//! `portcullis check` on webhook configs: every mistake is reported at its file:line with a fix,
//! all in one run, and a plain-HTTP outbound destination is noted.

mod common;

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    check_with_env(text, None)
}

fn check_with_env(text: &str, env: Option<(&str, &str)>) -> (i32, String, String) {
    let dir = common::temp_dir("whcheck");
    std::fs::write(dir.join("short.secret"), "short\n").unwrap();
    std::fs::write(dir.join("ok.secret"), "a-long-enough-secret-0123456789\n").unwrap();
    std::fs::write(dir.join("wh.toml"), text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(["check", "wh.toml"]).current_dir(&dir);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEAD: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "p"

[classes.p]
errors = "partner"

[upstreams.app]
url = "http://127.0.0.1:9001"
"#;

/// The 1-based line of the first line of `text` containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines().position(|l| l.contains(marker)).expect(marker) + 1
}

fn assert_reported(text: &str, err: &str, expected: &[(&str, &str)]) {
    for (marker, needle) in expected {
        let at = format!("wh.toml:{}:", line_of(text, marker));
        let found = err.lines().any(|l| l.contains(needle) && l.contains(&at));
        assert!(found, "missing {at} {needle:?} in\n{err}");
    }
    assert!(err.contains("fix: "), "{err}");
}

#[test]
fn route_and_upstream_mistakes_are_reported_with_their_lines() {
    let text = format!(
        r#"{HEAD}
[upstreams.out]
kind = "webhook_out"
url = "http://127.0.0.1:9002"

[webhooks.inbound.std]
secrets = ["file:ok.secret"]

[[routes]]
path = "/a"
class = "p"
auth = "webhook"
upstream = "app"

[[routes]]
path = "/b"
class = "p"
auth = "none"
webhook = "std"
upstream = "app"

[[routes]]
path = "/c"
class = "p"
auth = "webhook"
webhook = "nope"
upstream = "app"
"#
    );
    let (code, _, err) = check(&text);
    assert_eq!(code, 1, "{err}");
    assert_reported(
        &text,
        &err,
        &[
            (
                "9002",
                "upstreams.out.url: a webhook_out upstream takes no url",
            ),
            (
                "path = \"/a\"",
                "routes[0].webhook: a route with auth = \"webhook\" names no scheme",
            ),
            (
                "webhook = \"std\"",
                "routes[1].webhook: webhook applies only to routes with auth = \"webhook\"",
            ),
            (
                "webhook = \"nope\"",
                "routes[2].webhook: unknown webhooks.inbound \"nope\"",
            ),
        ],
    );
}

#[test]
fn scheme_and_secret_mistakes_are_all_reported() {
    let text = format!(
        r#"{HEAD}
[webhooks.inbound.bad]
scheme = "custom"
timestamp_header = "X-Ts"
signed_payload = "{{timestamp}}{{body}}"
secrets = ["plain-text-secret", "file:short.secret"]
tolerance = "2h"

[webhooks.inbound.std]
signature_header = "X-Sig"
secrets = ["file:ok.secret"]
"#
    );
    let (code, _, err) = check(&text);
    assert_eq!(code, 1, "{err}");
    // A secret written in the file by mistake is not echoed back.
    assert!(!err.contains("plain-text-secret"), "{err}");
    assert!(
        err.contains(
            "webhooks.inbound.bad.signature_header: a custom scheme needs signature_header"
        ),
        "{err}"
    );
    assert_reported(
        &text,
        &err,
        &[
            (
                "signed_payload",
                "webhooks.inbound.bad.signed_payload: two placeholders need a literal separator",
            ),
            (
                "plain-text",
                "webhooks.inbound.bad.secrets[0]: secrets are never written in the config file",
            ),
            (
                "plain-text",
                "webhooks.inbound.bad.secrets[1]: unusable webhook secret: the key is 5 bytes",
            ),
            (
                "2h",
                "webhooks.inbound.bad.tolerance: \"2h\" is out of range",
            ),
            (
                "X-Sig",
                "webhooks.inbound.std.signature_header: signature_header is fixed by the Standard Webhooks scheme",
            ),
        ],
    );
}

#[test]
fn a_plain_http_destination_is_noted() {
    let text = format!(
        r#"{HEAD}
[upstreams.out]
kind = "webhook_out"
webhook = "partners"

[webhooks.outbound.partners]
scheme = "custom"
signature_header = "X-Sig"
timestamp_header = "X-Ts"
secret = "file:ok.secret"
destinations = {{ a = "http://127.0.0.1:9100/hooks", b = "https://partner.example/hooks" }}

[[routes]]
path = "/out"
class = "p"
upstream = "out"
"#
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    let notes: Vec<&str> = out.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(
        notes,
        [
            "note: webhooks.outbound.partners.destinations.a: http://127.0.0.1:9100/hooks is plain HTTP (signed, not encrypted)"
        ],
        "{out}"
    );
}

#[test]
fn secrets_come_from_the_environment_too() {
    let text = format!(
        r#"{HEAD}
[webhooks.inbound.std]
secrets = ["env:PORTCULLIS_TEST_WHSEC"]
"#
    );
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (code, out, err) = check_with_env(&text, Some(("PORTCULLIS_TEST_WHSEC", whsec)));
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("wh.toml: OK\n"), "{out}");
    let (code, _, err) = check_with_env(&text, None);
    assert_eq!(code, 1);
    assert!(
        err.contains("environment variable PORTCULLIS_TEST_WHSEC is not set"),
        "{err}"
    );
    let (code, _, err) = check_with_env(&text, Some(("PORTCULLIS_TEST_WHSEC", "no-prefix")));
    assert_eq!(code, 1);
    assert!(err.contains("starts with whsec_"), "{err}");
    assert!(
        !err.contains("no-prefix"),
        "the secret is never printed: {err}"
    );
}
