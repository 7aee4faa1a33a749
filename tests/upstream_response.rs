//! Upstream responses: a raw-TCP upstream writes the bad bytes itself. Bad framing is `502` with
//! the upstream connection closed; TE + CL is relayed complete without the Content-Length; an
//! unsolicited 101 is `502`; a truncated body never looks complete; upstream RateLimit fields
//! are kept.

mod common;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// What the raw upstream observed on one connection.
#[derive(Debug)]
struct Conn {
    /// The request head it read.
    head: String,
    /// Whether the gateway closed the connection (EOF) after the response was written.
    closed_by_gateway: bool,
}

/// An upstream that answers every request with `response`, byte for byte, and then reports
/// whether the gateway closed the connection within a short time.
async fn raw_upstream(response: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<Conn>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = s.write_all(response).await;
                let closed = matches!(
                    tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                );
                let _ = tx.send(Conn {
                    head: String::from_utf8_lossy(&head).into_owned(),
                    closed_by_gateway: closed,
                });
            });
        }
    });
    (addr, rx)
}

async fn next_conn(rx: &mut mpsc::UnboundedReceiver<Conn>) -> Conn {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the upstream saw a connection")
        .expect("upstream task alive")
}

async fn refused_with_502(response: &'static [u8]) {
    let (addr, mut rx) = raw_upstream(response).await;
    let gw = gateway(BASIC, Some(addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "{}", String::from_utf8_lossy(response));
    assert_eq!(json(r).await["code"], "bad_gateway");
    let conn = next_conn(&mut rx).await;
    assert!(
        conn.head.starts_with("GET /v1/partner/user/x "),
        "{}",
        conn.head
    );
    assert!(
        conn.closed_by_gateway,
        "the upstream connection must be closed: {}",
        String::from_utf8_lossy(response)
    );
}

#[tokio::test]
async fn invalid_or_conflicting_content_length_is_502_and_closes() {
    refused_with_502(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello").await;
    refused_with_502(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    refused_with_502(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 5\r\n\r\nhello").await;
    refused_with_502(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello").await;
}

#[tokio::test]
async fn transfer_codings_other_than_one_final_chunked_are_502_and_close() {
    refused_with_502(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello").await;
    refused_with_502(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    refused_with_502(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    refused_with_502(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\nhello").await;
    refused_with_502(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn unsolicited_101_is_502() {
    refused_with_502(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn chunked_with_content_length_is_relayed_complete_without_it() {
    let (addr, _rx) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    let gw = gateway(BASIC, Some(addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cl = r.headers().get("content-length").cloned();
    assert_ne!(
        cl.as_ref().map(|v| v.as_bytes()),
        Some(&b"3"[..]),
        "stale Content-Length relayed"
    );
    assert_eq!(r.text().await.unwrap(), "hello world");
}

#[tokio::test]
async fn a_truncated_body_never_looks_complete() {
    for response in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly twenty bytes..."[..],
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n"[..],
    ] {
        let response: &'static [u8] = Box::leak(response.to_vec().into_boxed_slice());
        let (addr, _rx) = raw_upstream(response).await;
        let gw = gateway(BASIC, Some(addr)).await;
        let r = client()
            .get(gw.url("/v1/partner/user/x"))
            .timeout(WAIT)
            .send()
            .await;
        if let Ok(r) = r {
            assert!(
                r.bytes().await.is_err(),
                "the client must see a broken body: {}",
                String::from_utf8_lossy(response)
            );
        }
    }
}

#[tokio::test]
async fn upstream_rate_limit_fields_are_never_loosened() {
    let (addr, _rx) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nRateLimit-Policy: \"backend\";q=10;w=60\r\nRateLimit: \"backend\";r=0;t=42\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    .await;
    let config = BASIC.replace(
        "[classes.user]\nerrors = \"partner\"",
        "[classes.user]\nerrors = \"partner\"\nlimit = \"1000/1m\"",
    );
    let gw = gateway(&config, Some(addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let values = |name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let current = values("ratelimit");
    assert_eq!(current.len(), 2, "{current:?}");
    assert!(current[0].starts_with("\"user\";r=999;t="), "{current:?}");
    assert_eq!(
        current[1], "\"backend\";r=0;t=42",
        "the upstream's stricter value is kept"
    );
    assert_eq!(
        values("ratelimit-policy"),
        ["\"user\";q=1000;w=60", "\"backend\";q=10;w=60"]
    );
}
