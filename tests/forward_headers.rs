//! Headers the backend receives: the client-address and request-rewriting headers only trusted
//! proxies may send, `Via` with the configured pseudonym, `508` on a loop, and how unparsable
//! `X-Forwarded-For` entries are treated.

mod common;
use std::time::Duration;

use common::*;

const SPOOFED: [(&str, &str); 11] = [
    ("forwarded", "for=6.6.6.6"),
    ("x-real-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("cf-connecting-ip", "6.6.6.6"),
    ("x-client-ip", "6.6.6.6"),
    ("x-original-url", "/v1/partner/admin/app"),
    ("x-rewrite-url", "/v1/partner/admin/app"),
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "DELETE"),
    ("x-method-override", "DELETE"),
    ("x-forwarded-prefix", "/admin"),
];

async fn get_with(gw: &TestGateway, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(gw.url("/v1/partner/user/x"));
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn untrusted_peers_cannot_send_address_or_rewrite_headers() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = get_with(&gw, &SPOOFED).await;
    assert_eq!(r.status(), 200);
    let seen = up.last();
    for (name, _) in SPOOFED {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the backend"
        );
    }
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn trusted_proxies_keep_them() {
    let up = Upstream::start().await;
    let config = BASIC.replace(
        "default_class = \"user\"",
        "default_class = \"user\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let gw = gateway(&config, Some(up.addr)).await;
    get_with(&gw, &SPOOFED).await;
    let seen = up.last();
    for (name, value) in SPOOFED {
        assert_eq!(seen.headers[name], value, "{name}");
    }
}

#[tokio::test]
async fn the_strip_list_is_configurable() {
    let up = Upstream::start().await;
    let config =
        format!("{BASIC}\n[forwarding]\nstrip_from_untrusted = [\"X-Real-IP\", \"X-Tenant\"]\n");
    let gw = gateway(&config, Some(up.addr)).await;
    get_with(
        &gw,
        &[
            ("x-real-ip", "6.6.6.6"),
            ("x-tenant", "a"),
            ("forwarded", "for=6.6.6.6"),
        ],
    )
    .await;
    let seen = up.last();
    assert!(!seen.headers.contains_key("x-real-ip"));
    assert!(!seen.headers.contains_key("x-tenant"));
    assert_eq!(
        seen.headers["forwarded"], "for=6.6.6.6",
        "not in the configured list"
    );
}

#[tokio::test]
async fn via_names_the_gateway_both_ways() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = get_with(&gw, &[("via", "1.1 cdn-edge")]).await;
    assert_eq!(r.status(), 200);
    let via: Vec<_> = r.headers().get_all("via").iter().collect();
    assert_eq!(via, ["1.1 portcullis"], "response Via");
    let seen: Vec<String> = up
        .last()
        .headers
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["1.1 cdn-edge", "1.1 portcullis"]);
}

#[tokio::test]
async fn a_request_that_already_passed_twice_is_508() {
    let up = Upstream::start().await;
    let config = format!("{BASIC}\n[forwarding]\nvia = \"edge-7\"\n");
    let gw = gateway(&config, Some(up.addr)).await;
    let r = get_with(&gw, &[("via", "1.1 edge-7, 1.1 other, 1.1 EDGE-7")]).await;
    assert_eq!(r.status(), 508);
    assert_eq!(json(r).await["code"], "loop_detected");
    assert_eq!(up.count(), 0);
    // One earlier pass is tolerated (via_max_hops = 1), and the pseudonym is the configured one.
    let r = get_with(&gw, &[("via", "1.1 edge-7")]).await;
    assert_eq!(r.status(), 200);
    let via: Vec<_> = up.last().headers.get_all("via").iter().cloned().collect();
    assert_eq!(via, ["1.1 edge-7", "1.1 edge-7"]);
}

/// A gateway whose upstream is itself loops until Via stops it: the client gets 508 after one
/// tolerated pass, instead of the gateway exhausting itself.
#[tokio::test]
async fn a_gateway_forwarding_to_itself_stops_at_508() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = BASIC.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let gw = gateway(&config, Some(format!("127.0.0.1:{port}").parse().unwrap())).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 508);
}

/// Unparsable `X-Forwarded-For` entries from a trusted proxy: the right-to-left walk stops at
/// the first one and the request is attributed to the last verified hop (the proxy), so garbage
/// cannot pick a fresh rate-limit key. Observed through a 1-per-minute class limit.
#[tokio::test]
async fn unparsable_forwarded_for_entries_count_as_the_proxy() {
    let up = Upstream::start().await;
    let config = BASIC
        .replace(
            "default_class = \"user\"",
            "default_class = \"user\"\ntrusted_proxies = [\"127.0.0.1\"]",
        )
        .replace(
            "[classes.user]\nerrors = \"partner\"",
            "[classes.user]\nerrors = \"partner\"\nlimit = \"1/1m\"",
        );
    let gw = gateway(&config, Some(up.addr)).await;
    for (value, want) in [
        ("203.0.113.1", 200),
        ("203.0.113.2", 200),
        ("203.0.113.3, not-an-ip", 200),
        ("203.0.113.4, 999.1.1.1", 429),
        ("198.51.100.1", 200),
    ] {
        let r = client()
            .get(gw.url("/v1/partner/user/x"))
            .header("x-forwarded-for", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{value}");
    }
}
