//! Limits: head size (431), body size (413), slow clients, smuggling-shaped framing.

mod common;
use std::time::Duration;

use common::*;

#[tokio::test]
async fn oversized_head_is_431_and_not_forwarded() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .header("x-big", "a".repeat(9000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(json(r).await["code"], "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn declared_oversized_body_is_413_and_not_forwarded() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .post(gw.url("/v1/partner/user/x"))
        .body(vec![0u8; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await["code"], "payload_too_large");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn chunked_body_over_the_cap_is_413() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![1u8; 512 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = client()
        .post(gw.url("/v1/partner/admin/x"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await["code"], "payload_too_large");
}

/// hyper drops Content-Length when Transfer-Encoding is present and closes the connection after
/// the response (RFC 9112 section 6.1 allows this instead of a 400), so the pipeline never sees
/// both. What matters holds: the request is framed by chunked alone and the bytes smuggled
/// behind it are never parsed as a second request, let alone forwarded.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw = "POST /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/partner/user/smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let resp = raw_exchange(gw.addr, raw.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(
        resp.matches("HTTP/1.1 ").count(),
        1,
        "exactly one response, then close: {resp}"
    );
    assert!(
        up.requests()
            .iter()
            .all(|s| s.path != "/v1/partner/user/smuggled"),
        "smuggled request forwarded"
    );
    for seen in up.requests() {
        assert_eq!(seen.body_len, 0, "the body is framed by chunked alone");
        assert!(
            !seen.headers.contains_key("content-length") || seen.headers["content-length"] == "0"
        );
    }
}

#[tokio::test]
async fn transfer_encoding_other_than_chunked_is_refused() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked"] {
        let raw = format!(
            "POST /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\nConnection: close\r\n\r\n0\r\n\r\n"
        );
        let resp = raw_exchange(gw.addr, raw.as_bytes(), Duration::from_secs(2)).await;
        assert!(
            resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.1 501"),
            "{te}: {resp}"
        );
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn slow_client_is_cut_off_by_the_header_read_timeout() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace("[limits]", "[limits]\nheader_read_timeout = \"300ms\"");
    let gw = gateway(&cfg, Some(up.addr)).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the gateway must close a connection whose head never completes"
    );
    assert_eq!(up.count(), 0);
}

/// The bound holds for every head on a kept-alive connection, not only the first: a second
/// request whose head stalls is cut off after `header_read_timeout` (not `client_idle_timeout`),
/// and only the first request reached the upstream.
#[tokio::test]
async fn a_stalled_second_head_on_a_kept_connection_is_cut_off() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace(
        "[limits]",
        "[limits]\nheader_read_timeout = \"300ms\"\nclient_idle_timeout = \"30s\"",
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /v1/partner/user/one HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut first))
        .await
        .expect("the first answer")
        .unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // Kept idle well inside client_idle_timeout, then half a head.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(b"GET /v1/partner/user/two HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled head must close the connection");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "not before the bound: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "at most a quarter late: {took:?}"
    );
    assert_eq!(up.count(), 1, "only the complete request was forwarded");
}
