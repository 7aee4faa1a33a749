//! `portcullis sign-webhook`: the real binary, the secret on stdin, the body from a file. Its
//! headers verify at a real gateway route (and only for that body), and its Standard Webhooks
//! output matches the reference algorithm written in the test.

mod common;
mod webhook_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use webhook_support::*;

const SECRET: &str = "contio-cli-secret-0123456789";

fn sign(args: &[&str], secret: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("sign-webhook")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn headers(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("Name: value lines");
            (n.to_string(), v.to_string())
        })
        .collect()
}

fn body_file(dir: &Path, body: &[u8]) -> String {
    let p = dir.join("event.json");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "partner"

[classes.partner]
errors = "partner"

[upstreams.app]
url = "http://{UPSTREAM}"

[webhooks.inbound.contio]
scheme = "custom"
signature_header = "X-Contio-Signature"
timestamp_header = "X-Contio-Timestamp"
secrets = ["file:SECRET_FILE"]

[[routes]]
path = "/hooks/"
class = "partner"
auth = "webhook"
webhook = "contio"
upstream = "app"
"#;

#[tokio::test]
async fn signed_headers_from_the_cli_verify_at_the_route() {
    let up = Upstream::start().await;
    let text = CONFIG.replace("SECRET_FILE", &secret_file(SECRET).display().to_string());
    let gw = gateway(&text, Some(up.addr)).await;
    let config = gw.dir.join("portcullis.toml").display().to_string();
    let body = b"{\"event\": \"action_item.created\" }\n";
    let file = body_file(&gw.dir, body);
    let (code, out, err) = sign(
        &["--config", &config, "--webhook", "contio", "--body", &file],
        SECRET,
    );
    assert_eq!(code, 0, "{err}");
    let h = headers(&out);
    assert_eq!(h.len(), 2, "{out}");
    let send = |b: &'static [u8]| {
        let mut req = client().post(gw.url("/hooks/e")).body(b);
        for (n, v) in &h {
            req = req.header(n.as_str(), v.as_str());
        }
        req.send()
    };
    assert_eq!(send(body).await.unwrap().status(), 200);
    assert_eq!(up.last().body, body);
    // The same headers do not sign another body.
    assert_eq!(send(b"{}").await.unwrap().status(), 401);
    assert_eq!(up.count(), 1);
}

#[test]
fn the_standard_preset_matches_the_reference_algorithm() {
    let dir = temp_dir("cli");
    let body = b"{\"type\":\"invoice.paid\"}";
    let file = body_file(&dir, body);
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let args = [
        "--body",
        &file,
        "--id",
        "msg_42",
        "--timestamp",
        "1700000000",
    ];
    let (code, out, err) = sign(&args, whsec);
    assert_eq!(code, 0, "{err}");
    let expected = standard_signature(whsec, "msg_42", "1700000000", body);
    assert_eq!(
        out,
        format!(
            "webhook-id: msg_42\nwebhook-timestamp: 1700000000\nwebhook-signature: {expected}\n"
        )
    );
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let dir = temp_dir("cli-bad");
    let file = body_file(&dir, b"{}");
    let (code, _, err) = sign(&["--body", &file], "not-a-whsec-secret");
    assert_ne!(code, 0);
    assert!(err.contains("whsec_"), "{err}");
    let (code, _, err) = sign(
        &["--body", "/nonexistent/body.json"],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}
