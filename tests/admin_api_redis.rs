//! The credential API on the Redis backend, two gateway instances on one real redis-server: a
//! client created on A gets a token on B; suspending it on A refuses its live token on B within
//! the revocation feed's poll, and deleting an app on A refuses its key on B; restarting an
//! instance keeps everything created at run time.

mod admin_api_support;
mod common;
mod redis_support;

use std::time::{Duration, Instant};

use admin_api_support::*;
use common::*;
use redis_support::RedisServer;
use serde_json::{Value, json};

struct Instance {
    gw: TestGateway,
    admin: String,
}

impl Instance {
    fn public(&self) -> String {
        format!("http://{}", self.gw.addr)
    }
}

async fn instance(text: &str, up: &Upstream) -> Instance {
    let gw = gateway(text, Some(up.addr)).await;
    let r = gw.gw.redis().expect("redis backend");
    assert!(r.wait_up(Duration::from_secs(5)).await, "never saw Redis");
    let admin = admin_listener(&gw.gw).await;
    Instance { gw, admin }
}

fn redis_config(redis: &RedisServer, dir: &std::path::Path) -> String {
    let state = format!(
        "[state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"\n",
        redis.url()
    );
    config(dir, &state, true)
}

async fn api(
    c: &reqwest::Client,
    at: &Instance,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let body = body.to_string();
    let (s, _, v) = call(c, &at.admin, method, path, Some(OPS), Some(&body)).await;
    (s, v)
}

/// Polls `f` until it returns `want` (at most 3 s, 30 tries); returns the time it took.
async fn until<F, Fut>(want: u16, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = Instant::now();
    for _ in 0..30 {
        if f().await == want {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never answered {want} within 3 s");
}

#[tokio::test]
async fn changes_on_one_instance_apply_on_the_other() {
    let redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let dir = temp_dir("admin-api-redis");
    let text = redis_config(&redis, &dir);
    let a = instance(&text, &up).await;
    let b = instance(&text, &up).await;
    let c = client();

    let body = json!({"name": "shared", "scopes": ["meetings:read"]});
    let (s, v) = api(&c, &a, "POST", "/admin/v1/clients", body).await;
    assert_eq!(s, 201, "{v}");
    let id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    // B learns about the client through the feed, then issues a token for it.
    until(200, || async {
        cc_token(&c, &b.public(), &id, &secret).await.0
    })
    .await;
    let (_, t) = cc_token(&c, &b.public(), &id, &secret).await;
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(meetings(&c, &a.public(), &token).await, 200);
    assert_eq!(meetings(&c, &b.public(), &token).await, 200);
    // B lists it too (read from the shared store).
    let (_, _, list) = call(
        &c,
        &b.admin,
        "GET",
        "/admin/v1/clients",
        Some(AUDITOR),
        None,
    )
    .await;
    assert!(list.to_string().contains(&id));

    let path = format!("/admin/v1/clients/{id}");
    api(&c, &a, "PATCH", &path, json!({"status": "suspended"})).await;
    assert_eq!(meetings(&c, &a.public(), &token).await, 401, "at once on A");
    let took = until(401, || async { meetings(&c, &b.public(), &token).await }).await;
    assert!(took < Duration::from_secs(2), "B refused it after {took:?}");
    let before = up.count();
    assert_eq!(meetings(&c, &b.public(), &token).await, 401);
    assert_eq!(up.count(), before, "nothing reached the upstream");

    let (_, app) = api(
        &c,
        &b,
        "POST",
        "/admin/v1/apps",
        json!({"name": "x", "client_id": "redis-app"}),
    )
    .await;
    let key = app["api_key"].as_str().unwrap().to_string();
    until(200, || async {
        reports(&c, &a.public(), "redis-app", &key).await.0
    })
    .await;
    let (s, _, _) = call(
        &c,
        &a.admin,
        "DELETE",
        "/admin/v1/apps/redis-app",
        Some(OPS),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(reports(&c, &a.public(), "redis-app", &key).await.0, 401);
    until(401, || async {
        reports(&c, &b.public(), "redis-app", &key).await.0
    })
    .await;

    // A third instance started now sees every change made so far.
    let third = instance(&text, &up).await;
    assert_eq!(meetings(&c, &third.public(), &token).await, 401);
    api(&c, &a, "PATCH", &path, json!({"status": "active"})).await;
    until(200, || async {
        meetings(&c, &third.public(), &token).await
    })
    .await;
    let (_, _, audit) = call(
        &c,
        &third.admin,
        "GET",
        "/admin/v1/audit",
        Some(AUDITOR),
        None,
    )
    .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "update", "create", "delete", "update"]);
    drop(third.gw);
}
