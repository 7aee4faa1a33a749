//! Endpoint paths and dialects over the wire: one endpoint at two paths (old and new contract side
//! by side), moved revoke/introspect/JWKS paths advertised by discovery, a dialect on one path only,
//! and the refresh-token-alone opt-in; plus API-key header pairs with custom names.

mod recipe_support;
use recipe_support::*;
use sha2::Digest;

const OPT_IN: (&str, &str) = ("opted-in", "opted-in-secret-0123456789abcdefghijklmnop");
const PLAIN: (&str, &str) = ("plain", "plain-secret-0123456789abcdefghijklmnopqrs");
const KEY: &str = "pk_partner_key_0123456789abcdefghijklmnopqrstuv";

fn hash(s: &str) -> String {
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn config() -> String {
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/oauth-es256.pem");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "oauth"
[classes.oauth]
errors = "oauth"
[classes.partner]
errors = "partner"
[upstreams.tokens]
kind = "oauth"
[upstreams.app]
url = "http://{{UPSTREAM}}"
[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "tokens"
[[routes]]
path = "/api/v1/auth/"
class = "oauth"
upstream = "tokens"
[[routes]]
path = "/keys/"
class = "oauth"
upstream = "tokens"
[[routes]]
path = "/partner/"
class = "partner"
auth = "api_key"
api_key_headers = {{ key = "X-Partner-Key", client_id = "X-Partner-Id" }}
upstream = "app"

[oauth]
issuer = "https://gw.test"
audience = "api"
store = "store.db"

[oauth.endpoints]
token = ["/oauth2/token", "/api/v1/auth/token"]
revoke = ["/api/v1/auth/revoke"]
introspect = ["/api/v1/auth/introspect"]
jwks = ["/keys/jwks.json"]
discovery = ["/oauth2/metadata"]

[oauth.dialects."/api/v1/auth/token"]
default_grant_type = true
expires_at = true

[[oauth.signing_keys]]
kid = "k"
private_key_file = {key:?}
active = true

[[oauth.clients]]
client_id = "{opt}"
secret_hash = "sha256:{opt_hash}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["read"]
refresh_without_credentials = true

[[oauth.clients]]
client_id = "{plain}"
secret_hash = "sha256:{plain_hash}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["read"]

[[apps]]
client_id = "partner-1"
key_hash = "sha256:{key_hash}"
"#,
        opt = OPT_IN.0,
        opt_hash = hash(OPT_IN.1),
        plain = PLAIN.0,
        plain_hash = hash(PLAIN.1),
        key_hash = hash(KEY),
    )
}

async fn post_json(
    gw: &TestGateway,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(gw.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

fn creds(c: (&str, &str)) -> serde_json::Value {
    serde_json::json!({"client_id": c.0, "client_secret": c.1})
}

#[tokio::test]
async fn one_endpoint_at_two_paths_with_a_dialect_on_one() {
    let up = Upstream::start().await;
    let gw = recipe_support::gateway_with(&config(), up.addr).await;
    // New contract: no grant_type, expires_at in the answer.
    let (status, t) = post_json(&gw, "/api/v1/auth/token", creds(OPT_IN)).await;
    assert_eq!(status, 200, "{t}");
    assert!(t["expires_at"].as_u64().is_some());
    // Old contract at the old path: grant_type still required, no expires_at.
    let (status, e) = post_json(&gw, "/oauth2/token", creds(OPT_IN)).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let mut body = creds(OPT_IN);
    body["grant_type"] = "client_credentials".into();
    let (status, t2) = post_json(&gw, "/oauth2/token", body).await;
    assert_eq!(status, 200);
    assert!(t2.get("expires_at").is_none());
    // Moved endpoints answer at their paths, are advertised, and the defaults are gone.
    let meta = json(
        client()
            .get(gw.url("/oauth2/metadata"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(meta["token_endpoint"], "https://gw.test/oauth2/token");
    assert_eq!(
        meta["revocation_endpoint"],
        "https://gw.test/api/v1/auth/revoke"
    );
    assert_eq!(
        meta["introspection_endpoint"],
        "https://gw.test/api/v1/auth/introspect"
    );
    assert_eq!(meta["jwks_uri"], "https://gw.test/keys/jwks.json");
    let jwks = json(
        client()
            .get(gw.url("/keys/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(jwks["keys"][0]["kid"], "k");
    let mut body = creds(OPT_IN);
    body["token"] = t["access_token"].clone();
    let (status, i) = post_json(&gw, "/api/v1/auth/introspect", body.clone()).await;
    assert_eq!((status, i["active"].as_bool()), (200, Some(true)));
    assert_eq!(
        post_json(&gw, "/oauth2/introspect", body.clone()).await.0,
        404
    );
    assert_eq!(post_json(&gw, "/api/v1/auth/revoke", body).await.0, 200);
}

#[tokio::test]
async fn refresh_token_alone_only_for_clients_that_opted_in() {
    let up = Upstream::start().await;
    let gw = recipe_support::gateway_with(&config(), up.addr).await;
    let (_, t) = post_json(&gw, "/api/v1/auth/token", creds(OPT_IN)).await;
    let (status, r) = post_json(
        &gw,
        "/api/v1/auth/token",
        serde_json::json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_ne!(r["refresh_token"], t["refresh_token"]);
    // A client that did not opt in must authenticate to refresh.
    let (_, t) = post_json(&gw, "/api/v1/auth/token", creds(PLAIN)).await;
    let alone = serde_json::json!({"refresh_token": t["refresh_token"]});
    let (status, e) = post_json(&gw, "/api/v1/auth/token", alone.clone()).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    // Not at a path without the dialect either, even for the opted-in client.
    let (_, t) = post_json(&gw, "/api/v1/auth/token", creds(OPT_IN)).await;
    let alone =
        serde_json::json!({"grant_type": "refresh_token", "refresh_token": t["refresh_token"]});
    let (status, e) = post_json(&gw, "/oauth2/token", alone).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    // And the refused attempt did not spend it.
    let (status, _) = post_json(
        &gw,
        "/api/v1/auth/token",
        serde_json::json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn api_key_pair_in_custom_headers() {
    let up = Upstream::start().await;
    let gw = recipe_support::gateway_with(&config(), up.addr).await;
    let resp = client()
        .get(gw.url("/partner/reports"))
        .header("X-Partner-Key", KEY)
        .header("X-Partner-Id", "partner-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().headers["x-auth-client-id"], "partner-1");
    assert!(!up.last().headers.contains_key("x-partner-key"));
    // The default header names mean nothing on this route.
    let resp = client()
        .get(gw.url("/partner/reports"))
        .header("X-API-Key", KEY)
        .header("X-Client-ID", "partner-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "ApiKey header=\"X-Partner-Key\", client_id_header=\"X-Partner-Id\""
    );
    let e = json(resp).await;
    assert_eq!(e["code"], "missing_api_key");
    assert!(
        e["error"].as_str().unwrap().contains("X-Partner-Key"),
        "{e}"
    );
    let resp = client()
        .get(gw.url("/partner/reports"))
        .header("X-Partner-Key", KEY)
        .send()
        .await
        .unwrap();
    let e = json(resp).await;
    assert_eq!(e["code"], "missing_client_id");
    assert!(e["error"].as_str().unwrap().contains("X-Partner-Id"), "{e}");
    // Mixed with a bearer token: refused.
    let resp = client()
        .get(gw.url("/partner/reports"))
        .header("X-Partner-Key", KEY)
        .header("X-Partner-Id", "partner-1")
        .bearer_auth("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(up.count(), 1);
}
