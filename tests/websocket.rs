//! WebSocket over HTTP/1.1 (RFC 6455) through the gateway: the whole policy first, then a
//! tunnel to a real echo upstream; refusals open nothing; caps; access log and metrics.

mod common;
mod ws_echo;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use ws_echo::*;

#[tokio::test]
async fn authenticated_upgrade_echoes_both_ways_with_identity_and_no_credentials() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let mut headers = ACME.to_vec();
    headers.push(("x-auth-subject", "forged"));
    let (mut ws, answer) = connect(gw.addr, "/ws/live?room=7", &headers).await.unwrap();
    assert!(answer.contains_key("x-request-id"));
    assert_eq!(round_trip(&mut ws, "hello").await, "hello");
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let back = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await;
    assert!(matches!(back, Ok(Some(Ok(Message::Binary(b)))) if b[..] == [0, 1, 2, 255]));
    assert_eq!(round_trip(&mut ws, "twice").await, "twice");

    let seen = up.last();
    assert_eq!(seen.path, "/ws/live");
    let h = &seen.headers;
    assert_eq!(h["x-auth-subject"], "acme");
    assert_eq!(h["x-auth-client-id"], "acme");
    assert!(
        !h.contains_key("x-api-key"),
        "the consumed key reached the upstream"
    );
    assert_eq!(h["upgrade"], "websocket");
    assert!(h.contains_key("sec-websocket-key"));
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(gw.gw.shared().tunnels.open(), 1);
    ws.close(None).await.unwrap();
    assert!(closed(&mut ws).await);
    assert!(eventually(|| gw.gw.shared().tunnels.open() == 0).await);
    assert!(eventually(|| up.ended() == 1).await);
}

#[tokio::test]
async fn missing_key_is_401_and_opens_no_tunnel() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let (status, body) = connect(gw.addr, "/ws/live", &[]).await.unwrap_err();
    assert_eq!(status, 401);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "missing_api_key");
    let (status, _) = connect(
        gw.addr,
        "/ws/live",
        &[("x-api-key", "pk_wrong"), ("x-client-id", "acme")],
    )
    .await
    .unwrap_err();
    assert_eq!(status, 401);
    assert_eq!(
        up.connections(),
        0,
        "a refused upgrade reached the upstream"
    );
    assert_eq!(gw.gw.shared().tunnels.open(), 0);
}

#[tokio::test]
async fn missing_scope_is_403_and_opens_no_tunnel() {
    let up = EchoUpstream::start().await;
    let cfg = config("").replace(
        "scopes = [\"live:read\"]\nupstream",
        "scopes = [\"live:write\"]\nupstream",
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let (status, body) = connect(gw.addr, "/ws/live", &ACME).await.unwrap_err();
    assert_eq!(status, 403, "{body}");
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn route_without_websocket_refuses_the_upgrade_with_400() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let (status, body) = connect(gw.addr, "/plain/live", &ACME).await.unwrap_err();
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "websocket_not_allowed");
    assert!(v["request_id"].is_string());
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn malformed_upgrade_is_400_and_not_forwarded() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let ask = "Host: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-API-Key: {KEY}\r\nX-Client-ID: acme\r\n";
    let ask = ask.replace("{KEY}", KEY);
    let post = format!("POST /ws/live HTTP/1.1\r\n{ask}Content-Length: 2\r\n\r\nhi");
    let resp = raw_exchange(gw.addr, post.as_bytes(), Duration::from_secs(1)).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("invalid_request"));
    assert_eq!(up.connections(), 0);
}

/// `Upgrade: h2c` is never honoured: forwarded as a plain request without `Upgrade`.
#[tokio::test]
async fn h2c_upgrade_is_stripped_and_answered_plainly() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let req = b"GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let resp = raw_exchange(gw.addr, req, Duration::from_secs(1)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let seen = up.last();
    assert!(!seen.headers.contains_key("upgrade"));
    assert!(!seen.headers.contains_key("http2-settings"));
}

/// The existing rule holds on a WebSocket route too: a `101` to a request that asked for no
/// upgrade is `502`.
#[tokio::test]
async fn unsolicited_101_on_a_websocket_route_is_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").await;
        }
    });
    let gw = gateway(&config(""), Some(addr)).await;
    let r = client()
        .get(gw.url("/ws/live"))
        .header("x-api-key", KEY)
        .header("x-client-id", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(json(r).await["code"], "bad_gateway");
}

#[tokio::test]
async fn per_ip_cap_is_429_and_the_place_comes_back() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config("[tunnels]\nmax_per_ip = 1"), Some(up.addr)).await;
    let (mut first, _) = connect(gw.addr, "/ws/a", &ACME).await.unwrap();
    let (status, body) = connect(gw.addr, "/ws/b", &ACME).await.unwrap_err();
    assert_eq!(status, 429);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "too_many_tunnels");
    assert_eq!(
        up.connections(),
        1,
        "the refused upgrade reached the upstream"
    );
    assert_eq!(round_trip(&mut first, "still here").await, "still here");
    first.close(None).await.unwrap();
    assert!(closed(&mut first).await);
    assert!(eventually(|| gw.gw.shared().tunnels.open() == 0).await);
    let (mut again, _) = connect(gw.addr, "/ws/c", &ACME).await.unwrap();
    assert_eq!(round_trip(&mut again, "again").await, "again");
}

