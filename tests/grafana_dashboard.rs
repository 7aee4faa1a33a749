//! The Grafana dashboard (`contrib/grafana/portcullis.json`) names only series a live gateway
//! exports: every `portcullis_*` name in every panel expression and variable query is found in
//! `/metrics` after the traffic that creates it (requests of every kind, a reload, a
//! Redis-backed limiter whose Redis dies, a WebSocket tunnel).

mod common;
mod metrics_support;
mod redis_support;
mod ws_echo;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use redis_support::RedisServer;

const DASHBOARD: &str = include_str!("../contrib/grafana/portcullis.json");

/// Every `portcullis_*` name in `text`.
fn names_in(text: &str, out: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(i) = rest.find("portcullis_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
}

/// The series names the dashboard's panels and variables query.
fn dashboard_names() -> BTreeSet<String> {
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    let mut panels = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            names_in(target["expr"].as_str().unwrap(), &mut names);
            panels += 1;
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            names_in(q, &mut names);
        }
    }
    assert!(panels >= 15, "the dashboard has its panels ({panels})");
    names
}

/// A Redis-backed limiter: one request counted on Redis, then Redis dies and one more falls
/// back to the local limiter.
async fn redis_traffic() -> (TestGateway, RedisServer) {
    let mut redis = RedisServer::start().await;
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
[state]
backend = "redis"
url = "{url}"
timeout = "200ms"
connect_timeout = "200ms"
[classes.user]
limit = "100/1h"
errors = "partner"
[upstreams.app]
url = "http://{{UPSTREAM}}"
[[routes]]
name = "dash-redis"
path = "/r/"
class = "user"
upstream = "app"
"#,
        url = redis.url()
    );
    let up = Upstream::start().await;
    let gw = gateway(&cfg, Some(up.addr)).await;
    let get = || client().get(gw.url("/r/x")).timeout(Duration::from_secs(5));
    // The connection to Redis comes up in the background: wait for it (at most 5 s).
    for _ in 0..100 {
        if gw.gw.state_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = get().send().await.is_ok_and(|r| r.status() == 200);
    assert!(ok, "a request counted on Redis");
    redis.kill9();
    let r = get().send().await.unwrap();
    assert_eq!(r.status(), 200, "local fallback admits");
    (gw, redis)
}

/// A WebSocket tunnel opened, used and closed.
async fn tunnel_traffic() -> TestGateway {
    let up = ws_echo::EchoUpstream::start().await;
    let gw = gateway(&ws_echo::config(""), Some(up.addr)).await;
    let (mut ws, _) = ws_echo::connect(gw.addr, "/ws/dash", &ws_echo::ACME)
        .await
        .unwrap();
    assert_eq!(ws_echo::round_trip(&mut ws, "hi").await, "hi");
    ws.close(None).await.unwrap();
    assert!(ws_echo::closed(&mut ws).await);
    assert!(ws_echo::eventually(|| up.ended() == 1).await);
    gw
}

#[tokio::test]
async fn every_series_the_dashboard_names_is_exported() {
    let names = dashboard_names();
    let scene = metrics_support::start().await;
    scene.drive().await;
    let r = client()
        .post(format!("{}/reload", scene.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_redis_gw, _redis) = redis_traffic().await;
    let _tunnel_gw = tunnel_traffic().await;

    let mut missing: Vec<String> = Vec::new();
    // The tunnel's end is counted just after it closes: a bounded wait for the last series.
    for _ in 0..50 {
        let text = scene.scrape().await;
        let exported: BTreeSet<String> = metrics_support::samples(&text)
            .into_keys()
            .map(|s| s.split('{').next().unwrap_or("").to_string())
            .collect();
        missing = names
            .iter()
            .filter(|n| !exported.contains(*n))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        missing.is_empty(),
        "the dashboard names series /metrics does not export: {missing:?}"
    );
    for must in [
        "portcullis_route_requests_total",
        "portcullis_upstream_duration_seconds_bucket",
        "portcullis_state_duration_seconds_bucket",
        "portcullis_tokens_issued_total",
    ] {
        assert!(names.contains(must), "the dashboard shows {must}");
    }
}
