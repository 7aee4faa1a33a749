//! The credential API over the wire, embedded store: a client created through the admin API
//! gets a token that reaches the upstream; lists never reveal a secret; rotation keeps the old
//! secret for the overlap only (manual clock); suspension and deletion refuse live tokens and
//! keys on the next request; config-defined credentials are read-only; operator tokens (401 with
//! `WWW-Authenticate`, 403 for a read token writing); the API is off without tokens and never on
//! the public listener; audit with pagination; 404/409/422 problem bodies; the served OpenAPI
//! document is the checked-in one; an id in both config and store refuses a reload.

mod admin_api_support;
mod common;

use std::sync::Arc;

use admin_api_support::*;
use common::*;
use portcullis::clock::ManualClock;
use serde_json::{Value, json};

struct Env {
    gw: TestGateway,
    admin: String,
    up: Upstream,
    c: reqwest::Client,
    clock: Arc<ManualClock>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn env_with(tokens: bool) -> Env {
    let up = Upstream::start().await;
    let dir = temp_dir("admin-api");
    let clock = ManualClock::new(unix_now());
    let gw = gateway_with_clock(&config(&dir, "", tokens), Some(up.addr), clock.clone()).await;
    let admin = admin_listener(&gw.gw).await;
    Env {
        gw,
        admin,
        up,
        c: client(),
        clock,
    }
}

async fn env() -> Env {
    env_with(true).await
}

impl Env {
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (s, _, v) = call(
            &self.c,
            &self.admin,
            method,
            path,
            Some(OPS),
            body.as_deref(),
        )
        .await;
        (s, v)
    }

    fn public(&self) -> String {
        format!("http://{}", self.gw.addr)
    }

