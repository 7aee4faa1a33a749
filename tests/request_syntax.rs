//! Request syntax at the edge: Host (HTTP/1.1 and HTTP/2 `:authority`), header names with `_`,
//! 414 for long targets, TRACE/CONNECT 405, OPTIONS with Max-Forwards answered by the gateway.
//! Raw TCP where a well-behaved client would not send the bad bytes; every refusal checks that
//! the recording upstream received nothing.

mod common;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

const WAIT: Duration = Duration::from_secs(5);

async fn send(gw: &TestGateway, raw: &str) -> String {
    raw_exchange(gw.addr, raw.as_bytes(), WAIT).await
}

fn status(resp: &str) -> &str {
    resp.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn host_must_be_one_valid_value_on_http11() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let path = "/v1/partner/user/x";
    for (case, headers) in [
        ("missing", String::new()),
        ("twice", "Host: a\r\nHost: b\r\n".into()),
        ("userinfo", "Host: user@a.example\r\n".into()),
        ("path", "Host: a.example/admin\r\n".into()),
        ("list", "Host: a.example, b.example\r\n".into()),
        ("bad port", "Host: a.example:http\r\n".into()),
        ("empty", "Host: \r\n".into()),
    ] {
        let resp = send(
            &gw,
            &format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&resp), "400", "{case}: {resp}");
        assert!(
            resp.contains("\"code\":\"invalid_request\""),
            "{case}: {resp}"
        );
    }
    let resp = send(
        &gw,
        &format!("GET http://user@a.example{path} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(
        status(&resp),
        "400",
        "userinfo in an absolute-form target: {resp}"
    );
    assert_eq!(up.count(), 0, "no refused request reached the upstream");
    // Valid forms pass: name with port, IPv6 literal, and HTTP/1.0 without Host.
    for headers in ["Host: a.example:8443\r\n", "Host: [::1]:80\r\n"] {
        let resp = send(
            &gw,
            &format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&resp), "200", "{headers}: {resp}");
    }
    let resp = send(&gw, &format!("GET {path} HTTP/1.0\r\n\r\n")).await;
    assert_eq!(status(&resp), "200", "{resp}");
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn header_names_with_underscores_are_refused_by_default() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw = "GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nX_Auth_Subject: admin\r\nConnection: close\r\n\r\n";
    let resp = send(&gw, raw).await;
    assert_eq!(status(&resp), "400", "{resp}");
    assert!(
        resp.contains("x_auth_subject"),
        "the refusal names the header: {resp}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn header_names_with_underscores_can_be_dropped_instead() {
    let up = Upstream::start().await;
    let config = format!("{BASIC}\n[http]\nheaders_with_underscores = \"drop\"\n");
    let gw = gateway(&config, Some(up.addr)).await;
    let raw = "GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nX_Auth_Subject: admin\r\nX-Kept: 1\r\nConnection: close\r\n\r\n";
    let resp = send(&gw, raw).await;
    assert_eq!(status(&resp), "200", "{resp}");
    let seen = up.last();
    assert!(
        seen.headers.keys().all(|n| !n.as_str().contains('_')),
        "{:?}",
        seen.headers
    );
    assert!(!seen.headers.contains_key("x-auth-subject"));
    assert_eq!(seen.headers["x-kept"], "1");
}

