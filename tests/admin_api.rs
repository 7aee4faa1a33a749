//! The credential API over the wire, embedded store: a client created through the admin API
//! gets a token that reaches the upstream; an app authenticates with its key; lists never reveal
//! a secret; rotation keeps the old secret for the overlap only (manual clock); suspension and
//! deletion refuse live tokens and keys on the next request; config-defined credentials are
//! read-only; an id in both config and store refuses a reload.

mod admin_api_support;
mod common;

use admin_api_support::*;
use common::*;
use serde_json::json;

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

#[tokio::test]
async fn a_public_client_gets_no_secret_and_has_none_to_rotate() {
    let e = env().await;
    let body = json!({
        "name": "Mobile app",
        "type": "public",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://127.0.0.1:7777/callback", "https://app.example/cb"],
        "scopes": ["meetings:read"],
    });
    let (s, v) = e.api("POST", "/admin/v1/clients", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["type"], "public");
    assert!(v.get("client_secret").is_none(), "{v}");
    let id = v["client_id"].as_str().unwrap();
    let (s, v) = e
        .api("POST", &format!("/admin/v1/clients/{id}/rotate"), None)
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("public_client")));
    // It cannot use client_credentials without a secret.
    let r =
        e.c.post(format!("{}/oauth2/token", e.public()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials&client_id={id}"))
            .send()
            .await
            .unwrap();
    assert!(r.status() == 400 || r.status() == 401, "{}", r.status());
    assert_eq!(e.up.count(), 0);
}