    async fn new_client(&self) -> (String, String) {
        let body = json!({"name": "Acme reporting", "scopes": ["meetings:read"]});
        let (s, v) = self.api("POST", "/admin/v1/clients", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        let id = v["client_id"].as_str().unwrap().to_string();
        (id, v["client_secret"].as_str().unwrap().to_string())
    }

    async fn token(&self, id: &str, secret: &str) -> String {
        let (s, v) = cc_token(&self.c, &self.public(), id, secret).await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn a_client_created_through_the_api_gets_a_token_that_reaches_the_upstream() {
    let e = env().await;
    let (id, secret) = e.new_client().await;
    assert!(id.starts_with("pc_"));
    assert!(secret.len() >= 43, "32 random bytes, base64url");
    let token = e.token(&id, &secret).await;
    assert_eq!(meetings(&e.c, &e.public(), &token).await, 200);
    let seen = e.up.last();
    assert_eq!(seen.path, "/v1/meetings/list");
    assert_eq!(seen.headers["x-auth-client-id"], id.as_str());
    // The wrong secret is refused and nothing more reaches the upstream.
    let (s, v) = cc_token(&e.c, &e.public(), &id, "not-the-secret").await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(e.up.count(), 1);
}

#[tokio::test]
async fn an_app_created_through_the_api_authenticates_with_its_key() {
    let e = env().await;
    let body = json!({"name": "Billing export", "client_id": "billing-export", "scopes": ["reports:read"]});
    let (s, v) = e.api("POST", "/admin/v1/apps", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let key = v["api_key"].as_str().unwrap();
    assert!(key.starts_with("pk_"));
    assert!(v["warning"].as_str().unwrap().contains("shown once"));
    let (s, _) = reports(&e.c, &e.public(), "billing-export", key).await;
    assert_eq!(s, 200);
    assert_eq!(e.up.last().headers["x-auth-client-id"], "billing-export");
    let (s, v) = reports(&e.c, &e.public(), "billing-export", "pk_wrong").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("invalid_credentials")));
    assert_eq!(e.up.count(), 1);
}

#[tokio::test]
async fn lists_and_gets_never_reveal_a_secret_or_its_hash() {
    let e = env().await;
    let (id, secret) = e.new_client().await;
    let (_, app) = e
        .api("POST", "/admin/v1/apps", Some(json!({"name": "a"})))
        .await;
    let key = app["api_key"].as_str().unwrap().to_string();
    for path in [
        "/admin/v1/clients".to_string(),
        format!("/admin/v1/clients/{id}"),
        "/admin/v1/apps".to_string(),
        format!("/admin/v1/apps/{}", app["client_id"].as_str().unwrap()),
        "/admin/v1/audit".to_string(),
    ] {
        let (s, v) = e.api("GET", &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        let text = v.to_string();
        for leak in [
            secret.as_str(),
            key.as_str(),
            &sha(&secret),
            &sha(&key),
            "sha256:",
        ] {
            assert!(!text.contains(leak), "{path} reveals {leak}: {text}");
        }
        assert!(
            !text.contains("client_secret") && !text.contains("api_key"),
            "{text}"
        );
    }
    let (_, list) = e.api("GET", "/admin/v1/clients", None).await;
    let sources: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["client_id"].as_str().unwrap(),
                i["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(sources.contains(&(CONFIG_CLIENT, "config")), "{sources:?}");
    assert!(sources.contains(&(id.as_str(), "store")), "{sources:?}");
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_overlap_then_refuses_it() {
    let e = env().await;
    let (id, old) = e.new_client().await;
    let (s, v) = e
        .api(
            "POST",
            &format!("/admin/v1/clients/{id}/rotate"),
            Some(json!({"overlap_seconds": 60})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let new = v["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(v["warning"].as_str().unwrap().contains("shown once"));
    e.token(&id, &new).await;
    e.token(&id, &old).await;
    e.clock.advance_secs(61);
    let (s, _) = cc_token(&e.c, &e.public(), &id, &old).await;
    assert_eq!(s, 401, "the old secret stops after the overlap");
    e.token(&id, &new).await;
    // Default overlap is zero: the replaced secret stops at once.
    let (_, v) = e
        .api("POST", &format!("/admin/v1/clients/{id}/rotate"), None)
        .await;
    let newest = v["client_secret"].as_str().unwrap().to_string();
    assert_eq!(cc_token(&e.c, &e.public(), &id, &new).await.0, 401);
    e.token(&id, &newest).await;
    // Apps rotate the same way.
    let (_, app) = e
        .api(
            "POST",
            "/admin/v1/apps",
            Some(json!({"name": "a", "client_id": "rot-app"})),
        )
        .await;
    let k1 = app["api_key"].as_str().unwrap().to_string();
    let (_, v) = e
        .api(
            "POST",
            "/admin/v1/apps/rot-app/rotate",
            Some(json!({"overlap_seconds": 30})),
        )
        .await;
    let k2 = v["api_key"].as_str().unwrap().to_string();
    assert_eq!(reports(&e.c, &e.public(), "rot-app", &k1).await.0, 200);
    assert_eq!(reports(&e.c, &e.public(), "rot-app", &k2).await.0, 200);
    e.clock.advance_secs(31);
    assert_eq!(reports(&e.c, &e.public(), "rot-app", &k1).await.0, 401);
    assert_eq!(reports(&e.c, &e.public(), "rot-app", &k2).await.0, 200);
}

#[tokio::test]
async fn suspension_and_deletion_refuse_live_tokens_on_the_next_request() {
    let e = env().await;
    let (id, secret) = e
        .api(
            "POST",
            "/admin/v1/clients",
            Some(json!({"name": "r", "grant_types": ["client_credentials", "refresh_token"], "scopes": ["meetings:read"]})),
        )
        .await
        .1
        .as_object()
        .map(|o| (o["client_id"].as_str().unwrap().to_string(), o["client_secret"].as_str().unwrap().to_string()))
        .unwrap();
    let (_, issued) = cc_token(&e.c, &e.public(), &id, &secret).await;
    let access = issued["access_token"].as_str().unwrap().to_string();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(meetings(&e.c, &e.public(), &access).await, 200);
    let path = format!("/admin/v1/clients/{id}");
    let (s, v) = e
        .api("PATCH", &path, Some(json!({"status": "suspended"})))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("suspended")));
    let before = e.up.count();
    assert_eq!(meetings(&e.c, &e.public(), &access).await, 401);
    let refreshed = refresh(&e.c, &e.public(), &id, &secret, &refresh_token).await;
    assert_eq!(refreshed, 401, "a suspended client cannot refresh");
    assert_eq!(e.up.count(), before, "nothing reached the upstream");
    e.api("PATCH", &path, Some(json!({"status": "active"})))
        .await;
    assert_eq!(meetings(&e.c, &e.public(), &access).await, 200);
    let (s, _) = e.api("DELETE", &path, None).await;
    assert_eq!(s, 204);
    assert_eq!(meetings(&e.c, &e.public(), &access).await, 401);
    assert_eq!(cc_token(&e.c, &e.public(), &id, &secret).await.0, 401);
    assert_eq!(e.api("GET", &path, None).await.0, 404);
    // The id of a deleted client is not handed out again.
    let again = json!({"name": "again", "client_id": id});
    assert_eq!(e.api("POST", "/admin/v1/clients", Some(again)).await.0, 409);

    // Apps: suspended = 403 partner_app_inactive, deleted = 401.
    let (_, app) = e
        .api(
            "POST",
            "/admin/v1/apps",
            Some(json!({"name": "a", "client_id": "sus-app"})),
        )
        .await;
    let key = app["api_key"].as_str().unwrap().to_string();
    assert_eq!(reports(&e.c, &e.public(), "sus-app", &key).await.0, 200);
    e.api(
        "PATCH",
        "/admin/v1/apps/sus-app",
        Some(json!({"status": "suspended"})),
    )
    .await;
    let (s, v) = reports(&e.c, &e.public(), "sus-app", &key).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("partner_app_inactive")));
    e.api("DELETE", "/admin/v1/apps/sus-app", None).await;
    assert_eq!(reports(&e.c, &e.public(), "sus-app", &key).await.0, 401);
}

#[tokio::test]
async fn config_defined_credentials_are_listed_read_only() {
    let e = env().await;
    let (s, v) = e
        .api("GET", &format!("/admin/v1/clients/{CONFIG_CLIENT}"), None)
        .await;
    assert_eq!((s, v["source"].as_str()), (200, Some("config")));
    for (method, path, body) in [
        (
            "PATCH",
            format!("/admin/v1/clients/{CONFIG_CLIENT}"),
            Some(json!({"status": "suspended"})),
        ),
        ("DELETE", format!("/admin/v1/clients/{CONFIG_CLIENT}"), None),
        (
            "POST",
            format!("/admin/v1/clients/{CONFIG_CLIENT}/rotate"),
            None,
        ),
        (
            "PATCH",
            format!("/admin/v1/apps/{CONFIG_APP}"),
            Some(json!({"name": "x"})),
        ),
        ("DELETE", format!("/admin/v1/apps/{CONFIG_APP}"), None),
    ] {
        let (s, v) = e.api(method, &path, body).await;
        assert_eq!(s, 409, "{method} {path}: {v}");
        assert_eq!(v["error"], "config_defined");
        assert!(
            v["message"].as_str().unwrap().contains("config file"),
            "{v}"
        );
    }
    let dup = json!({"name": "x", "client_id": CONFIG_APP});
    let (s, v) = e.api("POST", "/admin/v1/apps", Some(dup)).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("duplicate_id")));
    // Still working as configured.
    e.token(CONFIG_CLIENT, CONFIG_SECRET).await;
    assert_eq!(
        reports(&e.c, &e.public(), CONFIG_APP, CONFIG_KEY).await.0,
        200
    );
}

#[tokio::test]
async fn operator_tokens_are_required_and_read_tokens_cannot_write() {
    let e = env().await;
    let (s, h, v) = call(&e.c, &e.admin, "GET", "/admin/v1/clients", None, None).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")));
    assert_eq!(h["www-authenticate"], "Bearer realm=\"portcullis-admin\"");
    let (s, h, _) = call(
        &e.c,
        &e.admin,
        "GET",
        "/admin/v1/clients",
        Some("nope"),
        None,
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let body = Some(r#"{"name": "x"}"#);
    let (s, _, v) = call(
        &e.c,
        &e.admin,
        "POST",
        "/admin/v1/apps",
        Some(AUDITOR),
        body,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")));
    let (s, _, _) = call(&e.c, &e.admin, "GET", "/admin/v1/apps", Some(AUDITOR), None).await;
    assert_eq!(s, 200);
    let (_, _, list) = call(&e.c, &e.admin, "GET", "/admin/v1/apps", Some(OPS), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the read token created nothing"
    );
}

#[tokio::test]
async fn the_api_is_never_reachable_on_the_public_listener() {
    let e = env().await;
    for path in [
        "/admin/v1/clients",
        "/admin/v1/openapi.json",
        "/admin/v1/audit",
    ] {
        let r =
            e.c.get(format!("{}{path}", e.public()))
                .bearer_auth(OPS)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let v = json(r).await;
        assert_eq!(v["code"], "not_found");
    }
    let r =
        e.c.post(format!("{}/admin/v1/clients", e.public()))
            .bearer_auth(OPS)
            .body(r#"{"name": "x"}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(e.up.count(), 0, "nothing was forwarded");
    let (_, v) = e.api("GET", "/admin/v1/clients", None).await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "only the config client"
    );
}

#[tokio::test]
async fn without_operator_tokens_the_credential_api_is_off() {
    let e = env_with(false).await;
    let (s, _, _) = call(&e.c, &e.admin, "GET", "/admin/v1/clients", Some(OPS), None).await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &e.c,
        &e.admin,
        "POST",
        "/admin/v1/clients",
        Some(OPS),
        Some("{}"),
    )
    .await;
    assert_eq!(s, 404);
    let r =
        e.c.get(format!("{}/healthz", e.admin))
            .send()
            .await
            .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the rest of the admin listener is unchanged"
    );
}

#[tokio::test]
async fn malformed_bodies_and_wrong_types_are_422_with_the_field_and_the_fix() {
    let e = env().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("POST", "/admin/v1/clients", "{not json", ""),
        ("POST", "/admin/v1/clients", "[1, 2]", ""),
        ("POST", "/admin/v1/clients", r#"{"scopes": []}"#, "name"),
        ("POST", "/admin/v1/clients", r#"{"name": 7}"#, "name"),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "colour": "red"}"#,
            "colour",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "scopes": "a b"}"#,
            "scopes",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "scopes": ["a b"]}"#,
            "scopes",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "grant_types": ["password"]}"#,
            "grant_types",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "grant_types": ["authorization_code"]}"#,
            "redirect_uris",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "grant_types": ["authorization_code"], "redirect_uris": ["http://app.example/cb"]}"#,
            "redirect_uris",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "redirect_uris": ["https://app.example/cb#frag"]}"#,
            "redirect_uris",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "redirect_uris": ["/relative"]}"#,
            "redirect_uris",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "type": "public", "grant_types": ["client_credentials"]}"#,
            "grant_types",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "type": "secretive"}"#,
            "type",
        ),
        (
            "POST",
            "/admin/v1/clients",
            r#"{"name": "x", "client_id": "a b"}"#,
            "client_id",
        ),
        ("POST", "/admin/v1/apps", r#"{"name": ""}"#, "name"),
        (
            "POST",
            "/admin/v1/apps",
            r#"{"name": "x", "scopes": [1]}"#,
            "scopes",
        ),
        ("PATCH", "/admin/v1/apps/whatever", "{}", ""),
        (
            "PATCH",
            "/admin/v1/apps/whatever",
            r#"{"status": "paused"}"#,
            "status",
        ),
        (
            "POST",
            "/admin/v1/apps/whatever/rotate",
            r#"{"overlap_seconds": -5}"#,
            "overlap_seconds",
        ),
        (
            "POST",
            "/admin/v1/apps/whatever/rotate",
            r#"{"overlap_seconds": 99999999}"#,
            "overlap_seconds",
        ),
        ("GET", "/admin/v1/apps?limit=0", "", "limit"),
        ("GET", "/admin/v1/apps?limit=abc", "", "limit"),
        ("GET", "/admin/v1/apps?cursor=%%%", "", "cursor"),
        ("GET", "/admin/v1/audit?cursor=bm9wZQ", "", "cursor"),
    ];
    for (method, path, body, field) in cases {
        let body = (!body.is_empty()).then_some(*body);
        let (s, _, v) = call(&e.c, &e.admin, method, path, Some(OPS), body).await;
        assert_eq!(s, 422, "{method} {path} {body:?}: {v}");
        assert_eq!(v["error"], "invalid_request", "{v}");
        assert_eq!(v["field"], *field, "{method} {path} {body:?}: {v}");
        assert!(!v["fix"].as_str().unwrap().is_empty(), "{v}");
        assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
    }
    let (_, _, list) = call(&e.c, &e.admin, "GET", "/admin/v1/clients", Some(OPS), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_duplicates_409_wrong_methods_405() {
    let e = env().await;
    for (m, p) in [
        ("GET", "/admin/v1/clients/nope"),
        ("PATCH", "/admin/v1/clients/nope"),
        ("DELETE", "/admin/v1/apps/nope"),
        ("POST", "/admin/v1/apps/nope/rotate"),
        ("GET", "/admin/v1/nothing-here"),
    ] {
        let body = (m == "PATCH").then_some(r#"{"name": "x"}"#);
        let (s, _, v) = call(&e.c, &e.admin, m, p, Some(OPS), body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (404, Some("not_found")),
            "{m} {p}"
        );
    }
    let body = json!({"name": "x", "client_id": "twice"});
    assert_eq!(
        e.api("POST", "/admin/v1/apps", Some(body.clone())).await.0,
        201
    );
    let (s, v) = e.api("POST", "/admin/v1/apps", Some(body)).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("duplicate_id")));
    let (s, h, _) = call(
        &e.c,
        &e.admin,
        "PUT",
        "/admin/v1/apps/twice",
        Some(OPS),
        None,
    )
    .await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "GET, PATCH, DELETE");
}

