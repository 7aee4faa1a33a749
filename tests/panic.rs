//! A panic in one request's handler answers `500 internal_server_error` with its request id and
//! the connection (and process) keeps serving. Driven through `server::catch::catch_panic` on a
//! real listener whose handler panics for one path; no backdoor in the gateway's request path.

mod wire;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::proxy::body::{Body, full};
use portcullis::request_id::RequestId;
use portcullis::server::catch::catch_panic;
use tokio::net::{TcpListener, TcpStream};
use wire::*;

async fn handler(req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() == "/panic" {
        // An index out of bounds, as a real bug would be.
        let empty: Vec<u8> = Vec::new();
        let _ = empty[req.uri().path().len()];
    }
    Response::new(full("served"))
}

async fn listener() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let id = RequestId::from_headers(req.headers());
                    Ok::<_, Infallible>(catch_panic(handler(req), id).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

async fn exchange(s: &mut TcpStream, path: &str) -> String {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: req-{}\r\n\r\n",
        &path[1..]
    );
    send(s, req.as_bytes()).await;
    let head = read_head(s).await.expect("a response head");
    let mut body = vec![0u8; content_length(&head)];
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_exact(s, &mut body),
    )
    .await
    .expect("body in time")
    .expect("body");
    format!("{head}{}", String::from_utf8_lossy(&body))
}

#[tokio::test]
async fn a_panicking_request_is_500_with_its_request_id_and_the_connection_keeps_serving() {
    let addr = listener().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut s, "/before").await.ends_with("served"));
    let resp = exchange(&mut s, "/panic").await;
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    assert!(
        resp.contains("\"code\":\"internal_server_error\""),
        "{resp}"
    );
    assert!(resp.contains("\"request_id\":\"req-panic\""), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("x-request-id: req-panic"),
        "{resp}"
    );
    assert!(
        !resp.contains("index out of bounds"),
        "no panic text leaks: {resp}"
    );
    // Same connection, next request: served.
    let after = exchange(&mut s, "/after").await;
    assert!(
        after.starts_with("HTTP/1.1 200") && after.ends_with("served"),
        "{after}"
    );
    // And a new connection too.
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut fresh, "/fresh").await.ends_with("served"));
}
