//! Outbound webhook signing over the wire: the backend posts an event to a `webhook_out` route,
//! the gateway signs it (Standard Webhooks) and delivers it to an allow-listed receiver on
//! 127.0.0.1 that verifies each delivery with the reference algorithm written here. Retries on
//! 5xx and connection failures keep one webhook id; anything off the allow-list is refused.

mod common;
mod webhook_support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use common::*;
use webhook_support::*;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    id: String,
    timestamp: String,
    body: Vec<u8>,
    /// The signature verified with the reference algorithm.
    verified: bool,
}

/// A receiver answering the scripted statuses in order (then 200).
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (seen2, script2) = (seen.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, script) = (seen2.clone(), script2.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| receive(req, seen.clone(), script.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let verified = sig == standard_signature(WHSEC, &id, &ts, &body);
    seen.lock().unwrap().push(Delivery {
        path: parts.uri.path().to_string(),
        id,
        timestamp: ts,
        body: body.to_vec(),
        verified,
    });
    let status = script.lock().unwrap().pop_front().unwrap_or(200);
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Ok(resp)
}

fn config(receiver: SocketAddr, dead: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "internal"

[classes.internal]
errors = "partner"

[upstreams.partner_hooks]
kind = "webhook_out"
webhook = "partners"

[webhooks.outbound.partners]
scheme = "standard"
secret = "file:{secret}"
retries = 2
backoff = "10ms"
timeout = "1s"
destinations = {{ acme = "http://{receiver}/hooks/acme", down = "http://127.0.0.1:{dead}/hooks" }}

[[routes]]
path = "/v1/webhooks/out"
class = "internal"
methods = ["POST"]
upstream = "partner_hooks"
"#,
        secret = secret_file(WHSEC).display(),
    )
}

async fn setup(script: &[u16]) -> (Receiver, TestGateway) {
    let receiver = Receiver::start(script).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = gateway(&config(receiver.addr, dead), None).await;
    (receiver, gw)
}

const EVENT: &[u8] = b"{\"type\": \"invoice.paid\",  \"amount\":10}";

async fn send(gw: &TestGateway, dest: Option<&str>, id: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("/v1/webhooks/out"))
        .header("content-type", "application/json")
        .body(EVENT);
    if let Some(d) = dest {
        req = req.header("x-webhook-destination", d);
    }
    if let Some(i) = id {
        req = req.header("x-webhook-id", i);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_event_is_signed_and_delivered_to_its_allow_listed_destination() {
    let (rx, gw) = setup(&[]).await;
    let resp = send(&gw, Some("acme"), None).await;
    assert_eq!(resp.status(), 200);
    let v = json(resp).await;
    assert_eq!(v["delivered"], true);
    assert_eq!(v["status"], 200);
    assert_eq!(v["attempts"], 1);
    let d = rx.deliveries();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].verified,
        "the receiver's reference check failed: {d:?}"
    );
    assert_eq!(d[0].body, EVENT);
    assert_eq!(d[0].path, "/hooks/acme");
    assert!(d[0].id.starts_with("msg_"));
    assert_eq!(v["webhook_id"], d[0].id.as_str());
    let ts: u64 = d[0].timestamp.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) <= 5);
}

#[tokio::test]
async fn server_errors_are_retried_with_one_webhook_id() {
    let (rx, gw) = setup(&[503, 500]).await;
    let resp = send(&gw, Some("acme"), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["attempts"], 3);
    let d = rx.deliveries();
    assert_eq!(d.len(), 3);
    assert!(
        d.iter()
            .all(|x| x.verified && x.id == d[0].id && x.body == EVENT)
    );
}

#[tokio::test]
async fn exhausted_retries_answer_the_last_status() {
    let (rx, gw) = setup(&[503, 503, 502, 200]).await;
    let resp = send(&gw, Some("acme"), Some("evt_123")).await;
    assert_eq!(resp.status(), 502);
    let v = json(resp).await;
    assert_eq!(v["code"], "webhook_delivery_failed");
    assert!(v["error"].as_str().unwrap().contains("HTTP 502"), "{v}");
    let d = rx.deliveries();
    assert_eq!(d.len(), 3, "retries = 2: three attempts in all");
    // The backend's id is kept across attempts.
    assert!(d.iter().all(|x| x.id == "evt_123" && x.verified));
}

#[tokio::test]
async fn a_4xx_answer_is_final() {
    let (rx, gw) = setup(&[400]).await;
    let resp = send(&gw, Some("acme"), None).await;
    assert_eq!(resp.status(), 502);
    assert!(
        json(resp).await["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 400")
    );
    assert_eq!(rx.deliveries().len(), 1);
}

#[tokio::test]
async fn an_unreachable_destination_is_retried_then_reported() {
    let (_rx, gw) = setup(&[]).await;
    let started = std::time::Instant::now();
    let resp = send(&gw, Some("down"), None).await;
    assert_eq!(resp.status(), 502);
    let v = json(resp).await;
    assert_eq!(v["code"], "webhook_delivery_failed");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{v}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn destinations_off_the_allow_list_are_refused() {
    let (rx, gw) = setup(&[]).await;
    let other = format!("http://{}/hooks/other", rx.addr);
    for dest in [
        other.as_str(),
        "http://169.254.169.254/latest/meta-data",
        "ACME",
        "acme,down",
        "http://127.0.0.1:1/hooks/acme",
    ] {
        let resp = send(&gw, Some(dest), None).await;
        assert_eq!(resp.status(), 403, "{dest}");
        assert_eq!(json(resp).await["code"], "destination_not_allowed");
    }
    let resp = send(&gw, None, None).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["code"], "invalid_request");
    assert!(rx.deliveries().is_empty());
    // The exact allow-listed URL names the destination as well as its key.
    let exact = format!("http://{}/hooks/acme", rx.addr);
    assert_eq!(send(&gw, Some(&exact), None).await.status(), 200);
    assert_eq!(rx.deliveries().len(), 1);
}