#[tokio::test]
async fn total_cap_is_503() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config("[tunnels]\nmax_total = 1"), Some(up.addr)).await;
    let (_first, _) = connect(gw.addr, "/ws/a", &ACME).await.unwrap();
    let (status, body) = connect(gw.addr, "/ws/b", &ACME).await.unwrap_err();
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "service_unavailable");
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn an_upstream_refusal_is_relayed_and_a_2xx_is_502() {
    // An upstream that is no WebSocket server: `/status/403` answers 403, `/ws/x` 200.
    let up = Upstream::start().await;
    let status_route =
        "[[routes]]\npath = \"/status/\"\nclass = \"user\"\nupstream = \"ws\"\nwebsocket = true";
    let gw = gateway(&config(status_route), Some(up.addr)).await;
    let (status, body) = connect(gw.addr, "/status/403", &[]).await.unwrap_err();
    assert_eq!(status, 403);
    assert!(body.contains("upstream_error"), "{body}");
    let (status, body) = connect(gw.addr, "/ws/x", &ACME).await.unwrap_err();
    assert_eq!(status, 502, "{body}");
    assert_eq!(gw.gw.shared().tunnels.open(), 0);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_counted_as_a_connect_error() {
    let gw = gateway(&config(""), None).await;
    let admin = admin_listener(&gw.gw).await;
    let (status, body) = connect(gw.addr, "/ws/down", &ACME).await.unwrap_err();
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("bad_gateway"), "{body}");
    assert_eq!(gw.gw.shared().tunnels.open(), 0);
    let text = client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = text.lines().any(|l| {
        l.starts_with("portcullis_upstream_errors_total{")
            && l.contains("upstream=\"ws\"")
            && l.contains("kind=\"connect\"")
    });
    assert!(counted, "{text}");
}

#[tokio::test]
async fn open_tunnels_are_a_metric() {
    let up = EchoUpstream::start().await;
    let gw = gateway(&config(""), Some(up.addr)).await;
    let admin = admin_listener(&gw.gw).await;
    let (mut ws, _) = connect(gw.addr, "/ws/m", &ACME).await.unwrap();
    assert_eq!(round_trip(&mut ws, "m").await, "m");
    let text = client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_tunnels_open "))
        .unwrap_or_else(|| panic!("no portcullis_tunnels_open in {text}"))
        .parse()
        .unwrap();
    assert!(open >= 1.0, "{text}");
    drop(ws);
    assert!(eventually(|| up.ended.load(Ordering::SeqCst) == 1).await);
}

fn check(cfg: &str) -> (i32, String, String) {
    check_text(cfg)
}

#[test]
fn check_notes_relaxed_tunnel_limits_and_refuses_bad_ones() {
    let (code, out, _) = check(&config(""));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("tunnels."), "{out}");
    let (code, out, _) = check(&config("[tunnels]\nidle_timeout = \"5m\"\nmax_per_ip = 64"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("note: tunnels.idle_timeout = 300s is longer than the default 60s"),
        "{out}"
    );
    assert!(
        out.contains("note: tunnels.max_per_ip = 64 is higher than the default 16"),
        "{out}"
    );
    let (code, _, err) = check(&config("[tunnels]\nmax_total = 0"));
    assert_eq!(code, 1);
    assert!(
        err.contains("tunnels.max_total: a cap of 0 would refuse every WebSocket"),
        "{err}"
    );
    assert!(err.contains("portcullis.toml:"), "{err}");
    let echo = config("").replace("url = \"http://{UPSTREAM}\"", "kind = \"echo\"");
    let (code, _, err) = check(&echo);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "routes[0].websocket: websocket = true needs an upstream with an http or https url"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_rate_limit_runs_before_the_upgrade() {
    let up = EchoUpstream::start().await;
    let cfg = config("").replace(
        "[classes.user]\nerrors = \"partner\"",
        "[classes.user]\nerrors = \"partner\"\nlimit = \"1/1m\"",
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let (mut ws, answer) = connect(gw.addr, "/ws/a", &ACME).await.unwrap();
    assert!(answer.contains_key("ratelimit"), "{answer:?}");
    assert_eq!(round_trip(&mut ws, "one").await, "one");
    let (status, body) = connect(gw.addr, "/ws/b", &ACME).await.unwrap_err();
    assert_eq!(status, 429);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "rate_limit_exceeded");
    assert_eq!(
        up.connections(),
        1,
        "the limited upgrade reached the upstream"
    );
}
