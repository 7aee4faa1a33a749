//! Redis over TLS: a real redis-server with a TLS port serving a certificate from a CA minted
//! here. With `state.ca_file` naming that CA the gateway connects and its limiter counts land in
//! Redis; without it (system roots) the certificate is refused and nothing is counted there.

mod common;
mod pki;
mod redis_support;

use std::time::Duration;

use common::*;
use redis_support::RedisServer;

fn config(url: &str, ca_file: Option<&std::path::Path>) -> String {
    let ca = ca_file.map_or(String::new(), |p| format!("ca_file = \"{}\"", p.display()));
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[state]
backend = "redis"
url = "{url}"
key_prefix = "tls:"
timeout = "500ms"
{ca}

[classes.user]
limit = "5/1h"
errors = "partner"
on_backend_error = "closed"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[[routes]]
path = "/v1/"
class = "user"
upstream = "app"
"#
    )
}

async fn get(gw: &TestGateway) -> u16 {
    client()
        .get(gw.url("/v1/x"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rediss_with_the_ca_file_connects_and_without_it_refuses_the_certificate() {
    let dir = temp_dir("redis-tls");
    let (cert, key) = pki::private_ca(&dir, "redis");
    let ca = dir.join("internal-ca.pem");
    let redis = RedisServer::start_tls(&cert, &key, &ca).await;
    let up = Upstream::start().await;

    let trusted = gateway(&config(&redis.tls_url(), Some(&ca)), Some(up.addr)).await;
    let state = trusted.gw.redis().expect("redis backend");
    assert!(
        state.wait_up(Duration::from_secs(5)).await,
        "never connected over TLS"
    );
    assert_eq!(get(&trusted).await, 200);
    let keys: Vec<String> = redis.cmd(&["KEYS", "{tls:*"]).await;
    assert!(!keys.is_empty(), "the limiter counted in Redis over TLS");

    let untrusted = gateway(&config(&redis.tls_url(), None), Some(up.addr)).await;
    let state = untrusted.gw.redis().expect("redis backend");
    assert!(
        !state.wait_up(Duration::from_secs(2)).await,
        "a certificate of an unknown CA was accepted"
    );
    // on_backend_error = "closed": without Redis the class refuses, and nothing reached the app.
    let before = up.count();
    assert_eq!(get(&untrusted).await, 503);
    assert_eq!(up.count(), before);
}
