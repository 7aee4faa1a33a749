//! Rate limits on Redis across two gateway instances on one config and one real redis-server:
//! 2N concurrent requests over both admit exactly N in total, headers and Retry-After come from
//! the shared window, refused requests are not counted, keys expire, and a `SCRIPT FLUSH`
//! mid-run changes nothing a client can see.

mod common;
mod redis_support;

use common::*;
use redis_support::RedisServer;

fn config(redis: &RedisServer, limit: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[state]
backend = "redis"
url = "{url}"
key_prefix = "t:"
timeout = "500ms"

[classes.user]
limit = "{limit}"
errors = "partner"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[[routes]]
path = "/v1/"
class = "user"
upstream = "app"
"#,
        url = redis.url()
    )
}

async fn two(redis: &RedisServer, limit: &str, up: &Upstream) -> (TestGateway, TestGateway) {
    let text = config(redis, limit);
    let a = gateway(&text, Some(up.addr)).await;
    let b = gateway(&text, Some(up.addr)).await;
    for gw in [&a, &b] {
        let r = gw.gw.redis().expect("redis backend");
        assert!(
            r.wait_up(std::time::Duration::from_secs(5)).await,
            "gateway never saw Redis"
        );
    }
    (a, b)
}

#[tokio::test]
async fn two_n_concurrent_requests_over_two_instances_admit_exactly_n() {
    const N: usize = 25;
    let redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let (a, b) = two(&redis, &format!("{N}/1h"), &up).await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..2 * N {
        let url = if i % 2 == 0 {
            a.url("/v1/x")
        } else {
            b.url("/v1/x")
        };
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(std::time::Duration::from_secs(10), c.get(url).send())
                .await
                .expect("bounded")
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    println!(
        "two instances, limit {N}: {ok} admitted in total of {} sent, {limited} refused",
        2 * N
    );
    assert_eq!(ok, N);
    assert_eq!(limited, N);
    assert_eq!(up.count(), N, "the upstream saw exactly N requests");
}

#[tokio::test]
async fn headers_retry_after_and_ttl_come_from_the_shared_window() {
    let redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let (a, b) = two(&redis, "3/1h", &up).await;
    let c = client();
    for (i, gw) in [&a, &b, &a].iter().enumerate() {
        let r = c.get(gw.url("/v1/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-policy"], r#""user";q=3;w=3600"#);
        let left = 2 - i;
        let rl = r.headers()["ratelimit"].to_str().unwrap().to_string();
        assert!(rl.starts_with(&format!(r#""user";r={left};t="#)), "{rl}");
    }
    // B refuses: the window is shared. Retry-After is the true wait (the first admission's
    // bucket leaves the window after W + at most one bucket of 180 s).
    for _ in 0..3 {
        let r = c.get(b.url("/v1/x")).send().await.unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (3600 - 180..=3600 + 180).contains(&retry),
            "Retry-After {retry}"
        );
        let body = json(r).await;
        assert_eq!(body["code"], "rate_limit_exceeded");
    }
    assert_eq!(up.count(), 3);
    // Refused requests are not counted: the hash holds 3 admissions, under the configured
    // prefix with the client as hash tag, and expires after W + W/20.
    let key = "{t:ip:127.0.0.1}:rl:user";
    let fields: Vec<String> = redis.cmd(&["HGETALL", key]).await;
    let counted: u64 = fields
        .chunks(2)
        .filter(|f| f[0] != "g")
        .map(|f| f[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 3);
    let ttl: i64 = redis.cmd(&["PTTL", key]).await;
    assert!(ttl > 3_600_000 && ttl <= 3_780_000, "PTTL {ttl}");
}

#[tokio::test]
async fn script_flush_mid_run_keeps_the_count() {
    let redis = RedisServer::start().await;
    let up = Upstream::start().await;
    let (a, b) = two(&redis, "6/1h", &up).await;
    let c = client();
    for gw in [&a, &b, &a] {
        assert_eq!(c.get(gw.url("/v1/x")).send().await.unwrap().status(), 200);
    }
    let _: String = redis.cmd(&["SCRIPT", "FLUSH"]).await;
    let mut statuses = Vec::new();
    for gw in [&b, &a, &b, &a, &b] {
        statuses.push(
            c.get(gw.url("/v1/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(up.count(), 6);
    // The script is back in the cache (EVALSHA fell back to loading it once).
    let info: String = redis.cmd(&["INFO", "memory"]).await;
    let cached: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(cached >= 1, "scripts cached: {cached}");
}
