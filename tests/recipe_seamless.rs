//! Recipe: the Seamless guide (seeds/004) replayed against `examples/seamless.toml`: authorize at
//! `/oauth/authorize` with only client_id, redirect_uri and state; JSON code exchange and refresh
//! at `/api/client/v1/oauth/accessToken` answering `expires_at`; API calls with the bearer token
//! or with the `Token` API-key header alone; the two never mixed on one request.

mod recipe_support;
use recipe_support::*;

const CLIENT: &str = "seamless-app";
const SECRET: &str = "seamless-client-secret-demo-0123456789abcdef";
const LOGIN: (&str, &str) = (
    "seamless-login",
    "seamless-login-secret-demo-0123456789abcdef",
);
const API_KEY: &str = "pk_seamless_demo_api_key_0123456789abcdefghij";
const CALLBACK: &str = "https://yourapp.com/callback";
const TOKEN_PATH: &str = "/api/client/v1/oauth/accessToken";

async fn token(r: &Recipe, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(r.gw.url(TOKEN_PATH))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn authorization_code_flow_with_json_exchange_and_refresh() {
    let r = start("seamless.toml").await;
    // 1. Redirect the user: no response_type, no PKCE in this contract.
    let url = with_query(
        "/oauth/authorize",
        &[
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("state", "RANDOM_CSRF_STRING"),
        ],
    );
    let to = login(&r.gw, &url, LOGIN, "seller-1").await;
    let q = query_of(&to);
    assert!(to.starts_with(CALLBACK));
    assert_eq!(q["state"], "RANDOM_CSRF_STRING");

    // 2. Exchange the code: JSON body, credentials in it, `expires_at` in the answer.
    let resp = token(
        &r,
        serde_json::json!({
            "client_id": CLIENT,
            "client_secret": SECRET,
            "redirect_uri": CALLBACK,
            "grant_type": "authorization_code",
            "code": q["code"],
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t = json(resp).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires_at = t["expires_at"].as_u64().expect("expires_at");
    assert!((now + 86_000..=now + 86_500).contains(&expires_at), "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();

    // 3. Call the API with the access token.
    let resp = client()
        .post(r.gw.url("/api/client/v1/search/contacts"))
        .header("content-type", "application/json")
        .bearer_auth(&access)
        .body(r#"{"jobTitle": ["VP Sales"], "limit": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(r.up.last().path, "/api/client/v1/search/contacts");
    assert_eq!(r.up.last().headers["x-auth-subject"], "seller-1");

    // 4. Refresh: the same endpoint, JSON, with client credentials and redirect_uri.
    let resp = token(
        &r,
        serde_json::json!({
            "client_id": CLIENT,
            "client_secret": SECRET,
            "redirect_uri": CALLBACK,
            "grant_type": "refresh_token",
            "refresh_token": t["refresh_token"],
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t2 = json(resp).await;
    assert!(t2["expires_at"].as_u64().is_some());
    assert_ne!(t2["refresh_token"], t["refresh_token"]);

    // Discovery advertises the contract's own paths.
    let meta = json(
        client()
            .get(r.gw.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        meta["token_endpoint"],
        format!("https://api.seamless.example{TOKEN_PATH}")
    );
    assert_eq!(
        meta["authorization_endpoint"],
        "https://api.seamless.example/oauth/authorize"
    );
    // The default paths are not served: the token service lives where the contract says.
    let resp = client()
        .post(r.gw.url("/oauth/token"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn api_key_in_the_token_header_alone() {
    let r = start("seamless.toml").await;
    let resp = client()
        .post(r.gw.url("/api/client/v1/search/contacts"))
        .header("Token", API_KEY)
        .json(&serde_json::json!({"jobTitle": ["VP Sales"], "limit": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = r.up.last();
    assert_eq!(seen.headers["x-auth-client-id"], "seamless-key-1");
    assert_eq!(seen.headers["x-auth-method"], "api_key");
    assert!(
        !seen.headers.contains_key("token"),
        "the key is not forwarded"
    );

    // A wrong key: 401 naming the configured header.
    let count = r.up.count();
    let resp = client()
        .get(r.gw.url("/api/client/v1/search/contacts"))
        .header("Token", "pk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "ApiKey header=\"Token\""
    );
    assert_eq!(json(resp).await["code"], "invalid_credentials");

    // Never mix them on the same request.
    let resp = client()
        .get(r.gw.url("/api/client/v1/search/contacts"))
        .header("Token", API_KEY)
        .header("authorization", "Bearer ACCESS_TOKEN")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["code"], "invalid_request");
    assert_eq!(r.up.count(), count);
}
