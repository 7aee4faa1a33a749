//! Reload of `[rate_limit]` and class limits: counters survive a reload (a limited client stays
//! limited; a class whose limit changed keeps counting against the new limit), new
//! `max_tracked_clients` / `ipv6_prefix` settings take effect, and every reload logs one event
//! listing what changed.

mod common;
mod redis_support;

use common::*;

/// Peer 127.0.0.1 is a trusted proxy, so tests pick client addresses with `X-Forwarded-For`
/// (header values only; every connection is on loopback).
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
trusted_proxies = ["127.0.0.1/32"]

[rate_limit]
ipv6_prefix = 64
max_tracked_clients = 100

[classes.user]
limit = "2/1m"
errors = "partner"
[classes.admin]
limit = "2/1m"
errors = "partner"

[upstreams.app]
url = "http://{UPSTREAM}"

[[routes]]
name = "user-api"
path = "/user/"
class = "user"
upstream = "app"

[[routes]]
name = "admin-api"
path = "/admin/"
class = "admin"
upstream = "app"

[[apps]]
client_id = "app-one"
key_hash = "sha256:72b45c69733d93b9216311787d0b16aba874bd27f0859485087aefde83e4e6a3"
"#;

struct Env {
    up: Upstream,
    gw: TestGateway,
    admin: String,
    config: String,
}

async fn start() -> Env {
    start_with(CONFIG).await
}

async fn start_with(config: &str) -> Env {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(config, Some(up.addr)).await;
    let admin = admin_listener(&gw.gw).await;
    Env {
        up,
        gw,
        admin,
        config: config.to_string(),
    }
}

impl Env {
    /// Rewrites the config file (`edit` on the original text) and reloads it through the
    /// admin listener's `POST /reload`.
    async fn reload(&self, edit: impl Fn(String) -> String) {
        let text = edit(self.config.clone()).replace("{UPSTREAM}", &self.up.addr.to_string());
        std::fs::write(self.gw.dir.join("portcullis.toml"), text).unwrap();
        let r = client()
            .post(format!("{}/reload", self.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    async fn get(&self, path: &str, client_ip: &str) -> reqwest::Response {
        client()
            .get(self.gw.url(path))
            .header("x-forwarded-for", client_ip)
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, path: &str, client_ip: &str) -> u16 {
        self.get(path, client_ip).await.status().as_u16()
    }
}

#[tokio::test]
async fn a_limited_client_stays_limited_and_a_changed_class_keeps_counting() {
    let e = start().await;
    let c = "203.0.113.7";
    assert_eq!(e.status("/user/a", c).await, 200);
    assert_eq!(e.status("/user/a", c).await, 200);
    assert_eq!(e.status("/user/a", c).await, 429);
    assert_eq!(e.status("/admin/a", c).await, 200);
    assert_eq!(e.status("/admin/a", c).await, 200);
    assert_eq!(e.status("/admin/a", c).await, 429);
    assert_eq!(e.up.count(), 4);
    // Changes elsewhere (a new route, the admin class's limit); nothing about `user`.
    e.reload(|t| {
        t.replace("[classes.admin]\nlimit = \"2/1m\"", "[classes.admin]\nlimit = \"3/1m\"")
            + "\n[[routes]]\nname = \"extra\"\npath = \"/extra/\"\nclass = \"user\"\nupstream = \"app\"\n"
    })
    .await;
    let r = e.get("/user/a", c).await;
    assert_eq!(r.status(), 429, "a SIGHUP does not reset a limited client");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["ratelimit-policy"], "\"user\";q=2;w=60");
    // The admin class's counters survive too, judged by the new limit: one more, then 429.
    let r = e.get("/admin/a", c).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ratelimit-policy"], "\"admin\";q=3;w=60");
    assert_eq!(e.status("/admin/a", c).await, 429);
    assert_eq!(
        e.up.count(),
        5,
        "refused requests never reached the upstream"
    );
    assert_eq!(
        e.status("/extra/a", "203.0.113.8").await,
        200,
        "the new route is live"
    );
}

#[tokio::test]
async fn lowering_max_tracked_clients_applies_to_new_clients() {
    let e = start().await;
    // Under the cap of 100 every client has its own window.
    for c in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(e.status("/user/x", c).await, 200);
    }
    let limiter = e.gw.gw.snapshot().limiter.local().clone();
    assert_eq!(limiter.tracked(), 2);
    assert_eq!(limiter.overflowed(), 0);
    e.reload(|t| t.replace("max_tracked_clients = 100", "max_tracked_clients = 2"))
        .await;
    assert_eq!(limiter.settings().max_tracked_clients, 2);
    // The store is full now: new clients share the class's overflow window (2 per minute).
    assert_eq!(e.status("/user/x", "198.51.100.3").await, 200);
    assert_eq!(e.status("/user/x", "198.51.100.4").await, 200);
    assert_eq!(
        e.status("/user/x", "198.51.100.5").await,
        429,
        "a client that never sent anything is limited by the shared overflow window"
    );
    assert_eq!(limiter.overflowed(), 3);
    // Tracked clients keep their own windows.
    assert_eq!(e.status("/user/x", "198.51.100.1").await, 200);
    assert_eq!(limiter.tracked(), 2);
    assert_eq!(e.up.count(), 5);
}

