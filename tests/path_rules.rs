//! Path rules: paths a backend could read differently from the gateway are refused with 400 and
//! never forwarded; a route can opt in to keeping encoded slashes; the path a route was chosen
//! by is exactly the path the upstream receives (property test over the wire).

mod common;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(5);

async fn get(gw: &TestGateway, path: &str) -> String {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw_exchange(gw.addr, raw.as_bytes(), WAIT).await
}

#[tokio::test]
async fn ambiguous_paths_are_400_and_never_forwarded() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for path in [
        "/v1/partner/user/a%2fb",
        "/v1/partner/user/..%2f..%2fadmin",
        "/v1/partner/user/a%5cb",
        "/v1/partner/user/a\\b",
        "/v1/partner/user/..\\..\\admin",
        "/v1/partner/user/a%00",
        "/v1/partner/user/a%0d%0aX-Injected:%201",
        "/v1/partner/user/a%0a",
        "/v1/partner/user/%c0%ae%c0%ae/admin",
        "/v1/partner/user/%e0%80%ae",
        "/v1/partner/user/%ff",
        "/v1/partner/user/..;/admin/app",
        "/v1/partner/user/%2e%2e;x=1/admin/app",
        "/v1/partner/user/.;/x",
    ] {
        let resp = get(&gw, path).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(
            resp.contains("\"code\":\"invalid_request\""),
            "{path}: {resp}"
        );
    }
    assert_eq!(up.count(), 0, "no ambiguous path reached the upstream");
    // Valid UTF-8 escapes and parameters on ordinary segments pass unchanged.
    for path in ["/v1/partner/user/caf%C3%A9", "/v1/partner/user/a;v=1/b"] {
        let resp = get(&gw, path).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path}: {resp}");
        assert_eq!(up.last().path, path);
    }
}

/// A target sent with a `#fragment` is 400 and never forwarded (RFC 9112 section 3.2). The http
/// crate drops the fragment while parsing, so the gateway finds it on the wire; a `#` in a header
/// or a body, an encoded `%23`, and the next request on the connection are not affected.
#[tokio::test]
async fn a_fragment_is_400_and_never_reaches_the_upstream() {
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    for path in [
        "/v1/partner/user/a#/../../admin/app",
        "/v1/partner/user/a?x=1#frag",
        "/v1/partner/user/a#",
    ] {
        let resp = get(&gw, path).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(
            resp.contains("\"code\":\"invalid_request\""),
            "{path}: {resp}"
        );
        assert!(resp.contains("fragment"), "{path}: {resp}");
    }
    assert_eq!(
        up.count(),
        0,
        "no request with a fragment reached the upstream"
    );
    let resp = get(&gw, "/v1/partner/user/a%23b").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(up.last().path, "/v1/partner/user/a%23b");
    // Pipelined on one connection: a body and a header holding `#` and a request-line
    // lookalike, then the same target with a fragment, then without.
    let body = "GET /v1/partner/user/z#x HTTP/1.1\r\n";
    let raw = format!(
        "POST /v1/partner/user/b HTTP/1.1\r\nHost: t\r\nX-Tag: #1\r\nContent-Length: {}\r\n\r\n{body}\
         GET /v1/partner/user/c#x HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /v1/partner/user/c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let resp = raw_exchange(gw.addr, raw.as_bytes(), WAIT).await;
    let statuses: Vec<&str> = resp
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &resp[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400", "200"], "{resp}");
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "the %23 GET, the POST and the last GET");
    assert_eq!(seen[1].path, "/v1/partner/user/b");
    assert_eq!(seen[1].body_len, body.len());
    assert_eq!(seen[2].path, "/v1/partner/user/c");
}

#[tokio::test]
async fn a_route_can_keep_encoded_slashes() {
    let up = Upstream::start().await;
    let config = BASIC.replace(
        "[[routes]]\npath = \"/big/\"",
        "[[routes]]\npath = \"/files/\"\nclass = \"user\"\nupstream = \"app\"\nallow_encoded_slashes = true\n\n[[routes]]\npath = \"/big/\"",
    );
    let gw = gateway(&config, Some(up.addr)).await;
    let resp = get(&gw, "/files/a%2fb%2Fc").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(up.last().path, "/files/a%2Fb%2Fc", "kept, upper-cased");
    // Other routes still refuse them, and the other rules still hold on the opted-in route.
    assert!(
        get(&gw, "/v1/partner/user/a%2fb")
            .await
            .starts_with("HTTP/1.1 400")
    );
    assert!(get(&gw, "/files/a%5cb").await.starts_with("HTTP/1.1 400"));
    assert_eq!(up.count(), 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever the raw path, a forwarded request carries exactly the normalized path the
    /// route was chosen by (the `/v1/partner/user` route is the only one on `app`), and
    /// normalizing it again changes nothing.
    #[test]
    fn matched_path_is_the_forwarded_path(tail in "[a./;%2eEfF]{0,10}(/[a./;%2eEfF]{0,6}){0,3}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let up = Upstream::start().await;
            let gw = gateway(BASIC, Some(up.addr)).await;
            let raw = format!("/v1/partner/user/{tail}");
            let resp = get(&gw, &raw).await;
            let expected = portcullis::route::normalize_path(&raw).map(|p| p.into_owned());
            match (up.requests().pop(), expected) {
                (Some(seen), Ok(norm)) => {
                    proptest::prop_assert_eq!(&seen.path, &norm);
                    proptest::prop_assert!(norm == "/v1/partner/user" || norm.starts_with("/v1/partner/user/"), "{}", norm);
                    let again = portcullis::route::normalize_path(&norm).unwrap().into_owned();
                    proptest::prop_assert_eq!(again, norm);
                }
                (Some(seen), Err(_)) => proptest::prop_assert!(false, "forwarded a refused path {}", seen.path),
                (None, Ok(norm)) => proptest::prop_assert!(
                    !norm.starts_with("/v1/partner/user") || resp.starts_with("HTTP/1.1 400"),
                    "{} -> {}: {}", raw, norm, resp
                ),
                (None, Err(_)) => proptest::prop_assert!(resp.starts_with("HTTP/1.1 400"), "{}", resp),
            }
            gw.stop().await;
            Ok(())
        })?;
    }
}
