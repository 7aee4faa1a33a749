//! TLS: a real certificate minted at test time; HTTP/1.1 and h2 negotiated by ALPN.

mod common;
use common::*;

fn mint_cert(dir: &std::path::Path) -> reqwest::Certificate {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("server.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap()
}

#[tokio::test]
async fn serves_http1_and_h2_over_tls() {
    let up = Upstream::start().await;
    let dir = temp_dir("tls");
    let ca = mint_cert(&dir);
    let cfg = BASIC.replace(
        "default_class = \"user\"",
        &format!("default_class = \"user\"\ntls = {{ cert = \"{0}/server.pem\", key = \"{0}/server.key\" }}", dir.display()),
    );
    let gw = gateway(&cfg, Some(up.addr)).await;
    let url = format!("https://localhost:{}/v1/partner/user/tls", gw.addr.port());
    for http2 in [false, true] {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca.clone()])
            .resolve("localhost", gw.addr);
        if !http2 {
            b = b.http1_only();
        }
        let r = b.build().unwrap().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.version(),
            if http2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            }
        );
        assert_eq!(up.last().headers["x-forwarded-proto"], "https");
    }
    // A plain-HTTP request on the TLS port gets no HTTP answer and is not forwarded.
    let before = up.count();
    let resp = raw_exchange(
        gw.addr,
        b"GET /v1/partner/user/x HTTP/1.1\r\nHost: t\r\n\r\n",
        std::time::Duration::from_secs(2),
    )
    .await;
    assert!(!resp.starts_with("HTTP/1.1 200"));
    assert_eq!(up.count(), before);
}
