//! Packaging: the systemd unit verifies and carries the hardening, the Dockerfile builds a
//! non-root multi-stage image whose config rewrites match the example config.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNIT: &str = include_str!("../contrib/systemd/portcullis.service");
const DOCKERFILE: &str = include_str!("../Dockerfile");
const EXAMPLE: &str = include_str!("../config/portcullis.toml");

/// `key -> values` of one INI section (repeated keys keep every value).
fn section(text: &str, name: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not INI: {line}"));
        if current == name {
            out.entry(k.trim().to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

#[test]
fn the_unit_has_the_service_keys_and_the_hardening() {
    let service = section(UNIT, "Service");
    let one = |k: &str| -> &str {
        service
            .get(k)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("[Service] {k} missing"))
    };
    assert_eq!(one("Type"), "exec");
    assert_eq!(one("User"), "portcullis");
    assert!(one("ExecStart").contains(" serve --config /etc/portcullis/portcullis.toml"));
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("StateDirectory"), "portcullis");
    assert_eq!(one("CapabilityBoundingSet"), "");
    assert_eq!(one("ProtectSystem"), "strict");
    for yes in [
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
    ] {
        assert_eq!(one(yes), "yes", "{yes}");
    }
    assert!(one("RestrictAddressFamilies").contains("AF_INET6"));
    assert!(service["SystemCallFilter"].contains(&"@system-service".to_string()));
    assert!(one("LimitNOFILE").parse::<u64>().unwrap() >= 65536);
    assert_eq!(
        section(UNIT, "Install")["WantedBy"],
        vec!["multi-user.target"]
    );
}

/// `systemd-analyze verify` on the unit, with ExecStart pointing at the binary cargo built
/// (verify refuses a unit whose command does not exist).
#[test]
fn systemd_analyze_verifies_the_unit() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("systemd-analyze not available: skipping the verify step (the INI test ran)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("portcullis-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("portcullis.service");
    let bin = env!("CARGO_BIN_EXE_portcullis");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/portcullis", bin)).unwrap();
    let out = run_bounded(Command::new("systemd-analyze").arg("verify").arg(&unit));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.0, "systemd-analyze verify failed:\n{}", out.1);
    assert!(
        !out.1.contains("portcullis.service:"),
        "warnings:\n{}",
        out.1
    );
}

/// Runs `cmd` for at most 30 s: (success, stdout + stderr).
fn run_bounded(cmd: &mut Command) -> (bool, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_runs_the_example_config() {
    let froms: Vec<&str> = DOCKERFILE
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[1].contains("slim") || froms[1].contains("distroless"));
    assert!(DOCKERFILE.contains("cargo build --release --locked"));
    assert!(
        DOCKERFILE.contains("\nUSER portcullis\n"),
        "runs as non-root"
    );
    assert!(DOCKERFILE.contains("ENTRYPOINT [\"portcullis\"]"));
    assert!(DOCKERFILE.contains("HEALTHCHECK"));
    // Every line the build rewrites for the container exists in the example config as written,
    // so the image's copy really listens on 0.0.0.0 and keeps its store in the volume.
    for rewrite in DOCKERFILE.split("-e 's").skip(1) {
        let sep = rewrite.chars().next().unwrap();
        let from = rewrite[1..].split(sep).next().unwrap();
        let line = from.trim_start_matches('^');
        assert!(
            EXAMPLE.lines().any(|l| l.starts_with(line)),
            "the Dockerfile rewrites `{line}`, which config/portcullis.toml no longer has"
        );
    }
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .unwrap();
    assert!(ignore.lines().any(|l| l == "target/"));
}
