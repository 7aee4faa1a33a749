//! Rate limiting over the wire: 429 envelopes, RateLimit headers, exact Retry-After on an injected
//! clock, refused requests never reaching the upstream, concurrency, XFF spoofing, route overrides
//! and the check running before authentication.

mod common;
use common::*;

use std::sync::Arc;

use portcullis::clock::ManualClock;
use reqwest::StatusCode;

/// Unix time the manual clocks start at.
const T0: u64 = 1_700_000_000;

/// One partner class limited to 3/1m, an OAuth-style class limited to 2/1m, an unlimited class,
/// a route override and an API-key route.
fn config(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
{extra}

[limits]
upstream_response_timeout = "2s"
upstream_connect_timeout = "1s"

[classes.user]
errors = "partner"
limit = "3/1m"
[classes.oauth]
errors = "oauth"
limit = "2/1m"
[classes.free]
errors = "partner"
[classes.keyed]
errors = "partner"
limit = "2/1m"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[[routes]]
path = "/v1/a/"
class = "user"
upstream = "app"

[[routes]]
path = "/v1/a2/"
class = "user"
upstream = "app"

[[routes]]
path = "/v1/strict/"
class = "user"
limit = "1/1m"
upstream = "app"

[[routes]]
path = "/v1/free/"
class = "free"
upstream = "app"

[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "app"

[[routes]]
path = "/v1/keyed/"
class = "keyed"
auth = "api_key"
upstream = "app"

[[apps]]
client_id = "acme"
key_hash = "sha256:{hash}"
"#,
        // sha256("k"); only wrong keys are ever sent.
        hash = "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a",
    )
}

struct Rig {
    up: Upstream,
    gw: TestGateway,
    clock: Arc<ManualClock>,
}

