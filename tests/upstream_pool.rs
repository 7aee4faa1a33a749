//! Upstream connection pool, over the wire: connections are reused, a connection the upstream
//! closed never turns into a 502, an abandoned response body does not poison the pool, and the
//! idle limit holds. The upstreams here are raw TCP servers that count the connections they
//! accept, so reuse is observed from the upstream's side.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{client, gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a raw upstream answers.
#[derive(Clone, Copy)]
enum Mode {
    /// Keep-alive, `Content-Length` body.
    KeepAlive,
    /// Keep-alive, chunked body.
    Chunked,
    /// Answers one request (without `Connection: close`), then closes the socket.
    CloseAfterOne,
    /// Keep-alive, a 1 MiB body sent slowly in 64 KiB pieces.
    SlowLarge,
}

struct RawUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Connections the gateway closed (or that ended).
    closed: Arc<AtomicUsize>,
}

async fn raw_upstream(mode: Mode) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (acc, reqs, done) = (accepted.clone(), requests.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            acc.fetch_add(1, Ordering::SeqCst);
            let (reqs, done) = (reqs.clone(), done.clone());
            tokio::spawn(async move {
                serve_raw(stream, mode, reqs).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    RawUpstream {
        addr,
        accepted,
        requests,
        closed,
    }
}

/// Reads request heads (no request bodies in these tests) and answers per `mode`.
async fn serve_raw(mut s: TcpStream, mode: Mode, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let is_head = buf.starts_with(b"HEAD ");
        buf.drain(..head_end);
        requests.fetch_add(1, Ordering::SeqCst);
        let ok = match mode {
            _ if is_head => s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n")
                .await
                .is_ok(),
            Mode::KeepAlive | Mode::CloseAfterOne => s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world")
                .await
                .is_ok(),
            Mode::Chunked => s
                .write_all(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                )
                .await
                .is_ok(),
            Mode::SlowLarge => slow_large(&mut s).await,
        };
        if !ok || matches!(mode, Mode::CloseAfterOne) {
            return;
        }
    }
}

async fn slow_large(s: &mut TcpStream) -> bool {
    let piece = vec![b'x'; 64 * 1024];
    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    for _ in 0..16 {
        if s.write_all(&piece).await.is_err() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn config(idle_per_host: usize) -> String {
    config_with(idle_per_host, "90s")
}

fn config_with(idle_per_host: usize, idle_timeout: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "open"

[limits]
upstream_response_timeout = "2s"
upstream_connect_timeout = "500ms"
upstream_pool_idle_per_host = {idle_per_host}
upstream_pool_idle_timeout = "{idle_timeout}"

[classes.open]
errors = "partner"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[[routes]]
path = "/"
class = "open"
upstream = "app"
"#
    )
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    for mode in [Mode::KeepAlive, Mode::Chunked] {
        let up = raw_upstream(mode).await;
        let gw = gateway(&config(64), Some(up.addr)).await;
        let c = client();
        for i in 0..20 {
            let resp = c.get(gw.url(&format!("/item/{i}"))).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await.unwrap(), "hello world");
        }
        assert_eq!(up.requests.load(Ordering::SeqCst), 20);
        assert_eq!(
            up.accepted.load(Ordering::SeqCst),
            1,
            "one pooled connection"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn concurrent_requests_open_at_most_one_connection_each_and_reuse_them() {
    let up = raw_upstream(Mode::KeepAlive).await;
    let gw = gateway(&config(64), Some(up.addr)).await;
    let c = client();
    for _round in 0..3 {
        let sends = (0..8).map(|i| c.get(gw.url(&format!("/c/{i}"))).send());
        for resp in futures_util::future::join_all(sends).await {
            assert_eq!(resp.unwrap().status(), 200);
        }
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 24);
    let opened = up.accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "24 requests, 8 at a time, opened {opened} connections"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_never_a_502() {
    let up = raw_upstream(Mode::CloseAfterOne).await;
    let gw = gateway(&config(64), Some(up.addr)).await;
    let c = client();
    for i in 0..10 {
        let resp = c.get(gw.url(&format!("/r/{i}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        // Give the closed connection time to sit in the pool (the stale-connection case).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 10);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 10);
    gw.stop().await;
}

#[tokio::test]
async fn an_abandoned_response_body_does_not_poison_the_pool() {
    let up = raw_upstream(Mode::SlowLarge).await;
    let gw = gateway(&config(64), Some(up.addr)).await;
    // A client reads the head and a little body, then goes away.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    // The next request must get a whole, correct body.
    let resp = client().get(gw.url("/big")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1024 * 1024);
    // The abandoned exchange's connection was not reused mid-body.
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

#[tokio::test]
async fn idle_limit_zero_keeps_no_connection() {
    let up = raw_upstream(Mode::KeepAlive).await;
    let gw = gateway(&config(0), Some(up.addr)).await;
    let c = client();
    for i in 0..5 {
        let resp = c.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "hello world");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 5);
    gw.stop().await;
}

#[tokio::test]
async fn head_and_no_body_responses_keep_the_connection() {
    let up = raw_upstream(Mode::KeepAlive).await;
    let gw = gateway(&config(64), Some(up.addr)).await;
    let c = client();
    for i in 0..4 {
        let resp = c.head(gw.url(&format!("/h/{i}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let resp = c.get(gw.url(&format!("/g/{i}"))).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "hello world");
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 8);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn idle_connections_past_the_idle_timeout_are_closed_and_not_reused() {
    let up = raw_upstream(Mode::KeepAlive).await;
    let gw = gateway(&config_with(64, "300ms"), Some(up.addr)).await;
    let c = client();
    assert_eq!(c.get(gw.url("/a")).send().await.unwrap().status(), 200);
    assert_eq!(up.closed.load(Ordering::SeqCst), 0, "kept while fresh");
    // The sweep (every second) closes it once it has idled past 300 ms, with no new request.
    let mut waited = 0;
    while up.closed.load(Ordering::SeqCst) == 0 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        up.closed.load(Ordering::SeqCst),
        1,
        "idle connection not closed"
    );
    assert_eq!(c.get(gw.url("/b")).send().await.unwrap().status(), 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    gw.stop().await;
}
