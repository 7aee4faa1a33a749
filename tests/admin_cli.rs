//! The operator workflow with the real binary: `portcullis serve` on fixed loopback ports,
//! `portcullis clients create` (secret printed once, with a warning), a token with the secret,
//! `clients list`, a restart that keeps the run-time client, `clients rotate` / `suspend` /
//! `delete` taking effect on the next request, `apps` errors printed with the field and the fix,
//! a start refused when the config defines an id the store holds, and `portcullis check` saying
//! whether the credential API is on.

mod admin_api_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use admin_api_support::*;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    path: PathBuf,
    public: String,
    admin: String,
    token_file: PathBuf,
}

fn setup(dir: &Path, up: &Upstream) -> Setup {
    let (p, a) = (free_port(), free_port());
    let text = config(dir, "", true)
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{p}\""),
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{a}\""),
            1,
        )
        .replace("{UPSTREAM}", &up.addr.to_string());
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    let token_file = dir.join("ops.token");
    std::fs::write(&token_file, format!("{OPS}\n")).unwrap();
    Setup {
        path,
        public: format!("http://127.0.0.1:{p}"),
        admin: format!("http://127.0.0.1:{a}"),
        token_file,
    }
}

/// Starts `portcullis serve` and waits (at most 10 s) until its admin listener answers.
async fn serve(s: &Setup) -> Serving {
    let child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&s.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serving = Serving(child);
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(r) = c.get(format!("{}/readyz", s.admin)).send().await
            && r.status() == 200
        {
            return serving;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("portcullis serve did not come up within 10 s");
}

/// Runs the CLI against `s` (token from its file) and returns its output.
fn cli(s: &Setup, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("PORTCULLIS_ADMIN_URL", &s.admin)
        .env(
            "PORTCULLIS_ADMIN_TOKEN",
            format!("file:{}", s.token_file.display()),
        )
        .output()
        .unwrap()
}

fn field(out: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        .to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_operator_workflow_with_the_cli_survives_a_restart() {
    portcullis::install_crypto();
    let up = Upstream::start().await;
    let dir = temp_dir("admin-cli");
    let s = setup(&dir, &up);
    let c = client();
    let gw = serve(&s).await;

    let out = cli(
        &s,
        &[
            "clients",
            "create",
            "--name",
            "Acme reporting",
            "--scopes",
            "meetings:read",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = field(&out, "client_id");
    let secret = field(&out, "client_secret");
    assert!(stderr(&out).contains("shown once and will not be shown again"));
    let (status, t) = cc_token(&c, &s.public, &id, &secret).await;
    assert_eq!(status, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(meetings(&c, &s.public, &token).await, 200);
    let list = cli(&s, &["clients", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(listed.contains(&format!("{id}\tactive\tstore")), "{listed}");
    assert!(
        listed.contains(&format!("{CONFIG_CLIENT}\tactive\tconfig")),
        "{listed}"
    );
    assert!(!listed.contains(&secret));

    // Restart: the client, its secret and its token still work.
    drop(gw);
    let gw = serve(&s).await;
    assert_eq!(meetings(&c, &s.public, &token).await, 200);
    assert_eq!(cc_token(&c, &s.public, &id, &secret).await.0, 200);

    let out = cli(&s, &["clients", "rotate", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_secret = field(&out, "client_secret");
    assert!(stderr(&out).contains("will not be shown again"));
    assert_eq!(cc_token(&c, &s.public, &id, &secret).await.0, 401);
    assert_eq!(cc_token(&c, &s.public, &id, &new_secret).await.0, 200);

    assert!(cli(&s, &["clients", "suspend", &id]).status.success());
    assert_eq!(meetings(&c, &s.public, &token).await, 401);
    assert!(cli(&s, &["clients", "activate", &id]).status.success());
    assert_eq!(meetings(&c, &s.public, &token).await, 200);
    assert!(cli(&s, &["clients", "delete", &id]).status.success());
    assert_eq!(meetings(&c, &s.public, &token).await, 401);
    let listed = String::from_utf8_lossy(&cli(&s, &["clients", "list"]).stdout).into_owned();
    assert!(!listed.contains(&id), "{listed}");

    // Errors carry the field and the fix; config entries are refused with the reason.
    let out = cli(&s, &["apps", "create", "--name", ""]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("field: name") && stderr(&out).contains("fix:"),
        "{}",
        stderr(&out)
    );
    let out = cli(&s, &["apps", "delete", CONFIG_APP]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config file"), "{}", stderr(&out));
    let out = cli(
        &s,
        &["apps", "create", "--name", "kept", "--id", "kept-app"],
    );
    let key = field(&out, "api_key");
    assert_eq!(reports(&c, &s.public, "kept-app", &key).await.0, 200);
    drop(gw);

    // The config now defines an id the store holds: the gateway refuses to start.
    let mut text = std::fs::read_to_string(&s.path).unwrap();
    text.push_str(&format!(
        "\n[[apps]]\nclient_id = \"kept-app\"\nkey_hash = \"sha256:{}\"\n",
        sha("other-key-0123456789abcdefghijklmnopqrstuvwxyz")
    ));
    std::fs::write(&s.path, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&s.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "serve kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("kept-app") && err.contains("admin API"),
        "{err}"
    );
    assert!(
        err.contains("portcullis.toml:"),
        "names the file and line: {err}"
    );
}

#[tokio::test]
async fn check_says_whether_the_credential_api_is_on() {
    portcullis::install_crypto();
    let dir = temp_dir("admin-check");
    for (tokens, want) in [
        (
            true,
            "admin credential API: on at /admin/v1/ on the admin listener (read tokens: [auditor]; write tokens: [ops])",
        ),
        (
            false,
            "admin credential API: off (no [[admin.tokens]] configured",
        ),
    ] {
        let path = dir.join(format!("c{tokens}.toml"));
        std::fs::write(
            &path,
            config(&dir, "", tokens).replace("{UPSTREAM}", "127.0.0.1:9"),
        )
        .unwrap();
        let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout.contains(want), "{stdout}");
        let console = if tokens {
            "admin web console: at /console/ on the admin listener"
        } else {
            "admin web console: served at /console/, but it needs the credential API"
        };
        assert!(stdout.contains(console), "{stdout}");
    }
    let bad = config(&dir, "", true).replace("scope = \"read\"", "scope = \"admin\"");
    let path = dir.join("bad.toml");
    std::fs::write(&path, bad.replace("{UPSTREAM}", "127.0.0.1:9")).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("admin.tokens[1].scope") && err.contains("\"read\""),
        "{err}"
    );
}

#[tokio::test]
async fn check_compares_the_config_with_the_store_file_when_no_gateway_holds_it() {
    use portcullis::store::{
        AuditRecord, CredentialKind, CredentialRecord, CredentialStatus, EmbeddedStore, Store,
        WriteMode,
    };
    portcullis::install_crypto();
    let dir = temp_dir("admin-check-store");
    let text = config(&dir, "", true).replace("{UPSTREAM}", "127.0.0.1:9");
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, &text).unwrap();
    {
        let store = EmbeddedStore::open(&dir.join("state.db")).unwrap();
        let record = CredentialRecord {
            kind: CredentialKind::App,
            id: "stored-app".into(),
            name: "x".into(),
            status: CredentialStatus::Active,
            scopes: Vec::new(),
            grant_types: Vec::new(),
            redirect_uris: Vec::new(),
            secret_hash: Some(format!("sha256:{}", sha("k"))),
            previous: None,
            created_at: 1,
            updated_at: 1,
        };
        let audit = AuditRecord {
            seq: 0,
            at: 1,
            actor: "t".into(),
            action: "create".into(),
            kind: CredentialKind::App,
            id: "stored-app".into(),
            changed: Vec::new(),
        };
        store
            .write_credential(record, WriteMode::Create, audit)
            .await
            .unwrap();
    }
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.contains("run-time credentials: 1 compared with"),
        "{stdout}"
    );

    let clash = format!(
        "{text}\n[[apps]]\nclient_id = \"stored-app\"\nkey_hash = \"sha256:{}\"\n",
        sha("other-key-0123456789abcdefghijklmnopqrstuvwxyz")
    );
    std::fs::write(&path, clash).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("apps[1].client_id") && err.contains("stored-app"),
        "{err}"
    );
    assert!(err.contains("admin API"), "{err}");

    // While a gateway holds the file, check still runs and says it could not compare.
    let _held = EmbeddedStore::open(&dir.join("state.db")).unwrap();
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.contains("run-time credentials: not compared"),
        "{stdout}"
    );
}
