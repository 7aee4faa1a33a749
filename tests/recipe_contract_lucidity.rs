//! Recipe: the Contract Lucidity guide (seeds/001) replayed against
//! `examples/contract_lucidity.toml`: client credentials as JSON at `/api/v1/auth/token` with no
//! grant_type, the documented response fields, API calls with the token, re-authentication, and a
//! refresh that sends the refresh token in place of the credentials (rotating it).

mod recipe_support;
use recipe_support::*;

const CLIENT: &str = "power-automate";
const SECRET: &str = "lucidity-client-secret-demo-0123456789abcdef";

async fn token(r: &Recipe, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(r.gw.url("/api/v1/auth/token"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn token_exchange_api_call_and_both_refresh_options() {
    let r = start("contract_lucidity.toml").await;
    let creds = serde_json::json!({"client_id": CLIENT, "client_secret": SECRET});
    let resp = token(&r, creds.clone()).await;
    assert_eq!(resp.status(), 200);
    let t = json(resp).await;
    assert!(
        t["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer")
    );
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    // Valid for 24 hours.
    let c = claims(&access);
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        86_400
    );

    // Using the token.
    let resp = client()
        .get(r.gw.url("/api/v1/projects"))
        .header("Authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(r.up.last().path, "/api/v1/projects");
    assert_eq!(r.up.last().headers["x-auth-client-id"], CLIENT);

    // Option 1: re-authenticate with client credentials.
    assert_eq!(token(&r, creds).await.status(), 200);

    // Option 2: the refresh token in place of the client credentials; it rotates.
    let resp = token(&r, serde_json::json!({"refresh_token": refresh})).await;
    assert_eq!(resp.status(), 200);
    let t2 = json(resp).await;
    assert_ne!(t2["refresh_token"].as_str().unwrap(), refresh);
    assert!(t2["access_token"].is_string());
    // The spent one is refused (and revokes its family).
    let resp = token(&r, serde_json::json!({"refresh_token": refresh})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"], "invalid_grant");
    let resp = token(
        &r,
        serde_json::json!({"refresh_token": t2["refresh_token"]}),
    )
    .await;
    assert_eq!(json(resp).await["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_secret_and_missing_token_are_refused() {
    let r = start("contract_lucidity.toml").await;
    let resp = token(
        &r,
        serde_json::json!({"client_id": CLIENT, "client_secret": "not-it"}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["error"], "invalid_client");
    // Neither credentials nor a refresh token: client authentication is required.
    let resp = token(&r, serde_json::json!({})).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["error"], "invalid_client");
    let resp = client()
        .get(r.gw.url("/api/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["code"], "missing_authorization");
    assert_eq!(r.up.count(), 0);
}

#[tokio::test]
async fn a_compromised_credential_is_cut_off_by_a_reload() {
    let r = start("contract_lucidity.toml").await;
    let resp = token(
        &r,
        serde_json::json!({"client_id": CLIENT, "client_secret": SECRET}),
    )
    .await;
    let t = json(resp).await;
    let access = t["access_token"].as_str().unwrap().to_string();
    // The operator suspends the credential (the guide: "delete it immediately") and reloads.
    let path = r.gw.dir.join("portcullis.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "refresh_without_credentials = true",
        "refresh_without_credentials = true\nstatus = \"suspended\"",
    );
    std::fs::write(&path, text).unwrap();
    r.gw.gw.reload().await.unwrap();
    let resp = client()
        .get(r.gw.url("/api/v1/projects"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = token(&r, serde_json::json!({"refresh_token": t["refresh_token"]})).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json(resp).await["error"], "invalid_client");
    let resp = token(
        &r,
        serde_json::json!({"client_id": CLIENT, "client_secret": SECRET}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(r.up.count(), 0);
}