async fn rig(extra: &str) -> Rig {
    let up = Upstream::start().await;
    let clock = ManualClock::new(T0);
    // Off a second boundary, so a rounded-up Retry-After is not trivially exact.
    clock.advance_millis(1_234);
    let gw = gateway_with_clock(&config(extra), Some(up.addr), clock.clone()).await;
    Rig { up, gw, clock }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `(policy, q, w)` from `RateLimit-Policy: "<policy>";q=N;w=W`.
fn policy(r: &reqwest::Response) -> (String, u64, u64) {
    let v = header(r, "ratelimit-policy").expect("no RateLimit-Policy");
    let (name, q, w) = parse_sf(v, "q", "w");
    (name, q, w)
}

/// `(policy, r, t)` from `RateLimit: "<policy>";r=R;t=T`.
fn current(r: &reqwest::Response) -> (String, u64, u64) {
    let v = header(r, "ratelimit").expect("no RateLimit");
    parse_sf(v, "r", "t")
}

fn parse_sf(v: &str, a: &str, b: &str) -> (String, u64, u64) {
    let mut parts = v.split(';');
    let name = parts.next().unwrap();
    assert!(
        name.len() >= 2 && name.starts_with('"') && name.ends_with('"'),
        "policy name is not an sf-string: {v}"
    );
    let params: Vec<(&str, u64)> = parts
        .map(|p| {
            let (k, n) = p
                .split_once('=')
                .unwrap_or_else(|| panic!("bad param in {v}"));
            (k, n.parse().unwrap_or_else(|_| panic!("bad number in {v}")))
        })
        .collect();
    assert_eq!(params.len(), 2, "{v}");
    assert_eq!((params[0].0, params[1].0), (a, b), "{v}");
    (
        name[1..name.len() - 1].to_string(),
        params[0].1,
        params[1].1,
    )
}

fn retry_after(r: &reqwest::Response) -> u64 {
    let v = header(r, "retry-after").expect("429 without Retry-After");
    let secs: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After not whole seconds: {v}"));
    assert!(secs >= 1, "Retry-After 0");
    secs
}

async fn get(gw: &TestGateway, path: &str) -> reqwest::Response {
    client().get(gw.url(path)).send().await.unwrap()
}

async fn get_xff(gw: &TestGateway, path: &str, xff: &str) -> reqwest::Response {
    client()
        .get(gw.url(path))
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn partner_429_envelope_headers_and_upstream_sees_nothing() {
    let r = rig("").await;
    for i in 0..3u64 {
        let resp = get(&r.gw, "/v1/a/x").await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
        assert_eq!(
            header(&resp, "ratelimit-policy"),
            Some(r#""user";q=3;w=60"#)
        );
        let (name, remaining, t) = current(&resp);
        assert_eq!(name, "user");
        assert_eq!(remaining, 2 - i, "remaining after request {i}");
        assert!((1..=60 + 3).contains(&t), "t={t}");
        assert!(header(&resp, "retry-after").is_none());
    }
    let resp = get(&r.gw, "/v1/a/x").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    assert!(wait <= 60 + 3, "Retry-After {wait} longer than a window");
    assert_eq!(policy(&resp), ("user".into(), 3, 60));
    let (_, remaining, t) = current(&resp);
    assert_eq!(remaining, 0);
    assert_eq!(t, wait, "RateLimit t of a refusal is the Retry-After");
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let rid = header(&resp, "x-request-id").unwrap().to_string();
    let body = json(resp).await;
    assert_eq!(body["code"], "rate_limit_exceeded", "{body}");
    assert!(
        body["error"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], rid.as_str(), "{body}");
    assert_eq!(r.up.count(), 3, "a refused request reached the upstream");
}

#[tokio::test]
async fn oauth_class_429_envelope() {
    let r = rig("").await;
    for _ in 0..2 {
        let resp = client()
            .post(r.gw.url("/oauth2/token"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(policy(&resp), ("oauth".into(), 2, 60));
    }
    let resp = client()
        .post(r.gw.url("/oauth2/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    retry_after(&resp);
    assert_eq!(current(&resp).1, 0);
    let body = json(resp).await;
    assert_eq!(body["error"], "rate_limit_exceeded", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(
        body.get("code").is_none(),
        "partner field in OAuth body: {body}"
    );
    assert_eq!(r.up.count(), 2);
}

#[tokio::test]
async fn retry_after_is_exact_on_the_injected_clock() {
    let r = rig("").await;
    for _ in 0..3 {
        assert_eq!(get(&r.gw, "/v1/a/x").await.status(), StatusCode::OK);
        r.clock.advance_millis(700);
    }
    let resp = get(&r.gw, "/v1/a/x").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    assert!(wait > 1, "need a wait of at least 2 s to test, got {wait}");

    r.clock.advance_secs(wait - 1);
    let resp = get(&r.gw, "/v1/a/x").await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "admitted 1 s before Retry-After {wait}"
    );
    assert_eq!(
        retry_after(&resp),
        1,
        "the remaining wait is under a second"
    );

    r.clock.advance_secs(1);
    let resp = get(&r.gw, "/v1/a/x").await;
    assert_eq!(resp.status(), StatusCode::OK, "refused after Retry-After");
    assert_eq!(r.up.count(), 4);
}

#[tokio::test]
async fn refused_requests_do_not_count() {
    let r = rig("").await;
    for _ in 0..3 {
        assert_eq!(get(&r.gw, "/v1/a/x").await.status(), StatusCode::OK);
    }
    // Hammer across most of the window; every refusal would extend the wait if it counted.
    let mut wait = 0;
    for _ in 0..30 {
        let resp = get(&r.gw, "/v1/a/x").await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let w = retry_after(&resp);
        if wait != 0 {
            assert!(w <= wait, "Retry-After grew from {wait} to {w}");
        }
        wait = w;
        if wait > 3 {
            r.clock.advance_secs(2);
        }
    }
    r.clock.advance_secs(wait);
    for i in 0..3u64 {
        let resp = get(&r.gw, "/v1/a/x").await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "request {i} of a fresh quota"
        );
        assert_eq!(current(&resp).1, 2 - i);
    }
    assert_eq!(
        get(&r.gw, "/v1/a/x").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(r.up.count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_n_concurrent_requests_admit_exactly_n() {
    const N: usize = 20;
    let up = Upstream::start().await;
    let toml = config("").replace(
        "[classes.free]\nerrors = \"partner\"",
        &format!("[classes.free]\nerrors = \"partner\"\nlimit = \"{N}/1m\""),
    );
    let gw = gateway_with_clock(&toml, Some(up.addr), ManualClock::new(T0)).await;
    let c = client();
    let url = gw.url("/v1/free/x");
    let tasks: Vec<_> = (0..2 * N)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, limited), (N, N));
    assert_eq!(up.count(), N);
}

#[tokio::test]
async fn xff_cannot_move_an_untrusted_client_to_a_fresh_window() {
    let r = rig("").await;
    for (i, xff) in ["1.1.1.1", "2.2.2.2", "3.3.3.3"].iter().enumerate() {
        let resp = get_xff(&r.gw, "/v1/a/x", xff).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    let resp = get_xff(&r.gw, "/v1/a/x", "4.4.4.4").await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "X-Forwarded-For from an untrusted peer opened a fresh window"
    );
    assert_eq!(
        get(&r.gw, "/v1/a/x").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(r.up.count(), 3);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_window() {
    let r = rig("trusted_proxies = [\"127.0.0.1\"]").await;
    for client_ip in ["1.1.1.1", "2.2.2.2"] {
        for i in 0..3 {
            let resp = get_xff(&r.gw, "/v1/a/x", client_ip).await;
            assert_eq!(resp.status(), StatusCode::OK, "{client_ip} request {i}");
        }
        let resp = get_xff(&r.gw, "/v1/a/x", client_ip).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{client_ip}");
    }

    // A forged left-most entry is ignored: the client is the right-most untrusted address.
    for (i, forged) in ["9.9.9.9", "8.8.8.8", "7.7.7.7"].iter().enumerate() {
        let resp = get_xff(&r.gw, "/v1/a/x", &format!("{forged}, 1.2.3.4")).await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    for xff in ["6.6.6.6, 1.2.3.4", "1.2.3.4"] {
        let resp = get_xff(&r.gw, "/v1/a/x", xff).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{xff} was not attributed to 1.2.3.4"
        );
    }
    // The forged addresses themselves were never charged.
    let resp = get_xff(&r.gw, "/v1/a/x", "9.9.9.9").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(current(&resp).1, 2);
    // The proxy itself (no XFF) is its own client.
    assert_eq!(get(&r.gw, "/v1/a/x").await.status(), StatusCode::OK);
    assert_eq!(r.up.count(), 3 + 3 + 3 + 1 + 1);
}

#[tokio::test]
async fn route_override_applies_to_that_route_only() {
    let r = rig("").await;
    let resp = get(&r.gw, "/v1/strict/x").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, q, w) = policy(&resp);
    assert_eq!((q, w), (1, 60));
    let resp = get(&r.gw, "/v1/strict/x").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(policy(&resp).1, 1);
    retry_after(&resp);

    // The class's other routes keep the class limit and share one window per (IP, class).
    for (i, path) in ["/v1/a/x", "/v1/a2/x", "/v1/a/y"].iter().enumerate() {
        let resp = get(&r.gw, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&resp, "ratelimit-policy"),
            Some(r#""user";q=3;w=60"#)
        );
        assert_eq!(current(&resp).1, 2 - i as u64, "{path}");
    }
    assert_eq!(
        get(&r.gw, "/v1/a2/x").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // A class without a limit: no RateLimit headers, never refused.
    for _ in 0..10 {
        let resp = get(&r.gw, "/v1/free/x").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(header(&resp, "ratelimit-policy").is_none());
        assert!(header(&resp, "ratelimit").is_none());
    }
    assert_eq!(r.up.count(), 1 + 3 + 10);
}

#[tokio::test]
async fn rate_limit_runs_before_authentication() {
    let r = rig("").await;
    let send = |key: &'static str| {
        client()
            .get(r.gw.url("/v1/keyed/x"))
            .header("x-client-id", "acme")
            .header("x-api-key", key)
            .send()
    };
    for key in ["pk_wrong1", "pk_wrong2"] {
        let resp = send(key).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(policy(&resp), ("keyed".into(), 2, 60));
    }
    let resp = send("pk_wrong3").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "credential guessing was not rate limited"
    );
    retry_after(&resp);
    assert_eq!(json(resp).await["code"], "rate_limit_exceeded");
    assert_eq!(r.up.count(), 0);
}

#[tokio::test]
async fn a_reload_keeps_the_counters_and_applies_the_new_rate_limit_settings() {
    let Rig { up: _up, gw, .. } = rig("[rate_limit]\nmax_tracked_clients = 5000").await;
    for _ in 0..3 {
        assert_eq!(get(&gw, "/v1/a/x").await.status(), 200);
    }
    let before = gw.gw.snapshot().limiter.settings();
    assert_eq!(before.max_tracked_clients, 5000);
    // The file now asks for other limiter settings: the reload applies them to the running
    // limiter, whose counters carry on (tests/reload_rate_limit.rs shows each setting's effect).
    let path = gw.dir.join("portcullis.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("max_tracked_clients = 5000", "max_tracked_clients = 9000");
    std::fs::write(&path, text).unwrap();
    gw.gw.reload().await.expect("reload");
    let after = gw.gw.snapshot().limiter.settings();
    assert_eq!(after.max_tracked_clients, 9000);
    assert_eq!(after.ipv6_prefix, before.ipv6_prefix);
    let resp = get(&gw, "/v1/a/x").await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "counters survived"
    );
    gw.stop().await;
}
