//! A gateway scene for the observability tests: a real upstream, a first gateway whose token
//! service serves the JWKS of a second, and the second gateway with routes of every kind
//! (forwarded, slow, unreachable, TLS to a plain-HTTP port, closed without an answer,
//! rate-limited, bearer, API key, its
//! own token service) behind an admin listener; `drive` sends the traffic that makes every
//! series of `/metrics` appear.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;

pub const CLIENT: &str = "obs-client";
pub const SECRET: &str = "obs-secret-with-enough-entropy-0123456789";
pub const APP: &str = "obs-app";
pub const API_KEY: &str = "obs-api-key-0123456789abcdefghijklmnopqrstuvwxyz";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[oauth]` with one signing key and one client-credentials client (files under `dir`).
fn oauth_section(dir: &std::path::Path, issuer: &str) -> String {
    let pem = dir.join("signing.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&pem, key.serialize_pem()).unwrap();
    format!(
        r#"
[oauth]
issuer = "{issuer}"
audience = "obs-api"
store = "{dir}/store.db"

[[oauth.signing_keys]]
kid = "k1"
alg = "ES256"
private_key_file = "{pem}"
active = true

[[oauth.clients]]
client_id = "{CLIENT}"
secret_hash = "sha256:{hash}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["obs:read"]
"#,
        dir = dir.display(),
        pem = pem.display(),
        hash = sha256_hex(SECRET),
    )
}

/// The issuing gateway: a token service whose JWKS the main gateway fetches.
fn issuer_config(dir: &std::path::Path) -> String {
    let mut c = String::from(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "oauth"
[classes.oauth]
errors = "oauth"
[upstreams.tokens]
kind = "oauth"
[[routes]]
name = "issuer-wk"
path = "/.well-known/"
class = "oauth"
upstream = "tokens"
"#,
    );
    c.push_str(&oauth_section(dir, "https://issuer-one.test"));
    c
}

/// The main gateway (`{UPSTREAM}` = the recording upstream, `{JWKS}` = the issuer's address).
const MAIN: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[limits]
upstream_response_timeout = "300ms"
upstream_connect_timeout = "300ms"

[classes.user]
errors = "partner"
[classes.tight]
limit = "1/1m"
errors = "partner"
[classes.oauth]
errors = "oauth"

[upstreams.app]
url = "http://{UPSTREAM}"
[upstreams.down]
url = "http://127.0.0.1:9"
[upstreams.plain]
url = "https://{UPSTREAM}"
[upstreams.tokens]
kind = "oauth"
[upstreams.closer]
url = "http://{CLOSER}"

[[routes]]
name = "obs-api"
class = "user"
path = "/api/"
upstream = "app"

[[routes]]
name = "obs-slow"
class = "user"
path = "/slow/"
upstream = "app"

[[routes]]
name = "obs-down"
class = "user"
path = "/down/"
upstream = "down"

[[routes]]
name = "obs-reset"
class = "user"
path = "/reset/"
upstream = "closer"

[[routes]]
name = "obs-tls"
class = "user"
path = "/tls/"
upstream = "plain"

[[routes]]
name = "obs-tight"
path = "/tight/"
class = "tight"
upstream = "app"

[[routes]]
name = "obs-bearer"
class = "user"
path = "/bearer/"
auth = "bearer"
upstream = "app"

[[routes]]
name = "obs-keyed"
class = "user"
path = "/keyed/"
auth = "api_key"
upstream = "app"

[[routes]]
name = "obs-oauth"
path = "/oauth2/"
class = "oauth"
upstream = "tokens"

[[apps]]
client_id = "{APP}"
key_hash = "sha256:{KEY_HASH}"

[jwt]
issuers = ["https://issuer-one.test"]

[[jwt.jwks]]
url = "http://{JWKS}/.well-known/jwks.json"

[[jwt.jwks]]
url = "http://{UPSTREAM}/not-a-jwks"
"#;

/// An upstream that reads each request's head and closes the connection without answering.
async fn closer() -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        }
    });
    addr
}

/// The running scene.
pub struct Scene {
    pub up: Upstream,
    pub issuer: TestGateway,
    pub gw: TestGateway,
    pub admin: String,
}

/// Starts the upstream, the issuer and the main gateway with its admin listener.
pub async fn start() -> Scene {
    let up = Upstream::start().await;
    let dir = temp_dir("obs-issuer");
    let issuer = gateway(&issuer_config(&dir), None).await;
    let dir = temp_dir("obs-main");
    let mut text = MAIN
        .replace("{JWKS}", &issuer.addr.to_string())
        .replace("{CLOSER}", &closer().await.to_string())
        .replace("{APP}", APP)
        .replace("{KEY_HASH}", &sha256_hex(API_KEY));
    text.push_str(&oauth_section(&dir, "https://obs-main.test"));
    let gw = gateway(&text, Some(up.addr)).await;
    let admin = admin_listener(&gw.gw).await;
    Scene {
        up,
        issuer,
        gw,
        admin,
    }
}

impl Scene {
    /// An access token from the main gateway's token service, then one more by refreshing
    /// (one token issued per grant).
    pub async fn token(&self) -> String {
        let issued = self
            .grant("grant_type=client_credentials&scope=obs%3Aread")
            .await;
        let refresh = issued["refresh_token"].as_str().unwrap().to_string();
        let refreshed = self
            .grant(&format!("grant_type=refresh_token&refresh_token={refresh}"))
            .await;
        refreshed["access_token"].as_str().unwrap().to_string()
    }

    async fn grant(&self, form: &str) -> serde_json::Value {
        let r = client()
            .post(self.gw.url("/oauth2/token"))
            .basic_auth(CLIENT, Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await
    }

    /// A token request with the wrong secret (`401 invalid_client`), as request `id`.
    pub async fn bad_token_request(&self, id: &str) -> u16 {
        let r = client()
            .post(self.gw.url("/oauth2/token"))
            .basic_auth(CLIENT, Some("not-the-secret"))
            .header("x-request-id", id)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Sends `GET path` (with `x-request-id: id`) and returns the status.
    pub async fn get(&self, path: &str, id: &str) -> u16 {
        let r = client()
            .get(self.gw.url(path))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// The traffic behind every series: forwarded, refused, timed out, unreachable, TLS
    /// failure, rate-limited, a token issued and used.
    pub async fn drive(&self) {
        assert_eq!(self.get("/api/ok", "drive-ok").await, 200);
        assert_eq!(self.get("/nowhere", "drive-404").await, 404);
        assert_eq!(self.get("/slow/2000", "drive-slow").await, 504);
        assert_eq!(self.get("/down/x", "drive-down").await, 502);
        assert_eq!(self.get("/tls/x", "drive-tls").await, 502);
        assert_eq!(self.get("/reset/x", "drive-reset").await, 502);
        assert_eq!(self.get("/tight/a", "drive-tight-1").await, 200);
        assert_eq!(self.get("/tight/a", "drive-tight-2").await, 429);
        assert_eq!(self.get("/bearer/x", "drive-no-token").await, 401);
        assert_eq!(self.bad_token_request("drive-bad-secret").await, 401);
        let token = self.token().await;
        let r = client()
            .get(self.gw.url("/bearer/x"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// `/metrics` of the main gateway.
    pub async fn scrape(&self) -> String {
        let r = client()
            .get(format!("{}/metrics", self.admin))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

/// Every sample of a Prometheus text exposition: `name{labels}` -> value.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the series named `name` whose labels include every `k="v"` of `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text).into_iter().find_map(|(series, v)| {
        let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
        let all = labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")));
        (n == name && all).then_some(v)
    })
}
