//! OAuth state on Redis across two gateway instances on one config and one real redis-server:
//! a refresh token from A is refreshed on B, of two concurrent refreshes on A and B exactly one
//! wins and the other is reuse that revokes the family everywhere, a code from A is redeemed on
//! B once, a login challenge is accepted once across instances, a revocation on A is refused on
//! B within one second (verified-token cache included), and with AOF (`appendfsync always`) a
//! refresh token survives `kill -9` of Redis.

mod common;
mod redis_support;

use std::time::{Duration, Instant};

use common::*;
use redis_support::RedisServer;

const CLIENT: &str = "partner-1";
const SECRET: &str = "s3cret-partner-one-with-enough-entropy";
const WEB: &str = "webapp";
const WEB_SECRET: &str = "web-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const LOGIN: &str = "login-backend";
const LOGIN_SECRET: &str = "login-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const REDIRECT: &str = "https://app.example/cb";

fn sha(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One config for both instances (the signing key file is shared, the store path is unused).
fn config(redis: &RedisServer, dir: &std::path::Path) -> String {
    let pem = dir.join("signing.pem");
    if !pem.exists() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(&pem, key.serialize_pem()).unwrap();
    }
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[state]
backend = "redis"
url = "{url}"
timeout = "500ms"

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
path = "/oauth2/"
class = "oauth"
upstream = "tokens"

[oauth]
issuer = "https://gateway.test"
audience = "partner-api"
store = "{dir}/unused.db"
login_url = "https://login.example/start"

[[oauth.signing_keys]]
kid = "k1"
alg = "ES256"
private_key_file = "{pem}"
active = true

[[oauth.clients]]
client_id = "{CLIENT}"
secret_hash = "sha256:{h1}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["meetings:read"]

[[oauth.clients]]
client_id = "{WEB}"
secret_hash = "sha256:{h2}"
grant_types = ["authorization_code", "refresh_token"]
scopes = ["meetings:read"]
redirect_uris = ["{REDIRECT}"]

[[oauth.clients]]
client_id = "{LOGIN}"
secret_hash = "sha256:{h3}"
login_provider = true
"#,
        url = redis.url(),
        dir = dir.display(),
        pem = pem.display(),
        h1 = sha(SECRET),
        h2 = sha(WEB_SECRET),
        h3 = sha(LOGIN_SECRET),
    )
}

struct Pair {
    a: TestGateway,
    b: TestGateway,
    up: Upstream,
}

