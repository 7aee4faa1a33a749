//! `[state]` and `on_backend_error` in the config: `portcullis check` reports every problem with
//! file:line:column and a fix (credentials in the URL, a secret in the clear, unknown values,
//! bad durations and prefixes), validates a good Redis config without connecting and notes the
//! `open` relaxation; `serve` with `startup = "refuse"` exits when Redis is unreachable.

#[path = "common/temp.rs"]
mod temp;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = temp::temp_dir("state-config");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn check(path: &PathBuf) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn base(state: &str, mode: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

{state}

[classes.user]
limit = "10/1m"
errors = "partner"
on_backend_error = "{mode}"

[upstreams.echo]
kind = "echo"

[[routes]]
path = "/"
class = "user"
upstream = "echo"
"#
    )
}

#[test]
fn every_state_problem_is_reported_with_its_position_and_fix() {
    let state = r#"[state]
backend = "redis"
url = "redis://admin:hunter2@127.0.0.1:6379/0"
password = "hunter2"
key_prefix = "a{b"
timeout = "0ms"
startup = "maybe""#;
    let p = write("bad.toml", &base(state, "sometimes"));
    let (code, _, err) = check(&p);
    assert_eq!(code, 1, "{err}");
    let f = p.display().to_string();
    for want in [
        format!("{f}:6:7: state.url: the URL carries credentials"),
        "set username = \"...\" and password = \"env:NAME\"".to_string(),
        format!("{f}:7:12: state.password: secrets are never written in the config file"),
        format!("{f}:8:14: state.key_prefix: \"a{{b\" is not a usable key prefix"),
        format!("{f}:9:11: state.timeout: must be above zero"),
        format!("{f}:10:11: state.startup: unknown start-up policy \"maybe\""),
        format!("{f}:15:20: classes.user.on_backend_error: unknown failure mode \"sometimes\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(
        !err.contains("hunter2\""),
        "the secret is not echoed back: {err}"
    );
    assert!(err.ends_with("6 problem(s) found\n"), "{err}");

    let p = write(
        "bad2.toml",
        &base(
            "[state]\nbackend = \"memcached\"\nurl = \"http://x\"",
            "local",
        ),
    );
    let (code, _, err) = check(&p);
    assert_eq!(code, 1);
    assert!(
        err.contains("state.backend: unknown state backend \"memcached\""),
        "{err}"
    );
    assert!(
        err.contains("use \"embedded\" (one instance) or \"redis\""),
        "{err}"
    );
    let p = write(
        "bad3.toml",
        &base("[state]\nbackend = \"redis\"\nurl = \"http://x\"", "local"),
    );
    let (_, _, err) = check(&p);
    assert!(err.contains("is not a redis:// or rediss:// URL"), "{err}");
}

#[test]
fn a_good_redis_config_checks_without_connecting_and_notes_open() {
    let state = format!(
        "[state]\nbackend = \"redis\"\nurl = \"rediss://127.0.0.1:{}/0\"\nusername = \"gw\"\npassword = \"env:PORTCULLIS_TEST_REDIS_PW\"",
        unused_port()
    );
    let p = write("good.toml", &base(&state, "open"));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg(&p)
        .env("PORTCULLIS_TEST_REDIS_PW", "s3cret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        stdout.contains("note: classes.user.on_backend_error = \"open\""),
        "{stdout}"
    );
    // The same file with the variable unset names it.
    let (code, _, err) = check(&p);
    assert_eq!(code, 1);
    assert!(
        err.contains("environment variable PORTCULLIS_TEST_REDIS_PW is not set"),
        "{err}"
    );
}

#[test]
fn serve_with_startup_refuse_exits_when_redis_is_unreachable() {
    let state = format!(
        "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\nconnect_timeout = \"300ms\"\nstartup = \"refuse\"",
        unused_port()
    );
    let p = write("refuse.toml", &base(&state, "local"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("did not answer within 300ms") && err.contains("refuse"),
        "{err}"
    );
}

#[test]
fn ca_file_needs_rediss_and_a_pem_of_ca_certificates() {
    let plain = base(
        "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\nca_file = \"ca.pem\"",
        "local",
    );
    let (code, _, err) = check(&write("ca-plain.toml", &plain));
    assert_eq!(code, 1);
    assert!(
        err.contains("state.ca_file: ca_file is only used with a rediss:// (TLS) URL"),
        "{err}"
    );
    assert!(
        err.contains("ca-plain.toml:7:11:"),
        "the line and column of ca_file: {err}"
    );
    let missing = base(
        "[state]\nbackend = \"redis\"\nurl = \"rediss://127.0.0.1:6379/0\"\nca_file = \"nope.pem\"",
        "local",
    );
    let (code, _, err) = check(&write("ca-missing.toml", &missing));
    assert_eq!(code, 1);
    assert!(
        err.contains("state.ca_file") && err.contains("nope.pem"),
        "{err}"
    );
    assert!(
        err.contains("fix: point ca_file at a PEM file of CA certificates"),
        "{err}"
    );
}
