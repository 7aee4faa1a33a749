//! Log output of the real binary: written to a file (not a terminal), text and JSON logs carry
//! the access fields and no ANSI colour codes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Kills the gateway process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `portcullis serve` with `args`, stdout and stderr to `log`; returns it and its address.
async fn serve(dir: &std::path::Path, upstream: &Upstream, args: &[&str]) -> (Running, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = BASIC
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("{UPSTREAM}", &upstream.addr.to_string());
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join("out.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    (Running(child), format!("http://127.0.0.1:{port}"))
}

/// Sends one request with `id` (retrying while the gateway starts, at most 20 s) and waits up
/// to 5 s for a log line naming it.
async fn request_and_line(base: &str, dir: &std::path::Path, id: &str) -> (String, String) {
    let started = Instant::now();
    loop {
        let sent = client()
            .get(format!("{base}/v1/partner/user/logged"))
            .header("x-request-id", id)
            .send()
            .await;
        if let Ok(r) = sent {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(dir.join("out.log")).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(id)) {
            return (line.to_string(), text);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no line: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn text_logs_to_a_file_have_no_colour_codes() {
    let up = Upstream::start().await;
    let dir = temp_dir("log-text");
    let (_gw, base) = serve(&dir, &up, &[]).await;
    let (line, all) = request_and_line(&base, &dir, "text-line").await;
    assert!(!all.contains('\x1b'), "ANSI escapes in a file: {all:?}");
    for field in [
        "request_id=text-line",
        "route=/v1/partner/user",
        "status=200",
        "auth=\"none\"",
        "bytes_out=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn json_logs_are_plain_json_with_the_access_fields() {
    let up = Upstream::start().await;
    let dir = temp_dir("log-json");
    let (_gw, base) = serve(&dir, &up, &["--log-format", "json"]).await;
    let (line, all) = request_and_line(&base, &dir, "json-line").await;
    assert!(!all.contains('\x1b'), "ANSI escapes in JSON: {all:?}");
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["target"], "access");
    assert_eq!(e["route"], "/v1/partner/user");
    assert_eq!(e["status"], 200);
    assert_eq!(e["auth"], "none");
    assert_eq!(e["code"], "");
    assert!(e["bytes_out"].as_u64().unwrap() > 0, "{e}");
    assert!(e["upstream_latency_us"].is_u64(), "{e}");
}
