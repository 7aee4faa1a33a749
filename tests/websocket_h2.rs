//! WebSocket over HTTP/2 (RFC 8441): extended CONNECT on a TLS listener (ALPN h2, certificate
//! minted here) bridged to the echo upstream's HTTP/1.1 upgrade; advertised only with a
//! WebSocket route. The client is the `h2` crate; frames are written by hand (RFC 6455 5.2).

mod common;
mod ws_echo;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2::client::SendRequest;
use http::{Method, Request};
use tokio::net::TcpStream;
use ws_echo::*;

/// A gateway on TLS with `cfg` (`[server]` gets the minted certificate); its CA in DER.
async fn tls_gateway(cfg: &str, up: std::net::SocketAddr) -> (TestGateway, rustls::RootCertStore) {
    let dir = temp_dir("ws-h2");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("server.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "[server]\ntls = {{ cert = \"{0}/server.pem\", key = \"{0}/server.key\" }}",
        dir.display()
    );
    let gw = gateway(&cfg.replacen("[server]", &tls, 1), Some(up)).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    (gw, roots)
}

/// An h2 connection over TLS (ALPN h2), its SETTINGS received.
async fn h2_client(gw: &TestGateway, roots: rustls::RootCertStore) -> SendRequest<Bytes> {
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (send, conn) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = tokio::time::timeout(WAIT, send.ready())
        .await
        .unwrap()
        .unwrap();
    // One plain request: once it is answered, the server's SETTINGS have been read.
    let get = Request::get(format!("https://localhost:{}/missing", gw.addr.port()))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(get, true).unwrap();
    tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    send
}

fn connect_request(gw: &TestGateway, path: &str, key: bool) -> Request<()> {
    let mut b = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://localhost:{}{path}", gw.addr.port()))
        .header("sec-websocket-version", "13")
        .extension(h2::ext::Protocol::from("websocket"));
    if key {
        b = b.header("x-api-key", KEY).header("x-client-id", "acme");
    }
    b.body(()).unwrap()
}

/// A masked client text frame (RFC 6455 section 5.2), payload under 126 bytes.
fn client_frame(text: &str) -> Bytes {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    Bytes::from(f)
}

/// Reads an unmasked server text frame from the stream.
async fn server_frame(body: &mut h2::RecvStream) -> String {
    let mut got = Vec::new();
    loop {
        if got.len() >= 2 && got.len() >= 2 + (got[1] & 0x7f) as usize {
            assert_eq!(got[0], 0x81, "not a final text frame: {got:?}");
            let len = (got[1] & 0x7f) as usize;
            return String::from_utf8(got[2..2 + len].to_vec()).unwrap();
        }
        let chunk = tokio::time::timeout(WAIT, body.data())
            .await
            .expect("no frame in time")
            .expect("stream ended")
            .unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn extended_connect_is_bridged_to_the_upstream_upgrade() {
    let up = EchoUpstream::start().await;
    // A short client_idle_timeout: the tunnel's stream must keep its h2 connection open.
    let cfg = config("").replace(
        "upstream_connect_timeout = \"1s\"",
        "upstream_connect_timeout = \"1s\"\nclient_idle_timeout = \"300ms\"",
    );
    let (gw, roots) = tls_gateway(&cfg, up.addr).await;
    let mut send = h2_client(&gw, roots).await;
    assert!(send.is_extended_connect_protocol_enabled());
    let (resp, mut out) = send
        .send_request(connect_request(&gw, "/ws/live", true), false)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    assert!(!resp.headers().contains_key("sec-websocket-accept"));
    let mut body = resp.into_body();
    // Past client_idle_timeout and the 2 s a closing connection is kept open after it: the
    // connection must not close under the tunnel.
    for i in 0..11 {
        let text = format!("over h2 {i}");
        out.send_data(client_frame(&text), false).unwrap();
        assert_eq!(server_frame(&mut body).await, text);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seen = up.last();
    assert_eq!(seen.path, "/ws/live");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(seen.headers["sec-websocket-version"], "13");
    assert!(seen.headers.contains_key("sec-websocket-key"));
    assert_eq!(seen.headers["x-auth-subject"], "acme");
    assert!(!seen.headers.contains_key("x-api-key"));
    drop(out);
    drop(body);
    drop(send);
    assert!(
        eventually(|| up.ended() == 1).await,
        "the upstream side stayed open"
    );
    assert!(eventually(|| gw.gw.shared().tunnels.open() == 0).await);
}

#[tokio::test]
async fn extended_connect_without_credentials_or_on_a_plain_route_opens_nothing() {
    let up = EchoUpstream::start().await;
    let (gw, roots) = tls_gateway(&config(""), up.addr).await;
    let mut send = h2_client(&gw, roots).await;
    let (resp, _out) = send
        .send_request(connect_request(&gw, "/ws/live", false), false)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 401);
    let (resp, _out) = send
        .send_request(connect_request(&gw, "/plain/live", true), false)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn connect_protocol_is_not_advertised_without_a_websocket_route() {
    let up = EchoUpstream::start().await;
    let cfg = config("").replace("websocket = true", "");
    let (gw, roots) = tls_gateway(&cfg, up.addr).await;
    let send = h2_client(&gw, roots).await;
    assert!(!send.is_extended_connect_protocol_enabled());
}

#[tokio::test]
async fn shutdown_closes_an_h2_tunnel_after_the_grace_period() {
    let up = EchoUpstream::start().await;
    let (gw, roots) = tls_gateway(&config(""), up.addr).await;
    let mut send = h2_client(&gw, roots).await;
    let (resp, mut out) = send
        .send_request(connect_request(&gw, "/ws/drain", true), false)
        .unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    out.send_data(client_frame("before"), false).unwrap();
    assert_eq!(server_frame(&mut body).await, "before");
    let tunnels = gw.gw.shared().tunnels.clone();
    let stop = tokio::spawn(gw.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Within the grace period (1s) the tunnel still carries traffic.
    out.send_data(client_frame("during"), false).unwrap();
    assert_eq!(server_frame(&mut body).await, "during");
    let ended =
        tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = body.data().await {} }).await;
    assert!(ended.is_ok(), "the h2 tunnel outlived the shutdown");
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
    assert_eq!(tunnels.open(), 0);
    assert!(eventually(|| up.ended() == 1).await);
}

/// An upstream that answers every handshake `101` with `accept` (or none): the gateway is the
/// WebSocket client of the bridge and must fail it (RFC 6455 section 4.1).
async fn switching_upstream(accept: Option<&'static str>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut answer = String::from(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                );
                if let Some(a) = accept {
                    answer.push_str(&format!("Sec-WebSocket-Accept: {a}\r\n"));
                }
                answer.push_str("\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
                // Hold the connection: a tunnel opened here would stay open.
                let _ = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_wrong_or_missing_accept_from_the_upstream_is_502_and_opens_no_tunnel() {
    for accept in [Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), None] {
        let up = switching_upstream(accept).await;
        let (gw, roots) = tls_gateway(&config(""), up).await;
        let mut send = h2_client(&gw, roots).await;
        let (resp, _out) = send
            .send_request(connect_request(&gw, "/ws/live", true), false)
            .unwrap();
        let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
        assert_eq!(resp.status(), 502, "accept {accept:?}");
        assert_eq!(gw.gw.shared().tunnels.open(), 0, "accept {accept:?}");
    }
}
