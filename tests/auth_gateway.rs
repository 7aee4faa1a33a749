//! Authentication over the wire: a real gateway, real HTTP, a recording upstream. Every rejection
//! is checked for its status, envelope and headers, and for the upstream having seen nothing.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::Digest;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-gateway-hs-secret";
const ACME_KEY: &str = "pk_live_acme_0123456789abcdef0123456789abcdef";
const SLEEPY_KEY: &str = "pk_live_sleepy_0123456789abcdef0123456789abcd";

fn key_hash(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(scope: &str) -> Value {
    json!({
        "sub": "user-1",
        "client_id": "app-1",
        "iss": "https://issuer.test",
        "aud": "api://gateway",
        "iat": now(),
        "exp": now() + 600,
        "scope": scope,
    })
}

fn sign(claims: &Value, secret: &[u8]) -> String {
    portcullis::install_crypto();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn token() -> String {
    sign(&claims("meetings:read meetings:write"), SECRET)
}

/// Bearer, API-key, either and echo routes; the HS256 secret and app keys in files / hashes.
fn config() -> String {
    let dir = temp_dir("auth-gw-keys");
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
[upstreams.echo]
kind = "echo"

[jwt]
issuers = ["https://issuer.test"]
audiences = ["api://gateway"]

[[jwt.keys]]
kid = "hs"
alg = "HS256"
secret = "file:{secret}"

[[apps]]
client_id = "acme"
name = "Acme Corp"
key_hash = "{acme}"
scopes = ["meetings:read"]

[[apps]]
client_id = "sleepy"
key_hash = "{sleepy}"
status = "suspended"

[[routes]]
path = "/bearer/"
class = "user"
upstream = "app"
auth = "bearer"
scopes = ["meetings:read"]

[[routes]]
path = "/admin/"
class = "user"
upstream = "app"
auth = "bearer"
scopes = ["meetings:admin"]

[[routes]]
path = "/keep/"
class = "user"
upstream = "app"
auth = "bearer"
strip_credentials = false

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

[[routes]]
path = "/echo/"
class = "user"
upstream = "echo"
auth = "bearer"
"#,
        acme = key_hash(ACME_KEY),
        sleepy = key_hash(SLEEPY_KEY),
    )
}

async fn setup() -> (Upstream, TestGateway) {
    let up = Upstream::start().await;
    let gw = gateway(&config(), Some(up.addr)).await;
    (up, gw)
}

/// Checks status, the partner envelope (exactly `error`, `code`, `request_id`, the id matching
/// `X-Request-Id`) and returns the headers and body.
async fn rejected(
    resp: reqwest::Response,
    status: u16,
    code: &str,
) -> (reqwest::header::HeaderMap, Value) {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    let body = json(resp).await;
    let obj = body.as_object().expect("envelope is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "error", "request_id"], "envelope: {body}");
    assert_eq!(body["code"], code, "code: {body}");
    assert!(!body["error"].as_str().unwrap().is_empty());
    assert_eq!(
        body["request_id"].as_str().unwrap(),
        headers["x-request-id"].to_str().unwrap()
    );
    (headers, body)
}

fn www(h: &reqwest::header::HeaderMap) -> String {
    h.get(WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn missing_or_malformed_authorization_never_reaches_the_upstream() {
    let (up, gw) = setup().await;
    let c = client();

    let resp = c.get(gw.url("/bearer/x")).send().await.unwrap();
    let (h, _) = rejected(resp, 401, "missing_authorization").await;
    assert_eq!(www(&h), "Bearer realm=\"api\"");

    let resp = c
        .get(gw.url("/bearer/x"))
        .header(AUTHORIZATION, "Basic xyz")
        .send()
        .await
        .unwrap();
    let (h, body) = rejected(resp, 401, "invalid_authorization_format").await;
    assert!(www(&h).starts_with("Bearer"), "{}", www(&h));
    assert!(!body.to_string().contains("xyz"));

    let resp = c
        .get(gw.url("/bearer/x"))
        .header(AUTHORIZATION, format!("Bearer {}", token()))
        .header(AUTHORIZATION, format!("Bearer {}", token()))
        .send()
        .await
        .unwrap();
    rejected(resp, 400, "invalid_request").await;

    // The either route asks for a bearer token when nothing at all was sent.
    let resp = c.get(gw.url("/either/x")).send().await.unwrap();
    let (h, _) = rejected(resp, 401, "missing_authorization").await;
    assert_eq!(www(&h), "Bearer realm=\"api\"");

    assert_eq!(up.count(), 0, "the upstream saw a rejected request");
    gw.stop().await;
}

#[tokio::test]
async fn bad_signature_and_expired_tokens_are_invalid_token_without_echoing_it() {
    let (up, gw) = setup().await;
    let c = client();
    let forged = sign(
        &claims("meetings:read"),
        b"another-secret-another-secret-another-secret!!",
    );
    let mut old = claims("meetings:read");
    old["iat"] = json!(now() - 7200);
    old["exp"] = json!(now() - 3600);
    let expired = sign(&old, SECRET);

    for (what, tok) in [("bad signature", forged), ("expired", expired)] {
        let resp = c
            .get(gw.url("/bearer/x"))
            .header(AUTHORIZATION, format!("Bearer {tok}"))
            .send()
            .await
            .unwrap();
        let (h, body) = rejected(resp, 401, "unauthorized").await;
        let challenge = www(&h);
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{what}: {challenge}"
        );
        assert!(challenge.len() > "Bearer error=\"invalid_token\", error_description=\"\"".len());
        let signature = tok.rsplit('.').next().unwrap();
        let payload = tok.split('.').nth(1).unwrap();
        for part in [tok.as_str(), signature, payload] {
            assert!(
                !body.to_string().contains(part),
                "{what}: body echoes token"
            );
            assert!(!challenge.contains(part), "{what}: challenge echoes token");
        }
    }
    assert_eq!(up.count(), 0, "the upstream saw a rejected request");
    gw.stop().await;
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let (up, gw) = setup().await;
    let c = client();
    let tok = sign(&claims("meetings:write profile"), SECRET);
    let resp = c
        .get(gw.url("/bearer/x"))
        .header(AUTHORIZATION, format!("Bearer {tok}"))
        .send()
        .await
        .unwrap();
    let (h, _) = rejected(resp, 403, "insufficient_scope").await;
    assert_eq!(
        www(&h),
        "Bearer error=\"insufficient_scope\", scope=\"meetings:read\""
    );

    // The challenge names the route's own required scopes.
    let resp = c
        .get(gw.url("/admin/x"))
        .header(AUTHORIZATION, format!("Bearer {}", token()))
        .send()
        .await
        .unwrap();
    let (h, _) = rejected(resp, 403, "insufficient_scope").await;
    assert_eq!(
        www(&h),
        "Bearer error=\"insufficient_scope\", scope=\"meetings:admin\""
    );
    assert_eq!(up.count(), 0, "the upstream saw a rejected request");
    gw.stop().await;
}

#[tokio::test]
async fn valid_token_reaches_the_upstream_with_identity_and_without_credentials() {
    let (up, gw) = setup().await;
    let c = client();
    let tok = token();
    let resp = c
        .get(gw.url("/bearer/meetings?x=1"))
        .header(AUTHORIZATION, format!("Bearer {tok}"))
        .header("x-auth-subject", "forged")
        .header("x-auth-method", "api_key")
        .header("x-auth-client-id", "evil")
        .header("x-auth-scopes", "admin:all")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "yes");
    assert_eq!(up.count(), 1);
    let seen = up.last();
    assert_eq!(seen.path, "/bearer/meetings");
    let one = |name: &str| {
        let all: Vec<_> = seen.headers.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        all[0].to_str().unwrap().to_string()
    };
    assert_eq!(one("x-auth-subject"), "user-1");
    assert_eq!(one("x-auth-client-id"), "app-1");
    assert_eq!(one("x-auth-scopes"), "meetings:read meetings:write");
    assert_eq!(one("x-auth-method"), "bearer");
    assert!(
        seen.headers.get("authorization").is_none(),
        "consumed credential forwarded"
    );

    // strip_credentials = false: the Authorization header reaches the upstream.
    let resp = c
        .get(gw.url("/keep/x"))
        .header(AUTHORIZATION, format!("Bearer {tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.count(), 2);
    let seen = up.last();
    assert_eq!(seen.headers["authorization"], format!("Bearer {tok}"));
    assert_eq!(seen.headers["x-auth-method"], "bearer");

    // The either route takes a bearer token too.
    let resp = c
        .get(gw.url("/either/x"))
        .header(AUTHORIZATION, format!("Bearer {tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.headers["x-auth-method"], "bearer");
    assert!(seen.headers.get("authorization").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn api_key_cases_over_the_wire() {
    let (up, gw) = setup().await;
    let c = client();
    let req = |client_id: Option<&str>, key: Option<&str>| {
        let mut r = c.get(gw.url("/key/x"));
        if let Some(id) = client_id {
            r = r.header("x-client-id", id);
        }
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r
    };

    // Every 401 carries a challenge (RFC 9110 section 15.5.2): the API-key one names the headers.
    let api_key_challenge = "ApiKey header=\"X-API-Key\", client_id_header=\"X-Client-ID\"";
    let resp = req(Some("acme"), None).send().await.unwrap();
    let (h, _) = rejected(resp, 401, "missing_api_key").await;
    assert_eq!(www(&h), api_key_challenge);
    let resp = req(None, Some(ACME_KEY)).send().await.unwrap();
    let (h, body) = rejected(resp, 401, "missing_client_id").await;
    assert_eq!(www(&h), api_key_challenge);
    assert!(!body.to_string().contains(ACME_KEY));

    let wrong_key = "pk_live_acme_ffffffffffffffffffffffffffffffff";
    let resp = req(Some("acme"), Some(wrong_key)).send().await.unwrap();
    let (h, mut wrong) = rejected(resp, 401, "invalid_credentials").await;
    assert_eq!(www(&h), api_key_challenge);
    let resp = req(Some("nobody"), Some(ACME_KEY)).send().await.unwrap();
    let (_, mut unknown) = rejected(resp, 401, "invalid_credentials").await;
    assert_ne!(wrong["request_id"], unknown["request_id"]);
    wrong.as_object_mut().unwrap().remove("request_id");
    unknown.as_object_mut().unwrap().remove("request_id");
    assert_eq!(
        wrong, unknown,
        "wrong key and unknown client must look alike"
    );
    assert!(!wrong.to_string().contains(wrong_key));

    let resp = req(Some("sleepy"), Some(SLEEPY_KEY)).send().await.unwrap();
    rejected(resp, 403, "partner_app_inactive").await;

    // An app without the route's scope: 403 forbidden, and no Bearer challenge (it is not a
    // token; `insufficient_scope` is for access tokens).
    let resp = c
        .get(gw.url("/keyadmin/x"))
        .header("x-client-id", "acme")
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap();
    let (h, body) = rejected(resp, 403, "forbidden").await;
    assert!(h.get(WWW_AUTHENTICATE).is_none(), "challenge on an app 403");
    assert!(body["error"].as_str().unwrap().contains("meetings:admin"));

    // The either route: a client id alone means an API-key attempt.
    let resp = c
        .get(gw.url("/either/x"))
        .header("x-client-id", "acme")
        .send()
        .await
        .unwrap();
    rejected(resp, 401, "missing_api_key").await;

    assert_eq!(up.count(), 0, "the upstream saw a rejected request");

    let resp = req(Some("acme"), Some(ACME_KEY))
        .header("x-auth-subject", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.count(), 1);
    let seen = up.last();
    assert_eq!(seen.headers["x-auth-method"], "api_key");
    assert_eq!(seen.headers["x-auth-client-id"], "acme");
    assert_eq!(seen.headers["x-auth-subject"], "acme");
    assert_eq!(seen.headers.get_all("x-auth-subject").iter().count(), 1);
    assert_eq!(seen.headers["x-auth-scopes"], "meetings:read");
    assert!(seen.headers.get("x-api-key").is_none(), "API key forwarded");

    let resp = c
        .get(gw.url("/either/x"))
        .header("x-client-id", "acme")
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.headers["x-auth-method"], "api_key");
    assert!(seen.headers.get("x-api-key").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn bearer_and_api_key_on_one_request_is_400_on_every_route_kind() {
    let (up, gw) = setup().await;
    let c = client();
    let tok = token();
    for path in ["/bearer/x", "/key/x", "/either/x", "/echo/x"] {
        let resp = c
            .get(gw.url(path))
            .header(AUTHORIZATION, format!("Bearer {tok}"))
            .header("x-client-id", "acme")
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap();
        let (_, body) = rejected(resp, 400, "invalid_request").await;
        let text = body.to_string();
        assert!(!text.contains(&tok) && !text.contains(ACME_KEY), "{path}");
    }
    assert_eq!(up.count(), 0, "the upstream saw a rejected request");
    gw.stop().await;
}

#[tokio::test]
async fn echo_route_shows_what_the_backend_gets() {
    let (_up, gw) = setup().await;
    let resp = client()
        .get(gw.url("/echo/whoami"))
        .header(AUTHORIZATION, format!("Bearer {}", token()))
        .header("x-auth-subject", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = json(resp).await;
    let h = &body["headers"];
    assert_eq!(h["x-auth-subject"], json!(["user-1"]), "{body}");
    assert_eq!(h["x-auth-client-id"], json!(["app-1"]));
    assert_eq!(h["x-auth-scopes"], json!(["meetings:read meetings:write"]));
    assert_eq!(h["x-auth-method"], json!(["bearer"]));
    assert!(
        h.get("authorization").is_none(),
        "echo shows the token: {body}"
    );
    gw.stop().await;
}
