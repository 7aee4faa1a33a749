//! Recipe: the Ironclad integration guide (seeds/002) replayed against `examples/ironclad.toml`:
//! a client-credentials app with the dotted scopes the panel lists, each operation allowed only
//! with its scope, and webhook registration needing `public.webhooks.createWebhooks`.

mod recipe_support;
use recipe_support::*;

const CLIENT: &str = "contracts-ai";
const SECRET: &str = "ironclad-client-secret-demo-0123456789abcdef";

async fn token(r: &Recipe, scope: &str) -> String {
    let resp = client()
        .post(r.gw.url("/oauth/token"))
        .header("authorization", basic(CLIENT, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t = json(resp).await;
    assert_eq!(t["scope"], scope);
    assert!(
        t.get("refresh_token").is_none(),
        "client_credentials only: no refresh token"
    );
    t["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_operation_needs_its_scope() {
    let r = start("ironclad.toml").await;
    let read = token(
        &r,
        "public.records.readRecords public.records.readAttachments",
    )
    .await;
    let c = client();
    let resp = c
        .get(r.gw.url("/public/api/v1/records"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(r.up.last().path, "/public/api/v1/records");
    let count = r.up.count();
    let resp = c
        .post(r.gw.url("/public/api/v1/records"))
        .bearer_auth(&read)
        .json(&serde_json::json!({"name": "MSA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("public.records.createRecords")
    );
    assert_eq!(json(resp).await["code"], "insufficient_scope");
    let resp = c
        .post(r.gw.url("/public/api/v1/webhooks"))
        .bearer_auth(&read)
        .json(&serde_json::json!({"events": ["workflow_launched"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(r.up.count(), count);

    // Reconnect with the webhook scope added: automatic sync can register its webhooks.
    let sync = token(
        &r,
        "public.records.readRecords public.records.createRecords public.webhooks.createWebhooks",
    )
    .await;
    for (path, scope_needed) in [
        ("/public/api/v1/records", "create"),
        ("/public/api/v1/webhooks", "webhook"),
    ] {
        let resp = c
            .post(r.gw.url(path))
            .bearer_auth(&sync)
            .json(&serde_json::json!({"kind": scope_needed}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(r.up.last().path, path);
    }
}

#[tokio::test]
async fn a_scope_outside_the_app_is_invalid_scope() {
    let r = start("ironclad.toml").await;
    let resp = client()
        .post(r.gw.url("/oauth/token"))
        .header("authorization", basic(CLIENT, SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("scope", "public.admin.deleteEverything"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"], "invalid_scope");
}
