//! OAuth through the gateway: tokens from the built-in service work on bearer routes, refresh
//! rotates, revocation and suspension are seen by bearer routes, and the OAuth class has its
//! own limit and envelope.

mod common;
use common::*;

const CLIENT: &str = "partner-1";
const SECRET: &str = "s3cret-partner-one-with-enough-entropy";

fn config(dir: &std::path::Path, status: &str) -> String {
    use sha2::Digest;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = dir.join("signing.pem");
    if !pem.exists() {
        std::fs::write(&pem, key.serialize_pem()).unwrap();
    }
    let hash: String = sha2::Sha256::digest(SECRET.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[classes.user]
errors = "partner"
[classes.oauth]
limit = "6/1m"
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
path = "/oauth2/"
class = "oauth"
upstream = "tokens"

[[routes]]
path = "/.well-known/"
class = "oauth"
upstream = "tokens"

[oauth]
issuer = "https://gateway.test"
audience = "partner-api"
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
scopes = ["meetings:read", "meetings:write"]
status = "{status}"
"#,
        dir = dir.display(),
        pem = pem.display(),
    )
}

trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

async fn token(gw: &TestGateway, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(gw.url("/oauth2/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form_body(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_refresh_revoke_round_trip() {
    let up = Upstream::start().await;
    let dir = temp_dir("oauth-gw");
    let gw = gateway(&config(&dir, "active"), Some(up.addr)).await;

    let r = token(
        &gw,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "meetings:read"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().contains_key("x-request-id"));
    let t = json(r).await;
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();

    let call = |tok: String| {
        let url = gw.url("/v1/meetings/42");
        async move { client().get(url).bearer_auth(tok).send().await.unwrap() }
    };
    assert_eq!(call(access.clone()).await.status(), 200);
    let seen = up.last();
    assert_eq!(seen.headers["x-auth-client-id"], CLIENT);
    assert_eq!(seen.headers["x-auth-scopes"], "meetings:read");

    // Refresh rotates; the spent refresh token is refused afterwards.
    let r = token(
        &gw,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let t2 = json(r).await;
    let access2 = t2["access_token"].as_str().unwrap().to_string();
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    assert_eq!(call(access2.clone()).await.status(), 200);
    let r = token(
        &gw,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "invalid_grant");

    // Reusing the spent refresh token revoked the family: its access tokens are refused too.
    let before = up.count();
    let r = call(access2).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        up.count(),
        before,
        "a revoked token never reaches the upstream"
    );
}

#[tokio::test]
async fn revoked_access_token_is_refused_by_bearer_routes() {
    let up = Upstream::start().await;
    let dir = temp_dir("oauth-gw");
    let gw = gateway(&config(&dir, "active"), Some(up.addr)).await;
    let t = json(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "meetings:read"),
            ],
        )
        .await,
    )
    .await;
    let access = t["access_token"].as_str().unwrap();
    let ok = client()
        .get(gw.url("/v1/meetings/1"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        200,
        "the token is now in the verified-token cache"
    );
    let r = client()
        .post(gw.url("/oauth2/revoke"))
        .basic_auth(CLIENT, Some(SECRET))
        .form_body(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(gw.url("/v1/meetings/1"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["code"], "unauthorized");
    let r = client()
        .post(gw.url("/oauth2/introspect"))
        .basic_auth(CLIENT, Some(SECRET))
        .form_body(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["active"], false);
}

#[tokio::test]
async fn errors_use_the_oauth_envelope_and_missing_scope_is_403() {
    let up = Upstream::start().await;
    let dir = temp_dir("oauth-gw");
    let gw = gateway(&config(&dir, "active"), Some(up.addr)).await;
    let r = client()
        .post(gw.url("/oauth2/token"))
        .basic_auth(CLIENT, Some("wrong"))
        .form_body(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let body = json(r).await;
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());

    let t = json(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "meetings:write"),
            ],
        )
        .await,
    )
    .await;
    let r = client()
        .get(gw.url("/v1/meetings/1"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"meetings:read\"")
    );
    assert_eq!(up.count(), 0);

    let r = client()
        .get(gw.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    let meta = json(r).await;
    assert!(
        meta["token_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth2/token"),
        "{meta}"
    );
}

#[tokio::test]
async fn oauth_class_has_its_own_limit_and_429_envelope() {
    let dir = temp_dir("oauth-gw");
    let gw = gateway(&config(&dir, "active"), None).await;
    for _ in 0..6 {
        let r = client()
            .get(gw.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = client()
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let body = json(r).await;
    assert_eq!(body["error"], "rate_limit_exceeded");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn suspending_a_client_by_reload_refuses_its_live_tokens() {
    let up = Upstream::start().await;
    let dir = temp_dir("oauth-gw");
    let gw = gateway(&config(&dir, "active"), Some(up.addr)).await;
    let t = json(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "meetings:read"),
            ],
        )
        .await,
    )
    .await;
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        client()
            .get(gw.url("/v1/meetings/1"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let path = gw.dir.join("portcullis.toml");
    std::fs::write(
        &path,
        config(&dir, "suspended").replace("{UPSTREAM}", &up.addr.to_string()),
    )
    .unwrap();
    gw.gw.reload().await.expect("the suspended config reloads");
    let addr = gw.addr;
    let before = up.count();
    let r = client()
        .get(format!("http://{addr}/v1/meetings/1"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        json(r).await["error"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );
    let r = client()
        .post(format!("http://{addr}/oauth2/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form_body(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(up.count(), before);
}
