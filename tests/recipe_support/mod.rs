//! Recipe harness: starts a real gateway from an `examples/*.toml` file as shipped (only the
//! listen address, the upstream address and the demo key path are rewritten for the test), a real
//! recording upstream, and drives the login hand-off of the authorization-code flow.
#![allow(dead_code)]

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

#[path = "../common/mod.rs"]
mod common;
pub use common::{TestGateway, Upstream, json};

/// A running recipe: its gateway and the upstream standing in for the partner API's backend.
pub struct Recipe {
    pub gw: TestGateway,
    pub up: Upstream,
}

/// The example config text, pointed at the test's upstream and at the demo key by absolute path.
pub fn example_text(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples").join(name)).unwrap();
    let key = root.join("config/demo/oauth-es256.pem");
    text.replace("\"127.0.0.1:8080\"", "\"127.0.0.1:0\"")
        .replace("127.0.0.1:9001", "{UPSTREAM}")
        .replace("\"../config/demo/oauth-es256.pem\"", &format!("{:?}", key))
        .replace(
            "file:../config/demo/",
            &format!("file:{}/config/demo/", root.display()),
        )
}

/// Starts `examples/NAME` in front of a fresh upstream.
pub async fn start(name: &str) -> Recipe {
    let up = Upstream::start().await;
    let gw = common::gateway(&example_text(name), Some(up.addr)).await;
    Recipe { gw, up }
}

/// Starts a gateway from config text (no upstream).
pub async fn gateway(text: &str) -> TestGateway {
    common::gateway(text, None).await
}

/// Starts a gateway from config text with `{UPSTREAM}` = `up`.
pub async fn gateway_with(text: &str, up: std::net::SocketAddr) -> TestGateway {
    common::gateway(text, Some(up)).await
}

/// A client that never follows redirects (the authorize endpoint answers 302) and times out.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `Authorization: Basic` as in the guides: base64 of `id:secret`.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Query parameters of a URL.
pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The operator's login backend confirming `subject` for the authorization request at
/// `authorize_path_and_query`; returns the `redirect_to` URL (the client's callback with `code`).
pub async fn login(
    gw: &TestGateway,
    authorize_path_and_query: &str,
    login: (&str, &str),
    subject: &str,
) -> String {
    let r = client()
        .get(gw.url(authorize_path_and_query))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let challenge = query_of(&location)
        .remove("login_challenge")
        .unwrap_or_else(|| panic!("no login_challenge in {location}"));
    let path = authorize_path_and_query.split('?').next().unwrap();
    let r = client()
        .post(gw.url(&format!("{path}/accept")))
        .header("authorization", basic(login.0, login.1))
        .json(&serde_json::json!({"login_challenge": challenge, "subject": subject}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json(r).await["redirect_to"].as_str().unwrap().to_string()
}

/// `path?k=v&...`, form-encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{q}")
}

/// A form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