#[tokio::test]
async fn every_change_is_audited_with_the_operator_and_paged() {
    let e = env().await;
    let (id, _) = e.new_client().await;
    e.api(
        "PATCH",
        &format!("/admin/v1/clients/{id}"),
        Some(json!({"scopes": []})),
    )
    .await;
    e.api("POST", &format!("/admin/v1/clients/{id}/rotate"), None)
        .await;
    e.api("DELETE", &format!("/admin/v1/clients/{id}"), None)
        .await;
    let (s, _, page1) = call(
        &e.c,
        &e.admin,
        "GET",
        "/admin/v1/audit?limit=3",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let path = format!("/admin/v1/audit?limit=3&cursor={cursor}");
    let (_, _, page2) = call(&e.c, &e.admin, "GET", &path, Some(AUDITOR), None).await;
    assert_eq!(page2["next_cursor"], Value::Null);
    let all: Vec<(String, String, String)> = items
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|i| {
            (
                i["actor"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = ["create", "update", "rotate", "delete"]
        .iter()
        .map(|a| ("ops".to_string(), a.to_string(), id.clone()))
        .collect();
    assert_eq!(all, want);
    assert!(
        items
            .iter()
            .all(|i| i["at"].as_u64().unwrap() >= e.clock.unix_secs_now() - 5)
    );
}

trait Now {
    fn unix_secs_now(&self) -> u64;
}
impl Now for ManualClock {
    fn unix_secs_now(&self) -> u64 {
        portcullis::clock::Clock::unix_secs(self)
    }
}

#[tokio::test]
async fn lists_page_with_limit_and_cursor() {
    let e = env().await;
    for i in 0..5 {
        let body = json!({"name": "x", "client_id": format!("app-{i}")});
        assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/v1/apps?limit=2".to_string();
    for _ in 0..10 {
        let (s, v) = e.api("GET", &path, None).await;
        assert_eq!(s, 200);
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["client_id"].as_str().unwrap().to_string()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/v1/apps?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["app-0", "app-1", "app-2", "app-3", "app-4", CONFIG_APP]
    );
}

#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let e = env().await;
    let r =
        e.c.get(format!("{}/admin/v1/openapi.json", e.admin))
            .bearer_auth(AUDITOR)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let served: Value = r.json().await.unwrap();
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/admin-api.openapi.json"
    ))
    .unwrap();
    let checked_in: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(served, checked_in);
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test]
async fn a_reload_that_defines_an_id_the_store_holds_is_refused() {
    let e = env().await;
    let body = json!({"name": "x", "client_id": "taken-app"});
    let (_, app) = e.api("POST", "/admin/v1/apps", Some(body)).await;
    let key = app["api_key"].as_str().unwrap().to_string();
    let path = e.gw.dir.join("portcullis.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[apps]]\nclient_id = \"taken-app\"\nkey_hash = \"sha256:{}\"\n",
        sha("another-key-0123456789abcdefghijklmnopqrstuvwxyz")
    ));
    std::fs::write(&path, text).unwrap();
    let r =
        e.c.post(format!("{}/reload", e.admin))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 422);
    let v = json(r).await;
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("taken-app") && problems.contains("admin API"),
        "{problems}"
    );
    assert!(
        problems.contains("portcullis.toml:"),
        "names the file and line: {problems}"
    );
    // The running config and the run-time app are unchanged.
    assert_eq!(reports(&e.c, &e.public(), "taken-app", &key).await.0, 200);
}
