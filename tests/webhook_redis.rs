//! Webhook replay memory on the shared Redis backend: two gateway instances on one config and a
//! real redis-server; a webhook accepted by one is a replay at the other, its key expires with
//! the window, and with Redis unreachable webhooks are refused (never accepted unchecked).

mod common;
mod redis_support;
mod webhook_support;

use std::time::Duration;

use common::*;
use redis_support::RedisServer;
use webhook_support::*;

const SECRET: &str = "contio-redis-secret-0123456789";

fn config(redis: &RedisServer) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "partner"

[state]
backend = "redis"
url = "{url}"
key_prefix = "t:"
timeout = "300ms"

[classes.partner]
errors = "partner"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[webhooks.inbound.contio]
scheme = "custom"
signature_header = "X-Contio-Signature"
timestamp_header = "X-Contio-Timestamp"
secrets = ["file:{secret}"]

[[routes]]
path = "/hooks/"
class = "partner"
auth = "webhook"
webhook = "contio"
upstream = "app"
"#,
        url = redis.url(),
        secret = secret_file(SECRET).display(),
    )
}

async fn started(text: &str, up: &Upstream) -> TestGateway {
    let gw = gateway(text, Some(up.addr)).await;
    let r = gw.gw.redis().expect("redis backend");
    assert!(
        r.wait_up(Duration::from_secs(5)).await,
        "gateway never saw Redis"
    );
    gw
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn send(gw: &TestGateway, ts: &str, body: &[u8]) -> reqwest::Response {
    client()
        .post(gw.url("/hooks/e"))
        .header("x-contio-timestamp", ts)
        .header("x-contio-signature", contio_signature(SECRET, ts, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_webhook_accepted_by_one_instance_is_a_replay_at_the_other() {
    let redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let text = config(&redis);
    let (a, b) = (started(&text, &up).await, started(&text, &up).await);
    let ts = now().to_string();
    let body = br#"{"event":"meeting.completed"}"#;
    assert_eq!(send(&a, &ts, body).await.status(), 200);
    let again = send(&b, &ts, body).await;
    assert_eq!(again.status(), 401);
    assert_eq!(json(again).await["code"], "replayed_webhook");
    assert_eq!(up.count(), 1);
    // Remembered in Redis until the window (300 s) has passed, not forever.
    let keys: Vec<String> = redis.cmd(&["KEYS", "t:webhook:*"]).await;
    assert_eq!(keys.len(), 1);
    let ttl: i64 = redis.cmd(&["TTL", &keys[0]]).await;
    assert!((290..=302).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn with_redis_unreachable_webhooks_are_refused_not_accepted_unchecked() {
    let mut redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let gw = started(&config(&redis), &up).await;
    redis.kill9();
    let ts = now().to_string();
    let resp = send(&gw, &ts, b"{}").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(json(resp).await["code"], "service_unavailable");
    assert_eq!(up.count(), 0);
}
