//! Forwarding: request ids, header hygiene, streaming bodies, upstream failures, pass-through.

mod common;
use std::time::Duration;

use bytes::Bytes;
use common::*;

#[tokio::test]
async fn request_id_is_accepted_propagated_and_minted() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/a"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    assert_eq!(up.last().headers["x-request-id"], "abc-123");

    let r = client()
        .get(gw.url("/v1/partner/user/a"))
        .header("x-request-id", "bad id\" injected")
        .send()
        .await
        .unwrap();
    let minted = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(minted.starts_with("req_") && minted.len() == 36, "{minted}");
    assert_eq!(up.last().headers["x-request-id"], minted.as_str());

    let r = client()
        .get(gw.url("/v1/partner/user/a"))
        .send()
        .await
        .unwrap();
    let a = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let r = client()
        .get(gw.url("/v1/partner/user/a"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        a,
        r.headers()["x-request-id"].to_str().unwrap(),
        "ids are unique"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarded_headers_set() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw = "GET /v1/partner/user/h HTTP/1.1\r\nHost: api.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9v\r\nUpgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\nX-Auth-Subject: forged\r\nX-End: kept\r\n\r\n";
    let resp = raw_exchange(gw.addr, raw.as_bytes(), Duration::from_secs(2)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The upstream's own hop-by-hop response header is not relayed.
    assert!(
        !resp.to_ascii_lowercase().contains("keep-alive: timeout"),
        "{resp}"
    );
    assert!(resp.contains("x-upstream: yes"));
    let h = up.last().headers;
    for gone in [
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
        "x-auth-subject",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the upstream");
    }
    assert_eq!(h["x-end"], "kept");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "untrusted XFF is replaced, not extended"
    );
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example");
    assert_eq!(h["host"], up.addr.to_string().as_str());
}

#[tokio::test]
async fn echo_target_describes_the_rewritten_request() {
    let gw = gateway(BASIC, None).await;
    let r = client()
        .post(gw.url("/v1/partner/admin/apps?page=2"))
        .header("x-auth-client-id", "forged")
        .header("x-custom", "1")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = json(r).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/v1/partner/admin/apps");
    assert_eq!(echo["query"], "page=2");
    assert_eq!(echo["body_bytes"], 5);
    assert_eq!(echo["headers"]["x-custom"][0], "1");
    assert!(echo["headers"].get("x-auth-client-id").is_none());
    assert!(
        echo["headers"]["x-request-id"][0]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
}

/// The upstream sees the first chunk while the client still holds the rest back: nothing is
/// buffered whole. 64 MiB more then stream through and are counted exactly.
#[tokio::test]
async fn bodies_stream_through() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let req = client()
        .post(gw.url("/big/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let resp = tokio::spawn(req);
    tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), up.first_chunk.notified())
        .await
        .expect("upstream saw the first chunk before the body ended");
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    for _ in 0..64 {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    drop(tx);
    let resp = resp.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().body_len, 5 + 64 * (1 << 20));
}

#[tokio::test]
async fn upstream_down_is_502_in_the_class_envelope() {
    let up = Upstream::start().await;
    let dead = up.addr;
    drop(up);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gw = gateway(BASIC, Some(dead)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(json(r).await["code"], "bad_gateway");
    let r = client().post(gw.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(json(r).await["error"], "bad_gateway");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client().get(gw.url("/slow/3000")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let body = json(r).await;
    assert_eq!(body["code"], "upstream_timeout");
    assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn upstream_error_statuses_and_bodies_pass_through() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for code in [400u16, 404, 500, 503] {
        let r = client()
            .get(gw.url(&format!("/status/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        assert_eq!(r.headers()["x-upstream"], "yes");
        assert!(r.headers().contains_key("x-request-id"));
        assert_eq!(
            r.text().await.unwrap(),
            format!("{{\"upstream_error\":{code}}}")
        );
    }
}

#[tokio::test]
async fn http2_prior_knowledge_reaches_an_http1_upstream() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(gw.url("/v1/partner/user/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(up.last().path, "/v1/partner/user/h2");
}