async fn two(redis: &RedisServer) -> Pair {
    let up = Upstream::start().await;
    let dir = temp_dir("redis-oauth");
    let text = config(redis, &dir);
    let a = gateway(&text, Some(up.addr)).await;
    let b = gateway(&text, Some(up.addr)).await;
    for gw in [&a, &b] {
        let r = gw.gw.redis().expect("redis backend");
        assert!(
            r.wait_up(Duration::from_secs(5)).await,
            "gateway never saw Redis"
        );
    }
    assert!(
        !dir.join("unused.db").exists(),
        "the embedded store is not opened"
    );
    Pair { a, b, up }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn post(
    gw: &TestGateway,
    path: &str,
    who: (&str, &str),
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .basic_auth(who.0, Some(who.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
}

async fn cc_token(gw: &TestGateway) -> serde_json::Value {
    let r = post(
        gw,
        "/oauth2/token",
        (CLIENT, SECRET),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "meetings:read"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    json(r).await
}

async fn refresh(gw: &TestGateway, token: &str) -> (u16, serde_json::Value) {
    let r = post(
        gw,
        "/oauth2/token",
        (CLIENT, SECRET),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    (r.status().as_u16(), json(r).await)
}

async fn call(gw: &TestGateway, access: &str) -> u16 {
    client()
        .get(gw.url("/v1/meetings/1"))
        .bearer_auth(access)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `gw` until `access` is refused; returns how long that took (bounded by 3 s).
async fn refused_within(gw: &TestGateway, access: &str, started: Instant) -> Duration {
    loop {
        if call(gw, access).await == 401 {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn refresh_from_a_on_b_then_concurrent_refresh_one_wins_and_reuse_revokes_everywhere() {
    let redis = RedisServer::start().await;
    let p = two(&redis).await;
    let t = cc_token(&p.a).await;
    let r1 = t["refresh_token"].as_str().unwrap().to_string();
    let (status, t2) = refresh(&p.b, &r1).await;
    assert_eq!(status, 200, "a refresh token from A is known to B: {t2}");
    let r2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "rotated");

    // The same token on both instances at once: exactly one wins.
    let (x, y) = tokio::join!(refresh(&p.a, &r2), refresh(&p.b, &r2));
    let mut outcomes = [(x.0, x.1.clone()), (y.0, y.1.clone())];
    outcomes.sort_by_key(|o| o.0);
    assert_eq!(outcomes[0].0, 200, "{outcomes:?}");
    assert_eq!(outcomes[1].0, 400, "{outcomes:?}");
    assert_eq!(outcomes[1].1["error"], "invalid_grant");
    let winner = &outcomes[0].1;
    let r3 = winner["refresh_token"].as_str().unwrap();
    let access3 = winner["access_token"].as_str().unwrap();

    // The loser was reuse: the family is revoked on both instances, its access token too.
    let started = Instant::now();
    for gw in [&p.a, &p.b] {
        let (status, body) = refresh(gw, r3).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    let on_a = refused_within(&p.a, access3, started).await;
    let on_b = refused_within(&p.b, access3, started).await;
    println!("family revoked by reuse: refused on A after {on_a:?}, on B after {on_b:?}");
    assert!(on_a < Duration::from_secs(1) && on_b < Duration::from_secs(1));
    // Once refused, refused for good on both (until exp): nothing more reaches the upstream.
    let seen = p.up.count();
    for gw in [&p.a, &p.b] {
        assert_eq!(call(gw, access3).await, 401);
    }
    assert_eq!(p.up.count(), seen);
}

#[tokio::test]
async fn revocation_on_a_is_refused_on_b_within_one_second_cache_included() {
    let redis = RedisServer::start().await;
    let p = two(&redis).await;
    let t = cc_token(&p.a).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(call(&p.b, access).await, 200, "B verified it and cached it");
    assert_eq!(call(&p.b, access).await, 200);
    let r = post(
        &p.a,
        "/oauth2/revoke",
        (CLIENT, SECRET),
        &[("token", access)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let took = refused_within(&p.b, access, started).await;
    println!("revoked on A, refused on B after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let seen = p.up.count();
    assert_eq!(call(&p.b, access).await, 401);
    assert_eq!(call(&p.a, access).await, 401);
    assert_eq!(p.up.count(), seen, "refused once revoked, on both");
    // A third instance started later learns the revocation from the log.
    let dir = temp_dir("redis-oauth-late");
    let c = gateway(&config(&redis, &dir), Some(p.up.addr)).await;
    let took = refused_within(&c, access, Instant::now()).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// authorize + accept on `gw`; returns (code, verifier, login_challenge).
async fn code_on(gw: &TestGateway) -> (String, String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let q = form(&[
        ("response_type", "code"),
        ("client_id", WEB),
        ("redirect_uri", REDIRECT),
        ("state", "s1"),
        ("scope", "meetings:read"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(gw.url(&format!("/oauth2/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let login_challenge = query(&loc)["login_challenge"].clone();
    let r = post(
        gw,
        "/oauth2/authorize/accept",
        (LOGIN, LOGIN_SECRET),
        &[
            ("login_challenge", &login_challenge),
            ("subject", "user-42"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let to = json(r).await["redirect_to"].as_str().unwrap().to_string();
    (query(&to)["code"].clone(), verifier, login_challenge)
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn code_from_a_is_redeemed_on_b_once_and_a_challenge_is_accepted_once() {
    let redis = RedisServer::start().await;
    let p = two(&redis).await;
    let (code, verifier, login_challenge) = code_on(&p.a).await;
    let redeem = |gw: &'static str| {
        let gw = if gw == "a" { &p.a } else { &p.b };
        let (code, verifier) = (code.clone(), verifier.clone());
        async move {
            let r = post(
                gw,
                "/oauth2/token",
                (WEB, WEB_SECRET),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
            (r.status().as_u16(), json(r).await)
        }
    };
    let (status, tokens) = redeem("b").await;
    assert_eq!(status, 200, "a code from A is redeemed on B: {tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(call(&p.a, &access).await, 200);
    // Redeemed again on A: refused, and the tokens it produced are revoked everywhere.
    let (status, body) = redeem("a").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let took = refused_within(&p.b, &access, Instant::now()).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The login challenge accepted on A cannot be accepted again on B.
    let r = post(
        &p.b,
        "/oauth2/authorize/accept",
        (LOGIN, LOGIN_SECRET),
        &[
            ("login_challenge", &login_challenge),
            ("subject", "user-42"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn with_aof_a_refresh_token_survives_kill_9_of_redis() {
    let mut redis = RedisServer::start_with(true).await;
    let p = two(&redis).await;
    let r1 = cc_token(&p.a).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    redis.restart().await; // SIGKILL, then the same port again
    for gw in [&p.a, &p.b] {
        let r = gw.gw.redis().unwrap();
        assert!(r.wait_up(Duration::from_secs(5)).await);
    }
    // The first call after the restart may meet the dropped connection; bounded retries.
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..20 {
        last = refresh(&p.b, &r1).await;
        if last.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last.0, 200,
        "the refresh token survived kill -9: {}",
        last.1
    );
}

/// Redis down: the token endpoint answers `503 temporarily_unavailable` with `Retry-After`
/// (a retryable outage, not a `500` bug), and issues tokens again once Redis is back.
#[tokio::test]
async fn token_endpoint_answers_503_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let p = two(&redis).await;
    cc_token(&p.a).await;
    redis.kill9();
    let r = post(
        &p.a,
        "/oauth2/token",
        (CLIENT, SECRET),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "meetings:read"),
        ],
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = json(r).await;
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let text = body["error_description"].as_str().unwrap_or_default();
    assert!(
        !text.contains("Redis") && !text.contains("127.0.0.1"),
        "{text}"
    );
    redis.restart().await;
    assert!(
        p.a.gw
            .redis()
            .unwrap()
            .wait_up(Duration::from_secs(5))
            .await
    );
    let mut status = 0;
    for _ in 0..20 {
        let r = post(
            &p.a,
            "/oauth2/token",
            (CLIENT, SECRET),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "meetings:read"),
            ],
        )
        .await;
        status = r.status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only the outage's answer while reconnecting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "tokens are issued again once Redis is back");
}