#[tokio::test]
async fn a_new_ipv6_prefix_regroups_ipv6_clients() {
    let e = start().await;
    // One /64: the two addresses share a window of 2.
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::1").await, 200);
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::2").await, 200);
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::1").await, 429);
    e.reload(|t| t.replace("ipv6_prefix = 64", "ipv6_prefix = 128"))
        .await;
    // Grouped per address now: ::2 has a window of its own (counting afresh).
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::2").await, 200);
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::2").await, 200);
    assert_eq!(e.status("/user/v6", "2001:db8:1:1::2").await, 429);
    assert_eq!(e.up.count(), 4);
}

/// Every log event of this test binary (one global subscriber).
fn logs() -> &'static LogBuf {
    global_json_logs()
}

/// The `reload` events that `mine` picks out (other tests reload in parallel; only this one
/// makes reloads with no changes or adds the route `admin-v2`).
fn reload_events(mine: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    logs()
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "reload" && mine(v))
        .collect()
}

fn unchanged(v: &serde_json::Value) -> bool {
    v["summary"] == "no changes"
}

fn admin_v2(v: &serde_json::Value) -> bool {
    v["routes_added"] == "admin-v2"
}

#[tokio::test]
async fn every_reload_logs_one_event_with_what_changed() {
    let e = start().await;
    e.reload(|t| t).await;
    let events = reload_events(unchanged);
    assert_eq!(events.len(), 1, "{}", logs().text());
    assert_eq!(events[0]["message"], "config reloaded");
    assert_eq!(events[0]["routes_added"], "");

    e.reload(|t| {
        t.replace("ipv6_prefix = 64", "ipv6_prefix = 56")
            .replace("[classes.user]\nlimit = \"2/1m\"", "[classes.user]\nlimit = \"10/1m\"")
            .replace("name = \"admin-api\"", "name = \"admin-v2\"")
            .replace(
                "72b45c69733d93b9216311787d0b16aba874bd27f0859485087aefde83e4e6a3",
                "0000000000000000000000000000000000000000000000000000000000000001",
            )
            + "\n[upstreams.other]\nurl = \"http://127.0.0.1:9\"\n\n[[apps]]\nclient_id = \"app-two\"\nkey_hash = \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"\n"
    })
    .await;
    let events = reload_events(admin_v2);
    assert_eq!(events.len(), 1, "one event per reload: {}", logs().text());
    let ev = &events[0];
    assert_eq!(ev["routes_added"], "admin-v2");
    assert_eq!(ev["routes_removed"], "admin-api");
    assert_eq!(
        ev["routes_changed"], "user-api",
        "its limit (from its class) changed"
    );
    assert_eq!(ev["upstreams_added"], "other");
    assert_eq!(ev["class_limits"], "user: 2/1m -> 10/1m");
    assert_eq!(ev["rate_limit"], "ipv6_prefix 64 -> 56");
    assert_eq!(ev["credentials_added"], "api_key app-two");
    assert_eq!(ev["credentials_rotated"], "api_key app-one");
    assert_eq!(ev["credentials_removed"], "");
    let summary = ev["summary"].as_str().unwrap();
    assert!(summary.contains("routes added: admin-v2"), "{summary}");
    assert!(
        summary.contains("credentials rotated: api_key app-one"),
        "{summary}"
    );
    let text = logs().text();
    assert!(
        !text.contains("72b45c69") && !text.contains("1111111111111111"),
        "no hash is ever logged"
    );
    // The new settings are in force.
    assert_eq!(e.gw.gw.snapshot().limiter.settings().ipv6_prefix, 56);

    // A broken file changes nothing and writes no change event.
    std::fs::write(e.gw.dir.join("portcullis.toml"), "[server\n").unwrap();
    let r = client()
        .post(format!("{}/reload", e.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_server_error());
    assert_eq!(reload_events(|v| unchanged(v) || admin_v2(v)).len(), 2);
}

#[tokio::test]
async fn on_redis_counters_survive_a_reload_the_same_way() {
    let redis = redis_support::RedisServer::start().await;
    let config = CONFIG.replace(
        "[rate_limit]",
        &format!(
            "[state]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"reload:\"\ntimeout = \"500ms\"\n\n[rate_limit]",
            redis.url()
        ),
    );
    let e = start_with(&config).await;
    let r = e.gw.gw.redis().expect("redis backend");
    assert!(r.wait_up(std::time::Duration::from_secs(5)).await);
    let c = "203.0.113.9";
    for path in ["/user/r", "/user/r", "/admin/r", "/admin/r"] {
        assert_eq!(e.status(path, c).await, 200);
    }
    assert_eq!(e.status("/user/r", c).await, 429);
    assert_eq!(e.status("/admin/r", c).await, 429);
    e.reload(|t| {
        t.replace(
            "[classes.admin]\nlimit = \"2/1m\"",
            "[classes.admin]\nlimit = \"3/1m\"",
        )
        .replace("max_tracked_clients = 100", "max_tracked_clients = 50")
    })
    .await;
    assert_eq!(
        e.status("/user/r", c).await,
        429,
        "still limited after the reload"
    );
    assert_eq!(
        e.status("/admin/r", c).await,
        200,
        "counted on, under the new limit"
    );
    assert_eq!(e.status("/admin/r", c).await, 429);
    assert_eq!(e.up.count(), 5);
    let keys: Vec<String> = redis.cmd(&["KEYS", "{reload:*"]).await;
    assert_eq!(keys.len(), 2, "one key per (client, class): {keys:?}");
}
