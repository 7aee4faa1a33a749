//! Slow and idle clients, slow upstreams: every wait is bounded, driven over real sockets.
//!
//! Each test reads the gateway's open connections (and, for held connections, this process's
//! memory) before and after, and asserts what the upstream received.

mod common;
mod wire;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::*;

fn with_limits(extra: &str) -> String {
    BASIC.replace("[limits]", &format!("[limits]\n{extra}"))
}

/// Connections that send nothing, a partial h2 preface, or a partial head: all closed after
/// `header_read_timeout`, none forwarded; the figures are printed for the closing note.
#[tokio::test]
async fn silent_and_partial_connections_are_closed_after_header_read_timeout() {
    let up = Upstream::start().await;
    let gw = gateway(
        &with_limits("header_read_timeout = \"400ms\""),
        Some(up.addr),
    )
    .await;
    const N: usize = 200;
    let rss_before = rss_kib();
    let mut conns = Vec::new();
    for i in 0..N {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        match i % 3 {
            0 => {}
            1 => send(&mut s, b"PRI * HTTP/2.0\r\n").await,
            _ => send(&mut s, b"GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\n").await,
        }
        conns.push(s);
    }
    assert!(eventually(Duration::from_secs(2), || gw.gw.connections().open() == N).await);
    let held_kib = rss_kib().saturating_sub(rss_before);
    let started = Instant::now();
    let mut longest = Duration::ZERO;
    for s in &mut conns {
        let (bytes, _) = read_until_closed(s, Duration::from_secs(5))
            .await
            .expect("closed within the bound");
        assert!(!String::from_utf8_lossy(&bytes).contains(" 200 "));
        longest = started.elapsed();
    }
    assert!(eventually(Duration::from_secs(2), || gw.gw.connections().open() == 0).await);
    assert!(
        longest >= Duration::from_millis(200),
        "not before the timeout"
    );
    assert_eq!(up.count(), 0, "nothing was forwarded");
    eprintln!(
        "FIGURES silent/partial: {N} connections held, rss +{held_kib} KiB ({} B/conn), all closed {:?} after the last was opened",
        held_kib * 1024 / N as u64,
        longest
    );
}

