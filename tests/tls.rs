//! TLS: a real certificate minted at test time; HTTP/1.1 and h2 negotiated by ALPN.

mod common;
mod pki;
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

/// An HTTPS upstream whose certificate comes from a private CA (minted here): it answers 200
/// with a fixed body over HTTP/1.1.
async fn private_ca_upstream(dir: &std::path::Path) -> std::net::SocketAddr {
    use hyper_util::rt::TokioIo;
    let acceptor = pki::private_ca_acceptor(dir, "upstream");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"over private TLS")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_needs_its_ca_file() {
    portcullis::install_crypto();
    let dir = temp_dir("upstream-ca");
    let up = private_ca_upstream(&dir).await;
    let config = |ca: &str| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[limits]
upstream_response_timeout = "2s"
upstream_connect_timeout = "1s"

[classes.user]
errors = "partner"

[upstreams.internal]
url = "https://{up}"
{ca}

[[routes]]
path = "/"
class = "user"
upstream = "internal"
"#
        )
    };
    // Trusting the private CA: the exchange goes through, over TLS.
    let ca_line = format!("ca_file = \"{}/internal-ca.pem\"", dir.display());
    let gw = gateway(&config(&ca_line), None).await;
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "over private TLS");
    gw.stop().await;
    // With the public roots only, the upstream's certificate is refused: 502, not a bypass.
    let gw = gateway(&config(""), None).await;
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    gw.stop().await;
}

/// An `https` upstream that accepts the TCP connection and never answers the ClientHello: the
/// whole connect (TCP and TLS) is bounded by `upstream_connect_timeout`, so the client gets
/// `502 bad_gateway` in about that time, not after `upstream_response_timeout`.
#[tokio::test]
async fn an_upstream_tls_handshake_that_never_ends_is_bounded_by_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            let _ = seen_tx.send(());
            held.push(s); // accepted, read nothing, never answer
        }
    });
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[limits]
upstream_response_timeout = "20s"
upstream_connect_timeout = "400ms"

[classes.user]
errors = "partner"

[upstreams.silent]
url = "https://{up}"

[[routes]]
path = "/"
class = "user"
upstream = "silent"
"#
    );
    let gw = gateway(&config, None).await;
    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client().get(gw.url("/x")).send(),
    )
    .await
    .expect("answered within the bound")
    .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 502);
    assert_eq!(json(resp).await["code"], "bad_gateway");
    assert!(seen_rx.try_recv().is_ok(), "the TCP connection was made");
    assert!(took >= std::time::Duration::from_millis(350), "{took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    gw.stop().await;
}

#[test]
fn ca_file_on_a_plain_http_upstream_is_a_config_error() {
    let dir = temp_dir("ca-on-http");
    std::fs::write(dir.join("ca.pem"), "").unwrap();
    let text = r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
[classes.user]
errors = "partner"
[upstreams.app]
url = "http://127.0.0.1:9"
ca_file = "ca.pem"
[[routes]]
path = "/"
class = "user"
upstream = "app"
"#;
    let path = dir.join("portcullis.toml");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let shared = portcullis::config::Shared::new(portcullis::clock::SystemClock::shared());
    let err = portcullis::config::load_str(
        portcullis::config::Source::new(&path, text.to_string()),
        &shared,
    )
    .unwrap_err();
    let all: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert!(
        all.iter().any(|d| d.contains("upstreams.app.ca_file") && d.contains("only to an https upstream")),
        "{all:?}"
    );
}
