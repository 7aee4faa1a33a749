//! Routing: longest-prefix precedence, normalization escapes, 404 and 405 in both envelopes.

mod common;
use common::*;

#[tokio::test]
async fn longest_prefix_wins_and_upstream_gets_normalized_path() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/meetings/7?x=1&y=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(seen.path, "/v1/partner/user/meetings/7");
    assert_eq!(seen.query.as_deref(), Some("x=1&y=%2F"));
}

/// Each escape attempt from the user prefix must be judged by the admin route (admin class,
/// echo upstream, GET/POST only), never by the user route, and the app upstream sees nothing.
#[tokio::test]
async fn escapes_are_judged_by_the_route_they_resolve_to() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for path in [
        "/v1/partner/user/../admin/app",
        "/v1/partner/user/%2e%2e/admin/app",
        "/v1/partner/user/%2E%2E/admin/app",
        "/v1/partner/user/./../admin/app",
        "/v1/partner/user//..//admin/app",
        "/v1/partner/user/x/../../admin/app",
    ] {
        // reqwest would resolve dot segments itself; send the raw request line.
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let resp = raw_exchange(gw.addr, raw.as_bytes(), std::time::Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path}: {resp}");
        // The echo upstream (admin route) answered, describing the normalized path.
        assert!(
            resp.contains("\"path\": \"/v1/partner/admin/app\""),
            "{path}: {resp}"
        );
        // The admin route allows GET/POST only: PUT through the escape is 405, not forwarded.
        let raw = format!(
            "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let resp = raw_exchange(gw.addr, raw.as_bytes(), std::time::Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 405"), "{path}: {resp}");
    }
    assert_eq!(up.count(), 0, "the user route's upstream must see nothing");
}

/// An encoded slash is refused by default (a backend that decodes it would resolve `..` past
/// the prefix); routes that opt in are covered in tests/path_rules.rs.
#[tokio::test]
async fn encoded_slash_is_refused_by_default() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw =
        "GET /v1/partner/user/a%2f..%2f..%2fadmin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let resp = raw_exchange(gw.addr, raw.as_bytes(), std::time::Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("encoded slash"), "{resp}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn malformed_escape_is_400_and_not_forwarded() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw = "GET /v1/partner/user/%zz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let resp = raw_exchange(gw.addr, raw.as_bytes(), std::time::Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("\"code\":\"invalid_request\""), "{resp}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn not_found_in_partner_and_oauth_envelopes() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/nowhere"))
        .header("x-request-id", "trace-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-request-id"], "trace-404");
    let body = json(r).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], "trace-404");
    assert!(body["error"].as_str().unwrap().len() > 10);

    // default_class = oauth renders RFC 6749 style.
    let oauth_default = BASIC.replace("default_class = \"user\"", "default_class = \"oauth\"");
    let gw2 = gateway(&oauth_default, Some(up.addr)).await;
    let r = client().get(gw2.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let body = json(r).await;
    assert_eq!(body["error"], "not_found");
    assert!(body["error_description"].is_string());
    assert!(body.get("code").is_none());
}

#[tokio::test]
async fn method_not_allowed_in_the_owning_class_envelope() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .delete(gw.url("/v1/partner/admin/apps"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST, HEAD");
    let body = json(r).await;
    assert_eq!(body["code"], "method_not_allowed");

    let r = client().get(gw.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let body = json(r).await;
    assert_eq!(body["error"], "method_not_allowed");
    assert!(body["error_description"].is_string());
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn host_specific_route_takes_precedence() {
    let up = Upstream::start().await;
    let cfg = format!(
        "{BASIC}\n[[routes]]\npath = \"/v1/partner/user/\"\nhost = \"admin.example\"\nclass = \"admin\"\nupstream = \"echo\"\n"
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .header("host", "admin.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        json(r).await["path"].is_string(),
        "echo upstream answers for the host route"
    );
    assert_eq!(up.count(), 0);
    let r = client()
        .get(gw.url("/v1/partner/user/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.count(), 1);
}
