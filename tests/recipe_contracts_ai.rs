//! Recipe: the Contracts AI customer API guide (seeds/000) replayed against
//! `examples/contracts_ai.toml`: authorize with client_id, redirect_uri, response_type=code and
//! an optional scope; exchange the code by POSTing client_id, client_secret, code and
//! redirect_uri (no grant_type, no PKCE); call the API with the bearer token; only registered
//! redirect URIs are accepted.

mod recipe_support;
use recipe_support::*;

const CLIENT: &str = "my-integration";
const SECRET: &str = "contractsai-client-secret-demo-0123456789abcdef";
const LOGIN: (&str, &str) = (
    "contracts-login",
    "contractsai-login-secret-demo-0123456789abcdef",
);

async fn authorize_and_exchange(
    r: &Recipe,
    redirect: &str,
    scope: Option<&str>,
) -> serde_json::Value {
    let mut pairs = vec![
        ("client_id", CLIENT),
        ("redirect_uri", redirect),
        ("response_type", "code"),
    ];
    if let Some(s) = scope {
        pairs.push(("scope", s));
    }
    let to = login(
        &r.gw,
        &with_query("/oauth2/authorize", &pairs),
        LOGIN,
        "analyst-3",
    )
    .await;
    assert!(to.starts_with(redirect), "{to}");
    let code = query_of(&to)["code"].clone();
    let resp = client()
        .post(r.gw.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", redirect),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await
}

#[tokio::test]
async fn authorization_code_flow_and_api_call() {
    let r = start("contracts_ai.toml").await;
    let t =
        authorize_and_exchange(&r, "https://yourapp.com/callback", Some("contracts:read")).await;
    assert_eq!(t["scope"], "contracts:read");
    assert!(t["refresh_token"].is_string());
    let resp = client()
        .get(r.gw.url("/api/contracts/"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(r.up.last().headers["x-auth-subject"], "analyst-3");
    // Local testing redirect URI, scope left out: all the client's scopes.
    let t = authorize_and_exchange(&r, "http://localhost:8080/callback", None).await;
    assert_eq!(t["scope"], "contracts:read search");
}

#[tokio::test]
async fn only_registered_redirect_uris_are_accepted() {
    let r = start("contracts_ai.toml").await;
    let url = with_query(
        "/oauth2/authorize",
        &[
            ("client_id", CLIENT),
            ("redirect_uri", "https://yourapp.com/callback/other"),
            ("response_type", "code"),
        ],
    );
    let resp = client().get(r.gw.url(&url)).send().await.unwrap();
    // Never redirected to an unregistered URI: the error is shown as JSON.
    assert_eq!(resp.status(), 400);
    assert!(!resp.headers().contains_key("location"));
    assert_eq!(json(resp).await["error"], "invalid_request");
}
