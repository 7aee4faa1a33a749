//! Credential shape over the wire (RFC 6750, RFC 6749): each credential once and in one place,
//! the Bearer challenge's realm, `forbidden` vs `insufficient_scope`, and scopes split on SP only.
//! A real gateway and a recording upstream; every refusal is checked for what the upstream saw.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::Digest;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-credentials-secret";
const ACME_KEY: &str = "pk_live_acme_0123456789abcdef0123456789abcdef";

fn key_hash(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn token(scope: &str) -> String {
    portcullis::install_crypto();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": "user-1", "client_id": "app-1", "iss": "https://issuer.test",
        "aud": "api://gateway", "iat": now, "exp": now + 600, "scope": scope,
    });
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn config() -> String {
    let dir = temp_dir("auth-cred-keys");
    let secret = dir.join("hs.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let secret = secret.to_str().unwrap().replace('\\', "/");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[classes.user]
errors = "partner"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[jwt]
issuers = ["https://issuer.test"]
audiences = ["api://gateway"]
realm = "partner-api"

[[jwt.keys]]
kid = "hs"
alg = "HS256"
secret = "file:{secret}"

[[apps]]
client_id = "acme"
key_hash = "{acme}"
scopes = ["meetings:read"]

[[routes]]
path = "/bearer/"
class = "user"
upstream = "app"
auth = "bearer"
scopes = ["meetings:read"]

[[routes]]
path = "/key/"
class = "user"
upstream = "app"
auth = "api_key"

[[routes]]
path = "/keyadmin/"
class = "user"
upstream = "app"
auth = "api_key"
scopes = ["meetings:admin"]

[[routes]]
path = "/either/"
class = "user"
upstream = "app"
auth = "bearer_or_api_key"
"#,
        acme = key_hash(ACME_KEY),
    )
}

/// Status and partner-envelope code of a response, and its headers.
async fn refused(resp: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    let headers = resp.headers().clone();
    let body: Value = json(resp).await;
    assert_eq!(body["code"], code, "{body}");
    headers
}

#[tokio::test]
async fn each_credential_is_sent_once_and_in_one_place() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let c = client();
    let bearer = format!("Bearer {}", token("meetings:read"));

    // Two Authorization headers: 400, whichever route.
    for path in ["/bearer/x", "/either/x"] {
        let resp = c
            .get(gw.url(path))
            .header(AUTHORIZATION, &bearer)
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .unwrap();
        refused(resp, 400, "invalid_request").await;
    }
    // Two X-API-Key, two X-Client-ID, or a comma-joined list of keys: 400.
    let pair = || {
        c.get(gw.url("/key/x"))
            .header("x-client-id", "acme")
            .header("x-api-key", ACME_KEY)
    };
    let twice_key = pair().header("x-api-key", ACME_KEY).send().await.unwrap();
    refused(twice_key, 400, "invalid_request").await;
    let twice_client = pair().header("x-client-id", "acme").send().await.unwrap();
    refused(twice_client, 400, "invalid_request").await;
    let listed = c
        .get(gw.url("/key/x"))
        .header("x-client-id", "acme")
        .header("x-api-key", format!("{ACME_KEY}, {ACME_KEY}"))
        .send()
        .await
        .unwrap();
    refused(listed, 400, "invalid_request").await;

    // X-Client-ID on a Bearer request mixes styles: 400 on bearer and either routes.
    for path in ["/bearer/x", "/either/x"] {
        let resp = c
            .get(gw.url(path))
            .header(AUTHORIZATION, &bearer)
            .header("x-client-id", "acme")
            .send()
            .await
            .unwrap();
        refused(resp, 400, "invalid_request").await;
    }
    // access_token in the query beside an Authorization header (RFC 6750 section 2).
    let resp = c
        .get(gw.url("/bearer/x?access_token=abc&page=2"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    refused(resp, 400, "invalid_request").await;
    // A Bearer credential that is not a b64token.
    for value in ["Bearer ====", "Bearer ab=cd", "Bearer a,b"] {
        let resp = c
            .get(gw.url("/bearer/x"))
            .header(AUTHORIZATION, value)
            .send()
            .await
            .unwrap();
        refused(resp, 401, "invalid_authorization_format").await;
    }
    assert_eq!(up.count(), 0, "the upstream saw a refused request");

    // The same credentials, once each: forwarded.
    let ok = c
        .get(gw.url("/bearer/x?page=2"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let ok = pair().send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(up.count(), 2);
    assert!(
        up.requests()
            .iter()
            .all(|r| !r.headers.contains_key("x-client-id")
                || r.headers.get("x-auth-method").unwrap() == "api_key"),
        "an X-Client-ID reached the upstream beside a bearer token"
    );
    gw.stop().await;
}

#[tokio::test]
async fn missing_credentials_get_a_bearer_challenge_with_realm_and_no_error() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    for path in ["/bearer/x", "/either/x"] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        let h = refused(resp, 401, "missing_authorization").await;
        let challenge = h[WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(challenge, "Bearer realm=\"partner-api\"");
        assert!(!challenge.contains("error"));
    }
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn apps_lacking_permission_are_forbidden_tokens_lacking_scope_are_insufficient_scope() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let c = client();
    let resp = c
        .get(gw.url("/keyadmin/x"))
        .header("x-client-id", "acme")
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap();
    let h = refused(resp, 403, "forbidden").await;
    assert!(h.get(WWW_AUTHENTICATE).is_none());
    let resp = c
        .get(gw.url("/bearer/x"))
        .header(AUTHORIZATION, format!("Bearer {}", token("meetings:write")))
        .send()
        .await
        .unwrap();
    let h = refused(resp, 403, "insufficient_scope").await;
    assert_eq!(
        h[WWW_AUTHENTICATE],
        "Bearer error=\"insufficient_scope\", scope=\"meetings:read\""
    );
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn scopes_are_split_on_the_space_character_only() {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    let c = client();
    // A tab or newline is not a separator (RFC 6749 section 3.3): no scope is meetings:read.
    for scope in [
        "meetings:write\tmeetings:read",
        "meetings:read\nmeetings:write",
    ] {
        let resp = c
            .get(gw.url("/bearer/x"))
            .header(AUTHORIZATION, format!("Bearer {}", token(scope)))
            .send()
            .await
            .unwrap();
        refused(resp, 403, "insufficient_scope").await;
    }
    assert_eq!(up.count(), 0);
    // Runs of spaces separate, and the backend sees the scopes space-joined.
    let resp = c
        .get(gw.url("/bearer/x"))
        .header(
            AUTHORIZATION,
            format!("Bearer {}", token(" meetings:write  meetings:read ")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().headers["x-auth-scopes"],
        "meetings:write meetings:read"
    );
    gw.stop().await;
}