#[tokio::test]
async fn long_request_target_is_414_not_431() {
    let up = Upstream::start().await;
    let config = format!("{BASIC}\n[http]\nmax_uri_bytes = \"1KiB\"\n");
    let gw = gateway(&config, Some(up.addr)).await;
    let long = format!("/v1/partner/user/{}", "a".repeat(1100));
    let resp = send(
        &gw,
        &format!("GET {long} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&resp), "414", "{resp}");
    assert!(resp.contains("\"code\":\"uri_too_long\""), "{resp}");
    // A long query counts too.
    let q = format!("/v1/partner/user/x?q={}", "b".repeat(1100));
    let resp = send(
        &gw,
        &format!("GET {q} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&resp), "414", "{resp}");
    assert_eq!(up.count(), 0);
    let ok = format!("/v1/partner/user/{}", "a".repeat(900));
    let resp = send(
        &gw,
        &format!("GET {ok} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&resp), "200", "{resp}");
}

#[tokio::test]
async fn trace_and_connect_are_405_everywhere() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for raw in [
        "TRACE /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer secret\r\nConnection: close\r\n\r\n",
        "TRACE /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
    ] {
        let resp = send(&gw, raw).await;
        assert_eq!(status(&resp), "405", "{raw}: {resp}");
        assert!(
            resp.to_ascii_lowercase().contains("\r\nallow: get, head"),
            "{resp}"
        );
        assert!(
            !resp.contains("Bearer secret"),
            "TRACE must not reflect the request"
        );
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn options_with_max_forwards_zero_is_answered_by_the_gateway() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let raw = "OPTIONS /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n";
    let resp = send(&gw, raw).await;
    assert_eq!(status(&resp), "200", "{resp}");
    assert!(resp.to_ascii_lowercase().contains("\r\nallow: "), "{resp}");
    assert_eq!(up.count(), 0, "Max-Forwards: 0 is never forwarded");
    // Above zero it is forwarded, one lower.
    let raw = "OPTIONS /v1/partner/user/x HTTP/1.1\r\nHost: t\r\nMax-Forwards: 3\r\nConnection: close\r\n\r\n";
    let resp = send(&gw, raw).await;
    assert_eq!(status(&resp), "200", "{resp}");
    assert_eq!(up.last().headers["max-forwards"], "2");
    assert_eq!(up.last().method, "OPTIONS");
}

/// An h2c request (prior knowledge) with `:authority` from `uri` and the given `host` header.
async fn h2_request(gw: &TestGateway, uri: &str, host: Option<&str>) -> (u16, Bytes) {
    let io = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .uri(uri)
        .version(http::Version::HTTP_2);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let resp = tokio::time::timeout(WAIT, tx.send_request(req))
        .await
        .expect("h2 response in time")
        .unwrap();
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("h2 body in time")
        .unwrap()
        .to_bytes();
    (status, body)
}

#[tokio::test]
async fn h2_authority_decides_and_a_disagreeing_host_is_malformed() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let uri = "http://good.example/v1/partner/user/x";
    let (status, body) = h2_request(&gw, uri, Some("evil.example")).await;
    assert_eq!(status, 400, "{body:?}");
    assert_eq!(up.count(), 0);
    let (status, _) = h2_request(&gw, uri, Some("GOOD.example")).await;
    assert_eq!(status, 200);
    let (status, _) = h2_request(&gw, uri, None).await;
    assert_eq!(status, 200);
    assert_eq!(up.count(), 2);
    // X-Forwarded-Host comes from :authority, as routing does.
    assert_eq!(up.last().headers["x-forwarded-host"], "good.example");
}

#[tokio::test]
async fn h2_authority_chooses_the_host_route() {
    let up = Upstream::start().await;
    let config = BASIC.replace(
        "[[routes]]\npath = \"/v1/partner/user/\"",
        "[[routes]]\npath = \"/v1/partner/user/\"\nhost = \"a.example\"\nclass = \"user\"\nupstream = \"echo\"\n\n[[routes]]\npath = \"/v1/partner/user/\"",
    );
    let gw = gateway(&config, Some(up.addr)).await;
    let (status, body) = h2_request(&gw, "http://a.example/v1/partner/user/x", None).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("\"path\""),
        "echo answered: {body:?}"
    );
    assert_eq!(up.count(), 0, "the host route (echo) took it");
    let (status, _) = h2_request(&gw, "http://b.example/v1/partner/user/x", None).await;
    assert_eq!(status, 200);
    assert_eq!(up.count(), 1, "another authority takes the host-less route");
}
