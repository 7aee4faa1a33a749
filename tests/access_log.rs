//! Access log: one JSON event per request with the fields operators search by, written when the
//! response body ends (own binary: it installs the global log subscriber, shared by its tests;
//! each test finds its events by request id).

mod common;
mod metrics_support;

use std::time::Duration;

use common::*;

fn logs() -> &'static LogBuf {
    global_json_logs()
}

/// The access events of request `id`, waiting up to 5 s for the first.
async fn events(id: &str) -> Vec<serde_json::Value> {
    let find = || -> Vec<serde_json::Value> {
        logs()
            .text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["request_id"] == id)
            .collect()
    };
    let started = std::time::Instant::now();
    while find().is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    find()
}

/// The one access event of request `id`.
async fn event(id: &str) -> serde_json::Value {
    let all = events(id).await;
    assert_eq!(all.len(), 1, "{id}: {}", logs().text());
    all.into_iter().next().unwrap()
}

#[tokio::test]
async fn one_json_event_per_request() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/logged?q=1"))
        .header("x-request-id", "log-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    let r = client()
        .get(gw.url("/missing"))
        .header("x-request-id", "log-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let refused = r.bytes().await.unwrap();

    let ok = event("log-me").await;
    assert_eq!(
        ok["route"], "/v1/partner/user",
        "an unnamed route is named by its prefix"
    );
    assert_eq!(ok["class"], "user");
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/v1/partner/user/logged");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["upstream"], "app");
    assert_eq!(ok["auth"], "none");
    assert_eq!(ok["principal"], "");
    assert_eq!(ok["code"], "", "nothing refused");
    assert_eq!(ok["bytes_in"], 0);
    assert_eq!(ok["bytes_out"], body.len() as u64);
    assert_eq!(ok["complete"], true);
    assert!(ok["latency_us"].as_u64().is_some());
    assert!(ok["upstream_latency_us"].as_u64().is_some());
    let missing = event("log-404").await;
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["route"], "-");
    assert_eq!(missing["code"], "not_found");
    assert_eq!(missing["bytes_out"], refused.len() as u64);
    assert!(
        missing.get("upstream_latency_us").is_none(),
        "nothing went upstream: {missing}"
    );
}

#[tokio::test]
async fn a_post_logs_the_bytes_each_way_and_the_upstream_latency() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let sent = vec![b'x'; 70_000];
    let r = client()
        .post(gw.url("/slow/150"))
        .header("x-request-id", "log-post")
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(up.last().body_len, sent.len(), "the upstream got the body");
    let e = event("log-post").await;
    assert_eq!(e["method"], "POST");
    assert_eq!(e["bytes_in"], sent.len() as u64);
    assert_eq!(e["bytes_out"], body.len() as u64);
    let upstream = e["upstream_latency_us"].as_u64().unwrap();
    let total = e["latency_us"].as_u64().unwrap();
    assert!(upstream >= 150_000, "the upstream waited 150 ms: {e}");
    assert!(total >= upstream, "{e}");
}

#[tokio::test]
async fn a_refused_body_is_logged_with_its_code_and_nothing_forwarded() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .post(gw.url("/v1/partner/user/big"))
        .header("x-request-id", "log-413")
        .body(vec![b'y'; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e = event("log-413").await;
    assert_eq!(e["status"], 413);
    assert_eq!(e["code"], "payload_too_large");
    assert_eq!(e["route"], "/v1/partner/user");
    assert_eq!(up.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn bearer_and_api_key_requests_log_principal_and_method() {
    logs();
    let scene = metrics_support::start().await;
    let token = scene.token().await;
    let r = client()
        .get(scene.gw.url("/bearer/who"))
        .header("x-request-id", "log-bearer")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(scene.gw.url("/keyed/who"))
        .header("x-request-id", "log-key")
        .header("x-api-key", metrics_support::API_KEY)
        .header("x-client-id", metrics_support::APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(scene.gw.url("/keyed/who"))
        .header("x-request-id", "log-key-missing")
        .header("x-client-id", metrics_support::APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(scene.bad_token_request("log-bad-secret").await, 401);
    let bad = event("log-bad-secret").await;
    assert_eq!(bad["code"], "invalid_client", "the token service's refusal");
    assert_eq!(bad["route"], "obs-oauth");
    let bearer = event("log-bearer").await;
    assert_eq!(bearer["auth"], "bearer");
    assert_eq!(bearer["principal"], metrics_support::CLIENT);
    assert_eq!(bearer["route"], "obs-bearer");
    let seen = scene.up.requests();
    let who: Vec<_> = seen.iter().filter(|s| s.path.ends_with("/who")).collect();
    assert_eq!(who[0].headers["x-auth-subject"], metrics_support::CLIENT);
    let keyed = event("log-key").await;
    assert_eq!(keyed["auth"], "api_key");
    assert_eq!(keyed["principal"], metrics_support::APP);
    let refused = event("log-key-missing").await;
    assert_eq!(refused["auth"], "none");
    assert_eq!(refused["principal"], "");
    assert_eq!(refused["code"], "missing_api_key");
    assert_eq!(who.len(), 2, "the refused request was not forwarded");
}

#[tokio::test]
async fn a_bodyless_answer_is_logged_when_its_response_is_dropped() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .head(gw.url("/v1/partner/user/head"))
        .header("x-request-id", "log-head")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().method, "HEAD");
    let e = event("log-head").await;
    assert_eq!(e["method"], "HEAD");
    assert_eq!(e["bytes_out"], 0, "a HEAD answer has no body");
    assert_eq!(e["complete"], true);
}

#[tokio::test]
async fn a_response_cut_off_midway_is_logged_incomplete_with_the_bytes_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    logs();
    // An upstream that promises 1000 bytes, sends 10 and stalls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789";
            let _ = s.write_all(head).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    });
    let cfg = BASIC.replace(
        "[limits]\n",
        "[limits]\nupstream_body_idle_timeout = \"200ms\"\n",
    );
    let gw = gateway(&cfg, Some(addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/stall"))
        .header("x-request-id", "log-cut")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body ended short");
    let e = event("log-cut").await;
    assert_eq!(e["complete"], false);
    assert_eq!(e["bytes_out"], 10);
    assert!(e["latency_us"].as_u64().unwrap() >= 200_000, "{e}");
}

#[tokio::test]
async fn a_405_is_logged_under_the_route_that_owns_the_path() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .delete(gw.url("/v1/partner/admin/apps"))
        .header("x-request-id", "log-405")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let _ = r.bytes().await.unwrap();
    let ev = event("log-405").await;
    assert_eq!(
        ev["route"], "/v1/partner/admin",
        "the owner, as in the metrics"
    );
    assert_eq!(ev["class"], "admin");
    assert_eq!(ev["code"], "method_not_allowed");
    assert_eq!(up.count(), 0, "nothing forwarded");
}
