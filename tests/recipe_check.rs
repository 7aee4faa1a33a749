//! `portcullis check` on every shipped example (each must pass, and each relaxation it makes is
//! reported as a note), and on broken contract configs (every problem with file:line:column).

#[path = "common/temp.rs"]
mod temp;

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, file: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", file])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_passes_check_and_lists_its_relaxations() {
    let dir = root().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "one example per guide: {names:?}");
    for name in &names {
        let (code, out, err) = check(&dir, name);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.ends_with(&format!("{name}: OK\n")), "{out}");
        let notes = out.lines().filter(|l| l.starts_with("note: ")).count();
        let expected = match name.as_str() {
            "contio.toml" => vec!["oauth client partner-app does not require PKCE"],
            "seamless.toml" => vec![
                "route /api/client/v1 identifies API-key apps by the Token header alone",
                "oauth client seamless-app does not require PKCE",
                "oauth path /api/client/v1/oauth/accessToken adds expires_at",
                "oauth path /oauth/authorize assumes response_type=code",
            ],
            "contract_lucidity.toml" => vec![
                "oauth client power-automate may refresh with the refresh token alone",
                "oauth path /api/v1/auth/token assumes grant_type when it is absent",
            ],
            "contracts_ai.toml" => vec![
                "oauth client my-integration does not require PKCE",
                "oauth path /oauth2/token assumes grant_type when it is absent",
            ],
            "ironclad.toml" => vec![],
            other => panic!("no expectation for {other}"),
        };
        for e in &expected {
            assert!(
                out.contains(&format!("note: {e}")),
                "{name}: missing {e:?} in\n{out}"
            );
        }
        assert_eq!(notes, expected.len(), "{name}:\n{out}");
    }
}

#[test]
fn the_default_config_makes_no_relaxation() {
    let (code, out, err) = check(&root().join("config"), "portcullis.toml");
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("note:"), "{out}");
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/golden").join(name)).unwrap()
}

#[test]
fn broken_oauth_contract_is_reported_in_full() {
    let (code, _, err) = check(&root().join("tests/golden"), "oauth_contract_bad.toml");
    assert_eq!(code, 1);
    assert_eq!(err, golden("oauth_contract_bad.txt"));
    assert!(err.contains("oauth_contract_bad.toml:32:16: oauth.clients[0].grant_types: a public client may not use client_credentials"));
    assert!(err.ends_with("6 problem(s) found\n"));
}

#[test]
fn broken_key_headers_and_envelopes_are_reported_in_full() {
    let (code, _, err) = check(&root().join("tests/golden"), "key_headers_bad.toml");
    assert_eq!(code, 1);
    assert_eq!(err, golden("key_headers_bad.txt"));
    assert!(err.ends_with("7 problem(s) found\n"));
}

#[test]
fn a_moved_endpoint_without_a_route_is_warned_about() {
    let (code, out, err) = check(&root().join("tests/golden"), "oauth_unrouted.toml");
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "warning: POST /api/v1/auth/token of the token service is not routed to a kind = \"oauth\" upstream"
        ],
        "{out}"
    );
}

#[test]
fn a_new_public_client_block_passes_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "new-client",
            "--public",
            "--name",
            "SPA",
            "--grant-types",
            "authorization_code,refresh_token",
            "--scopes",
            "read",
            "--redirect-uris",
            "https://spa.example/cb",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(public client: no secret)"));
    assert!(!text.contains("secret_hash"));
    let block = &text[text.find("[[oauth.clients]]").unwrap()..];
    let base = std::fs::read_to_string(root().join("tests/golden/oauth_unrouted.toml")).unwrap();
    let dir = temp::temp_dir("newclient");
    std::fs::create_dir_all(&dir).unwrap();
    let key = root().join("config/demo/oauth-es256.pem");
    let config = base
        .replace("\"../../config/demo/oauth-es256.pem\"", &format!("{key:?}"))
        .replace(
            "store = \"store.db\"",
            "store = \"store.db\"\nlogin_url = \"https://login.test/\"",
        )
        + "\n"
        + block;
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let (code, out, err) = check(&dir, "c.toml");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is public (token_endpoint_auth_method = \"none\")"),
        "{out}"
    );
}
