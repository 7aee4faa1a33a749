//! Recipe: the Contio partner API guide (seeds/003) replayed against `examples/contio.toml`:
//! authorize (PKCE optional), Basic + form code exchange, refresh, user API calls with the
//! access token, admin calls with X-API-Key + X-Client-ID, and the documented error bodies.

mod recipe_support;
use recipe_support::*;

const CLIENT: &str = "partner-app";
const SECRET: &str = "contio-partner-secret-demo-0123456789abcdef";
const LOGIN: (&str, &str) = ("contio-login", "contio-login-secret-demo-0123456789abcdef");
const API_KEY: &str = "pk_contio_demo_admin_key_0123456789abcdefghij";
const CALLBACK: &str = "https://your-app.com/callback";
const SCOPE: &str = "openid profile meetings:read action-items:read";

fn authorize_url(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", CALLBACK),
        ("scope", SCOPE),
        ("state", "RANDOM_STATE_FOR_CSRF"),
    ];
    pairs.extend_from_slice(extra);
    with_query("/oauth2/authorize", &pairs)
}

async fn exchange(r: &Recipe, pairs: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(r.gw.url("/oauth2/token"))
        .header("authorization", basic(CLIENT, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap()
}

async fn code(r: &Recipe, extra: &[(&str, &str)]) -> String {
    let to = login(&r.gw, &authorize_url(extra), LOGIN, "user-7").await;
    assert!(to.starts_with(&format!("{CALLBACK}?")), "{to}");
    let q = query_of(&to);
    assert_eq!(q["state"], "RANDOM_STATE_FOR_CSRF");
    q["code"].clone()
}

#[tokio::test]
async fn oauth_path_authorize_exchange_call_refresh() {
    let r = start("contio.toml").await;
    // Step 1-2: authorize without PKCE (optional for this confidential client), exchange the code.
    let code = code(&r, &[]).await;
    let resp = exchange(
        &r,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t = json(resp).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 86400);
    assert_eq!(t["scope"], SCOPE);
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();

    // Step 3: the user's meetings, with the access token.
    let resp = client()
        .get(r.gw.url("/v1/partner/user/meetings?limit=10"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = r.up.last();
    assert_eq!(
        (seen.path.as_str(), seen.query.as_deref()),
        ("/v1/partner/user/meetings", Some("limit=10"))
    );
    assert_eq!(seen.headers["x-auth-subject"], "user-7");
    assert!(!seen.headers.contains_key("authorization"));

    // Step 4: refresh with Basic + form; the old refresh token is spent.
    let resp = exchange(
        &r,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t2 = json(resp).await;
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    assert_eq!(t2["expires_in"], 86400);

    // The documented OAuth error format: a used code is invalid_grant.
    let resp = exchange(
        &r,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().contains_key("x-request-id"));
    let e = json(resp).await;
    assert_eq!(e["error"], "invalid_grant");
    assert!(e["error_description"].is_string());
}

#[tokio::test]
async fn pkce_when_sent_is_enforced_and_a_verifier_without_challenge_is_refused() {
    let r = start("contio.toml").await;
    let (verifier, challenge) = pkce();
    let with_pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // Challenge sent: the exchange needs the verifier.
    let c = code(&r, &with_pkce).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    let resp = exchange(&r, &base).await;
    assert_eq!(json(resp).await["error"], "invalid_grant");
    let c = code(&r, &with_pkce).await;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    assert_eq!(exchange(&r, &pairs).await.status(), 200);
    // No challenge at authorize, a verifier at the token endpoint: a downgrade, refused.
    let c = code(&r, &[]).await;
    pairs[1].1 = c.as_str();
    let resp = exchange(&r, &pairs).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"], "invalid_grant");
    // plain is still refused, and discovery still advertises S256 only.
    let to = client()
        .get(r.gw.url(&authorize_url(&[
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain"),
        ])))
        .send()
        .await
        .unwrap();
    let location = to.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(query_of(&location)["error"], "invalid_request");
    let meta = json(
        client()
            .get(r.gw.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        meta["token_endpoint"],
        "https://api.contio.example/oauth2/token"
    );
}

#[tokio::test]
async fn admin_path_with_api_key_and_client_id() {
    let r = start("contio.toml").await;
    let admin = |method: reqwest::Method, path: &str| {
        client()
            .request(method, r.gw.url(path))
            .header("X-API-Key", API_KEY)
            .header("X-Client-ID", CLIENT)
            .header("accept", "application/json")
    };
    let resp = admin(reqwest::Method::GET, "/v1/partner/admin/app")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(r.up.last().headers["x-auth-client-id"], CLIENT);
    assert!(!r.up.last().headers.contains_key("x-api-key"));
    let resp = admin(reqwest::Method::GET, "/v1/partner/admin/automations")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = serde_json::json!({
        "name": "CRM Sync",
        "description": "Sync action items to our CRM",
        "trigger_type": "action_item_created",
        "actions": [{"type": "webhook", "webhook_url": "https://your-app.com/webhooks/contio"}]
    });
    let resp = admin(reqwest::Method::POST, "/v1/partner/admin/automations")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = r.up.last();
    assert_eq!(
        (seen.method.as_str(), seen.body_len),
        ("POST", body.to_string().len())
    );
}

#[tokio::test]
async fn documented_error_bodies() {
    let r = start("contio.toml").await;
    let count = r.up.count();
    // Missing API key.
    let resp = client()
        .get(r.gw.url("/v1/partner/admin/app"))
        .header("X-Client-ID", "YOUR_CLIENT_ID")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let e = json(resp).await;
    assert_eq!(e["error"], "Missing API key");
    assert_eq!(e["code"], "missing_api_key");
    assert_eq!(e["request_id"], id.as_str());
    // Expired (or otherwise invalid) access token.
    let resp = client()
        .get(r.gw.url("/v1/partner/user/meetings"))
        .header("authorization", "Bearer EXPIRED_TOKEN")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let e = json(resp).await;
    assert_eq!(e["error"], "Invalid or expired access token");
    assert_eq!(e["code"], "unauthorized");
    assert!(e["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    // Both styles on one request.
    let resp = client()
        .get(r.gw.url("/v1/partner/admin/app"))
        .header("authorization", "Bearer abc")
        .header("X-API-Key", API_KEY)
        .header("X-Client-ID", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["code"], "invalid_request");
    assert_eq!(r.up.count(), count, "refused requests never reach the API");
}

#[tokio::test]
async fn admin_rate_limit_answers_the_documented_429_body() {
    let r = start("contio.toml").await;
    // The admin class allows 500 requests per rolling 5 minutes per IP; the 501st is refused.
    let c = client();
    for i in 0..500 {
        let resp = c
            .get(r.gw.url("/v1/partner/admin/app"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "request {i}");
    }
    let resp = c
        .get(r.gw.url("/v1/partner/admin/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let e = json(resp).await;
    assert_eq!(e["error"], "rate_limit_exceeded");
    assert_eq!(
        e["error_description"],
        "Too many requests. Please retry after the rate limit window resets."
    );
    assert_eq!(e["request_id"], id.as_str());
}

/// The guide's "Webhook Verification": a partner app checks X-Contio-Timestamp (within 5
/// minutes) and X-Contio-Signature = hex HMAC-SHA256 of `timestamp + "." + body` under the
/// secret's UTF-8 bytes, compared in constant time. What the gateway sends passes that check,
/// and only the registered partner URL is ever called.
#[tokio::test]
async fn webhooks_to_partner_apps_pass_the_guides_verification() {
    use hmac::{Hmac, KeyInit, Mac};
    let receiver = Upstream::start().await;
    let text = example_text("contio.toml").replace(
        "https://your-app.com/webhooks/contio",
        &format!("http://{}/webhooks/contio", receiver.addr),
    );
    let gw = gateway(&text).await;
    let secret = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/contio-webhook.secret"),
    )
    .unwrap();
    let event = br#"{"type":"action_item_created","data":{"id":"ai_1","title":"Send notes"}}"#;
    let send = |dest: &'static str| {
        client()
            .post(gw.url("/internal/webhooks"))
            .header("host", "gateway.internal")
            .header("content-type", "application/json")
            .header("x-webhook-destination", dest)
            .body(event.to_vec())
            .send()
    };
    let resp = send("partner-app").await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = receiver.last();
    assert_eq!(seen.path, "/webhooks/contio");
    assert_eq!(seen.body, event);
    let ts = seen.headers["x-contio-timestamp"].to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts.parse().unwrap()) <= 300);
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.trim_end().as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", std::str::from_utf8(event).unwrap()).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(seen.headers["x-contio-signature"], expected.as_str());
    // A URL that is not registered is refused, and nothing is called.
    let resp = send("https://attacker.example/collect").await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(json(resp).await["code"], "destination_not_allowed");
    assert_eq!(receiver.count(), 1);
}
