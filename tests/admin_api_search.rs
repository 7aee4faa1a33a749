//! The console's reads of the credential API over the wire: clients and apps in one list
//! (`/admin/v1/applications`) searched by `q`, filtered by `kind`, paged in id order; `q` on the
//! per-kind lists; the audit trail of one application (`kind` + `id`, paged); who a token is
//! (`/admin/v1/operator`); bad filters are 422 naming the parameter.

mod admin_api_support;
mod common;

use admin_api_support::*;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or("-").to_string(),
                i["client_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(kind: &str, id: &str) -> (String, String) {
    (kind.to_string(), id.to_string())
}

#[tokio::test]
async fn one_list_holds_clients_and_apps_with_kind_source_and_status() {
    let e = env().await;
    let body = json!({"name": "Acme reporting", "client_id": "acme-reports"});
    assert_eq!(e.api("POST", "/admin/v1/clients", Some(body)).await.0, 201);
    let body = json!({"name": "Acme billing", "client_id": "acme-billing"});
    assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    // The same id may exist once per kind; both are listed, in a total order.
    let body = json!({"name": "Twin", "client_id": "acme-reports"});
    assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    let (s, v) = e.api("GET", "/admin/v1/applications", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids(&v),
        [
            pair("app", "acme-billing"),
            pair("app", "acme-reports"),
            pair("client", "acme-reports"),
            pair("app", CONFIG_APP),
            pair("client", CONFIG_CLIENT),
        ]
    );
    let items = v["items"].as_array().unwrap();
    let config = items.iter().find(|i| i["client_id"] == CONFIG_CLIENT);
    assert_eq!(config.unwrap()["source"], "config");
    assert_eq!(items[0]["source"], "store");
    assert_eq!(items[0]["status"], "active");
    assert!(!v.to_string().contains("sha256:"), "no hash in the list");
    let (_, v) = e.api("GET", "/admin/v1/applications?kind=app", None).await;
    assert_eq!(ids(&v).iter().filter(|(k, _)| k == "client").count(), 0);
    assert_eq!(ids(&v).len(), 3);
}

#[tokio::test]
async fn q_searches_ids_and_names_case_insensitively_on_every_list() {
    let e = env().await;
    for (id, name) in [("north-1", "Northwind Reports"), ("south-1", "Southwind")] {
        let body = json!({"name": name, "client_id": id});
        assert_eq!(e.api("POST", "/admin/v1/clients", Some(body)).await.0, 201);
    }
    let (_, v) = e
        .api("GET", "/admin/v1/applications?q=NORTHWIND", None)
        .await;
    assert_eq!(ids(&v), [pair("client", "north-1")]);
    let (_, v) = e.api("GET", "/admin/v1/applications?q=wind", None).await;
    assert_eq!(ids(&v).len(), 2);
    let (_, v) = e.api("GET", "/admin/v1/clients?q=south", None).await;
    assert_eq!(ids(&v), [pair("-", "south-1")]);
    let (_, v) = e.api("GET", "/admin/v1/apps?q=config", None).await;
    assert_eq!(ids(&v), [pair("-", CONFIG_APP)]);
    let (s, v) = e
        .api("GET", "/admin/v1/applications?q=nothing-like-it", None)
        .await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 0));
    assert_eq!(v["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_merged_list_pages_with_limit_and_cursor_and_keeps_the_search() {
    let e = env().await;
    for i in 0..3 {
        let body = json!({"name": format!("team {i}"), "client_id": format!("team-{i}")});
        assert_eq!(
            e.api("POST", "/admin/v1/clients", Some(body.clone()))
                .await
                .0,
            201
        );
        assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/v1/applications?q=team&limit=4".to_string();
    for _ in 0..5 {
        let (s, v) = e.api("GET", &path, None).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["items"].as_array().unwrap().len() <= 4);
        seen.extend(ids(&v));
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/admin/v1/applications?q=team&limit=4&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<_> = (0..3)
        .flat_map(|i| {
            let id = format!("team-{i}");
            [pair("app", &id), pair("client", &id)]
        })
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn the_audit_trail_of_one_application_is_filtered_by_kind_and_id_and_paged() {
    let e = env().await;
    let (a, _) = e.new_client().await;
    let (b, _) = e.new_client().await;
    for id in [&a, &b, &a] {
        let path = format!("/admin/v1/clients/{id}");
        let (s, _) = e
            .api("PATCH", &path, Some(json!({"status": "suspended"})))
            .await;
        assert_eq!(s, 200);
    }
    let body = json!({"name": "same id, other kind", "client_id": a});
    assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    let path = format!("/admin/v1/audit?kind=client&id={a}&limit=2");
    let (s, page1) = e.api("GET", &path, None).await;
    assert_eq!(s, 200, "{page1}");
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let (_, page2) = e.api("GET", &format!("{path}&cursor={cursor}"), None).await;
    assert_eq!(page2["next_cursor"], Value::Null);
    let trail: Vec<(String, String, String)> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("kind"), s("id"), s("action"))
        })
        .collect();
    let want: Vec<(String, String, String)> = ["create", "update", "update"]
        .iter()
        .map(|act| ("client".into(), a.clone(), act.to_string()))
        .collect();
    assert_eq!(trail, want);
    let (_, apps) = e
        .api("GET", &format!("/admin/v1/audit?kind=app&id={a}"), None)
        .await;
    assert_eq!(apps["items"].as_array().unwrap().len(), 1);
    let (_, all) = e.api("GET", "/admin/v1/audit", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn operator_names_the_token_and_its_scope() {
    let e = env().await;
    let (s, _, v) = call(&e.c, &e.admin, "GET", "/admin/v1/operator", Some(OPS), None).await;
    assert_eq!((s, v), (200, json!({"name": "ops", "scope": "write"})));
    let (s, _, v) = call(
        &e.c,
        &e.admin,
        "GET",
        "/admin/v1/operator",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!({"name": "auditor", "scope": "read"})));
    let (s, h, v) = call(
        &e.c,
        &e.admin,
        "GET",
        "/admin/v1/operator",
        Some("wrong"),
        None,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_token")));
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let (s, _, _) = call(&e.c, &e.admin, "GET", "/admin/v1/applications", None, None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_filters_are_422_naming_the_parameter() {
    let e = env().await;
    for (path, field) in [
        ("/admin/v1/applications?kind=robot", "kind"),
        ("/admin/v1/applications?status=active", "status"),
        ("/admin/v1/audit?q=x", "q"),
        ("/admin/v1/audit?kind=both", "kind"),
    ] {
        let (s, v) = e.api("GET", path, None).await;
        assert_eq!(s, 422, "{path}: {v}");
        assert_eq!(v["field"], field, "{path}: {v}");
        assert!(!v["fix"].as_str().unwrap().is_empty());
    }
    let long = format!("/admin/v1/applications?q={}", "x".repeat(201));
    let (s, v) = e.api("GET", &long, None).await;
    assert_eq!((s, v["field"].as_str()), (422, Some("q")));
}
