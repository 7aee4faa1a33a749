//! The credential API's edges over the wire: operator tokens (401 with `WWW-Authenticate`, 403
//! for a read token writing); the API is off without tokens and never on the public listener;
//! 422 with the field and the fix for every malformed body or query, never 500; 404, 409, 405;
//! audit and list pagination; the served OpenAPI document is the checked-in one.

mod admin_api_support;
mod common;

use admin_api_support::*;
use common::*;
use portcullis::clock::Clock;
use serde_json::{Value, json};

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
            .all(|i| i["at"].as_u64().unwrap() >= e.clock.unix_secs() - 5)
    );
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
async fn an_oversized_body_is_413_and_creates_nothing() {
    let e = env().await;
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(70 * 1024));
    let (s, _, v) = call(
        &e.c,
        &e.admin,
        "POST",
        "/admin/v1/apps",
        Some(OPS),
        Some(&big),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (413, Some("payload_too_large")));
    let (_, _, list) = call(&e.c, &e.admin, "GET", "/admin/v1/apps", Some(OPS), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only the config app"
    );
}