#[tokio::test]
async fn tls_handshake_that_never_starts_is_closed_after_tls_handshake_timeout() {
    let up = Upstream::start().await;
    let dir = temp_dir("tls-idle");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("server.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    let cfg = with_limits("tls_handshake_timeout = \"300ms\"").replace(
        "default_class = \"user\"",
        &format!(
            "default_class = \"user\"\ntls = {{ cert = \"{0}/server.pem\", key = \"{0}/server.key\" }}",
            dir.display()
        ),
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // Half a ClientHello record header, then nothing.
    send(&mut s, &[0x16, 0x03, 0x01]).await;
    assert!(eventually(Duration::from_secs(1), || gw.gw.connections().open() == 1).await);
    let (_, took) = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(eventually(Duration::from_secs(1), || gw.gw.connections().open() == 0).await);
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn keep_alive_connection_is_closed_after_client_idle_timeout() {
    let up = Upstream::start().await;
    let cfg = with_limits("client_idle_timeout = \"300ms\"\nheader_read_timeout = \"5s\"");
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut s,
        b"GET /v1/partner/user/a HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let head = read_head(&mut s).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_, took) = read_until_closed(&mut s, Duration::from_secs(4))
        .await
        .expect("the idle keep-alive connection is closed");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(eventually(Duration::from_secs(1), || gw.gw.connections().open() == 0).await);
    assert_eq!(up.count(), 1);
}

/// The client stops mid-body: 408 request_timeout with `Connection: close`, the upstream
/// request is aborted (its connection closed, never reused), and a later request opens a new one.
#[tokio::test]
async fn stalled_request_body_is_408_and_the_upstream_connection_is_not_reused() {
    let (up, log) = raw_upstream(|mut s, n, log| async move {
        let Some(head) = read_head(&mut s).await else {
            return;
        };
        log.heads.lock().unwrap().push((n, head.clone()));
        if head.contains("/stall") {
            return hold_until_closed(s, &log).await;
        }
        let mut body = vec![0u8; content_length(&head)];
        let _ = tokio::io::AsyncReadExt::read_exact(&mut s, &mut body).await;
        send(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        hold_until_closed(s, &log).await;
    })
    .await;
    let cfg = with_limits("body_idle_timeout = \"300ms\"");
    let gw = gateway(&cfg, Some(up)).await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut c,
        b"POST /v1/partner/user/stall HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    let (bytes, took) = read_until_closed(&mut c, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(took >= Duration::from_millis(200));
    assert!(eventually(Duration::from_secs(2), || log.closed_by_gateway() == 1).await);
    let r = client()
        .post(gw.url("/v1/partner/user/next"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        log.connections(),
        2,
        "the aborted connection was not reused"
    );
}

/// A body the gateway reads itself (the echo target) stalls: 408 too, not 400 or 502.
#[tokio::test]
async fn stalled_body_read_by_the_gateway_itself_is_408() {
    let gw = gateway(&with_limits("body_idle_timeout = \"300ms\""), None).await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut c,
        b"POST /v1/partner/admin/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\nabc",
    )
    .await;
    let (bytes, _) = read_until_closed(&mut c, Duration::from_secs(5))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(eventually(Duration::from_secs(1), || gw.gw.connections().open() == 0).await);
}

/// An upload that takes longer than `upstream_response_timeout` but never pauses for long is
/// not a 504: that timeout covers only the wait for the response head.
#[tokio::test]
async fn slow_upload_longer_than_the_response_timeout_is_not_504() {
    let up = Upstream::start().await;
    let cfg = BASIC.replace(
        "upstream_response_timeout = \"500ms\"",
        "upstream_response_timeout = \"300ms\"\nbody_idle_timeout = \"2s\"",
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut c,
        b"POST /v1/partner/user/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
    )
    .await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&mut c, b"x").await;
    }
    let head = read_head(&mut c).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(up.last().body_len, 10);
}

/// A client that never reads a large response is cut off after `client_write_timeout`; the
/// upstream connection is closed with it (nothing held).
#[tokio::test]
async fn slow_reader_is_cut_off_after_client_write_timeout() {
    let (up, log) = raw_upstream(|mut s, _, log| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        send(
            &mut s,
            b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
        )
        .await;
        let chunk = vec![b'x'; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(20), s.write_all(&chunk)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        log.closed_by_gateway
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .await;
    let gw = gateway(&with_limits("client_write_timeout = \"500ms\""), Some(up)).await;
    const N: usize = 20;
    let rss_before = rss_kib();
    let mut clients = Vec::new();
    for _ in 0..N {
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        send(
            &mut c,
            b"GET /v1/partner/user/big HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        clients.push(c);
    }
    assert!(eventually(Duration::from_secs(3), || log.connections() == N).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held_kib = rss_kib().saturating_sub(rss_before);
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || gw.gw.connections().open() == 0).await,
        "every slow reader was cut off"
    );
    let took = started.elapsed();
    assert!(eventually(Duration::from_secs(3), || log.closed_by_gateway() == N).await);
    eprintln!(
        "FIGURES slow readers: {N} held, rss +{held_kib} KiB ({} KiB/conn), all cut off {took:?} after the buffers filled",
        held_kib / N as u64
    );
    drop(clients);
}

/// An upstream that stalls mid-body is cut off after `upstream_body_idle_timeout`; the client's
/// response ends visibly incomplete (fewer bytes than its Content-Length, then close).
#[tokio::test]
async fn stalled_upstream_body_ends_the_response_incomplete() {
    let (up, log) = raw_upstream(|mut s, _, log| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        send(
            &mut s,
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789",
        )
        .await;
        hold_until_closed(s, &log).await;
    })
    .await;
    let gw = gateway(
        &with_limits("upstream_body_idle_timeout = \"300ms\""),
        Some(up),
    )
    .await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut c,
        b"GET /v1/partner/user/stall HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    let (bytes, took) = read_until_closed(&mut c, Duration::from_secs(5))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(
        body, "0123456789",
        "the response ends short of its 1000 bytes"
    );
    assert!(took >= Duration::from_millis(200));
    assert!(eventually(Duration::from_secs(2), || log.closed_by_gateway() == 1).await);
}

#[tokio::test]
async fn writes_are_not_cut_off_while_the_client_reads() {
    let up = Upstream::start().await;
    let gw = gateway(
        &with_limits("client_write_timeout = \"300ms\""),
        Some(up.addr),
    )
    .await;
    let r = client()
        .post(gw.url("/v1/partner/user/echo"))
        .body(vec![b'y'; 512 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    c.write_all(b"GET /v1/partner/user/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (bytes, _) = read_until_closed(&mut c, Duration::from_secs(3))
        .await
        .expect("closed");
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 200"));
}

/// A client that closes its side mid-body broke its own request: 400, not 502.
#[tokio::test]
async fn client_closing_mid_body_is_400_not_502() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    send(
        &mut c,
        b"POST /v1/partner/user/cut HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await;
    c.shutdown().await.unwrap();
    let (bytes, _) = read_until_closed(&mut c, Duration::from_secs(5))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\":\"invalid_request\""), "{text}");
}
