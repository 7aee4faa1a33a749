//! Retries on a pooled upstream connection the upstream closed before answering: an idempotent
//! request without a body is replayed once on a new connection; a POST is never replayed.

mod common;
mod wire;

use common::*;
use wire::*;

/// Each upstream connection answers its first request and, on its second, reads the head and
/// closes without answering (an upstream that closed a keep-alive connection under us).
async fn closes_on_second_request() -> (std::net::SocketAddr, std::sync::Arc<RawLog>) {
    raw_upstream(|mut s, n, log| async move {
        for i in 0.. {
            let Some(head) = read_head(&mut s).await else {
                return;
            };
            let line = head.lines().next().unwrap_or_default().to_string();
            log.heads.lock().unwrap().push((n, line));
            if i == 1 {
                return;
            }
            let mut body = vec![0u8; content_length(&head)];
            let _ = tokio::io::AsyncReadExt::read_exact(&mut s, &mut body).await;
            send(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    })
    .await
}

#[tokio::test]
async fn bodyless_get_is_replayed_once_but_post_is_never_replayed() {
    let (up, log) = closes_on_second_request().await;
    let gw = gateway(BASIC, Some(up)).await;
    let c = client();
    let a = c.get(gw.url("/v1/partner/user/a")).send().await.unwrap();
    assert_eq!(a.status(), 200);
    // Reuses connection 0, which closes on it: replayed on connection 1.
    let b = c.get(gw.url("/v1/partner/user/b")).send().await.unwrap();
    assert_eq!(b.status(), 200);
    assert_eq!(
        log.heads(),
        vec![
            (0, "GET /v1/partner/user/a HTTP/1.1".to_string()),
            (0, "GET /v1/partner/user/b HTTP/1.1".to_string()),
            (1, "GET /v1/partner/user/b HTTP/1.1".to_string()),
        ]
    );
    // Reuses connection 1, which closes on it: a POST is not sent again.
    let p = c
        .post(gw.url("/v1/partner/user/c"))
        .body("xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), 502);
    let posts: Vec<_> = log
        .heads()
        .into_iter()
        .filter(|(_, l)| l.starts_with("POST"))
        .collect();
    assert_eq!(
        posts,
        vec![(1, "POST /v1/partner/user/c HTTP/1.1".to_string())]
    );
    assert_eq!(log.connections(), 2, "no new connection for the POST");
}
