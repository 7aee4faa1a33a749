//! Admin-API harness: a gateway config with a token service, a bearer route, an API-key route,
//! one config-defined client and app, and two operator tokens (write `ops`, read `auditor`);
//! plus small callers for the admin API, the token endpoint and the routes, and `Env`: one such
//! gateway on a manual clock with its admin listener.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use portcullis::clock::ManualClock;
use serde_json::{Value, json};

use crate::common::*;

pub const OPS: &str = "ops-token-0123456789abcdefghijklmnopqrstuvwxyz";
pub const AUDITOR: &str = "auditor-token-0123456789abcdefghijklmnopqrstuv";
pub const CONFIG_CLIENT: &str = "config-client";
pub const CONFIG_SECRET: &str = "config-client-secret-0123456789abcdefghijklmn";
pub const CONFIG_APP: &str = "config-app";
pub const CONFIG_KEY: &str = "pk_config-app-key-0123456789abcdefghijklmnopq";

pub fn sha(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The config; `state` is extra TOML (e.g. a `[state]` section), `tokens` whether to configure
/// the operator tokens.
pub fn config(dir: &Path, state: &str, tokens: bool) -> String {
    let pem = dir.join("signing.pem");
    if !pem.exists() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&pem, key.serialize_pem()).unwrap();
    }
    let tokens = if tokens {
        format!(
            r#"
[[admin.tokens]]
name = "ops"
token_hash = "sha256:{}"
scope = "write"

[[admin.tokens]]
name = "auditor"
token_hash = "sha256:{}"
scope = "read"
"#,
            sha(OPS),
            sha(AUDITOR)
        )
    } else {
        String::new()
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[admin]
listen = "127.0.0.1:0"
{tokens}
{state}

[classes.user]
errors = "partner"
[classes.oauth]
errors = "oauth"

[upstreams.app]
url = "http://{{UPSTREAM}}"
[upstreams.tokens]
kind = "oauth"

[[routes]]
path = "/v1/meetings/"
class = "user"
auth = "bearer"
scopes = ["meetings:read"]
upstream = "app"

[[routes]]
path = "/v1/reports/"
class = "user"
auth = "api_key"
upstream = "app"

[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "tokens"

[oauth]
issuer = "https://gateway.test"
audience = "partner-api"
store = "{dir}/state.db"

[[oauth.signing_keys]]
kid = "k1"
alg = "ES256"
private_key_file = "{pem}"
active = true

[[oauth.clients]]
client_id = "{CONFIG_CLIENT}"
secret_hash = "sha256:{h1}"
grant_types = ["client_credentials"]
scopes = ["meetings:read"]

[[apps]]
client_id = "{CONFIG_APP}"
key_hash = "sha256:{h2}"
scopes = ["reports:read"]
"#,
        dir = dir.display(),
        pem = pem.display(),
        h1 = sha(CONFIG_SECRET),
        h2 = sha(CONFIG_KEY),
    )
}

/// One admin-API call: `(status, headers, JSON body or Null)`.
pub async fn call(
    c: &reqwest::Client,
    admin: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = c.request(method, format!("{admin}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json)
}

/// `POST /oauth2/token` with `client_credentials` and HTTP Basic: `(status, body)`.
pub async fn cc_token(c: &reqwest::Client, public: &str, id: &str, secret: &str) -> (u16, Value) {
    let resp = c
        .post(format!("{public}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `POST /oauth2/token` with `refresh_token` and HTTP Basic: the status.
pub async fn refresh(
    c: &reqwest::Client,
    public: &str,
    id: &str,
    secret: &str,
    token: &str,
) -> u16 {
    let body = format!("grant_type=refresh_token&refresh_token={token}");
    let resp = c
        .post(format!("{public}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

/// A bearer call to the meetings route: the status.
pub async fn meetings(c: &reqwest::Client, public: &str, token: &str) -> u16 {
    let resp = c
        .get(format!("{public}/v1/meetings/list"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

/// An API-key call to the reports route: `(status, body)`.
pub async fn reports(c: &reqwest::Client, public: &str, id: &str, key: &str) -> (u16, Value) {
    let resp = c
        .get(format!("{public}/v1/reports/q"))
        .header("X-Client-ID", id)
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub struct Env {
    pub gw: TestGateway,
    pub admin: String,
    pub up: Upstream,
    pub c: reqwest::Client,
    pub clock: Arc<ManualClock>,
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub async fn env_with(tokens: bool) -> Env {
    let up = Upstream::start().await;
    let dir = temp_dir("admin-api");
    let clock = ManualClock::new(unix_now());
    let gw = gateway_with_clock(&config(&dir, "", tokens), Some(up.addr), clock.clone()).await;
    let admin = admin_listener(&gw.gw).await;
    Env {
        gw,
        admin,
        up,
        c: client(),
        clock,
    }
}

pub async fn env() -> Env {
    env_with(true).await
}

impl Env {
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (s, _, v) = call(
            &self.c,
            &self.admin,
            method,
            path,
            Some(OPS),
            body.as_deref(),
        )
        .await;
        (s, v)
    }

    pub fn public(&self) -> String {
        format!("http://{}", self.gw.addr)
    }

    pub async fn new_client(&self) -> (String, String) {
        let body = json!({"name": "Acme reporting", "scopes": ["meetings:read"]});
        let (s, v) = self.api("POST", "/admin/v1/clients", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        let id = v["client_id"].as_str().unwrap().to_string();
        (id, v["client_secret"].as_str().unwrap().to_string())
    }

    pub async fn token(&self, id: &str, secret: &str) -> String {
        let (s, v) = cc_token(&self.c, &self.public(), id, secret).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }
}
