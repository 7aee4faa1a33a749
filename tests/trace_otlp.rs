//! OTLP export: one span per sampled request, posted as OTLP/HTTP JSON to a real receiver in
//! the test; its ids match the traceparent that came in and the one the upstream received.

mod common;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

/// What the receiver got: (path, content type, body).
type Posts = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A small OTLP/HTTP receiver on 127.0.0.1:0 recording every POST body.
async fn receiver() -> (SocketAddr, Posts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let posts: Posts = Arc::default();
    let seen = posts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let ct = req
                            .headers()
                            .get("content-type")
                            .map_or(String::new(), |v| v.to_str().unwrap().to_string());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push((path, ct, json));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, posts)
}

fn config(collector: SocketAddr) -> String {
    let base = BASIC
        .replace(
            "default_class = \"user\"",
            "default_class = \"user\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
        )
        .replace(
            "[classes.user]\nerrors = \"partner\"",
            "[classes.user]\nlimit = \"100/1m\"\nerrors = \"partner\"",
        )
        .replace(
            "[[routes]]\npath = \"/v1/partner/user/\"",
            "[[routes]]\nname = \"partner-user\"\npath = \"/v1/partner/user/\"",
        );
    format!(
        "{base}\n[tracing]\notlp_endpoint = \"http://{collector}/v1/traces\"\nservice_name = \"edge-test\"\n"
    )
}

/// Every exported span so far, with its resource's service.name.
fn spans(posts: &Posts) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (_, _, body) in posts.lock().unwrap().iter() {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"][0]["value"]["stringValue"]
                .as_str()
                .unwrap_or("")
                .to_string();
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push((service.clone(), s.clone()));
                }
            }
        }
    }
    out
}

/// Waits (at most 10 s) for the span of `trace_id`.
async fn span_of(posts: &Posts, trace_id: &str) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = spans(posts)
            .into_iter()
            .find(|(_, s)| s["traceId"] == trace_id)
        {
            return s;
        }
        assert!(Instant::now() < deadline, "no span for {trace_id} exported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn attr<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {list}"))
}

#[tokio::test]
async fn a_request_is_exported_as_one_server_span_with_its_steps() {
    let (collector, posts) = receiver().await;
    let up = Upstream::start().await;
    let gw = gateway(&config(collector), Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/items"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (service, span) = span_of(&posts, TRACE).await;
    let upstream_tp = up.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        upstream_tp,
        format!("00-{TRACE}-{}-01", span["spanId"].as_str().unwrap())
    );
    assert_eq!(span["parentSpanId"], PARENT);
    assert_eq!(span["traceState"], "congo=t61rcWkgMzE");
    assert_eq!(service, "edge-test");
    assert_eq!(span["name"], "GET partner-user");
    assert_eq!(span["kind"], 2, "SPAN_KIND_SERVER");
    let attrs = &span["attributes"];
    assert_eq!(attr(attrs, "http.request.method")["stringValue"], "GET");
    assert_eq!(
        attr(attrs, "url.path")["stringValue"],
        "/v1/partner/user/items"
    );
    assert_eq!(attr(attrs, "http.response.status_code")["intValue"], "200");
    assert_eq!(attr(attrs, "http.route")["stringValue"], "partner-user");
    assert_eq!(attr(attrs, "client.address")["stringValue"], "127.0.0.1");
    let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start > 0 && end >= start);
    let events: Vec<&str> = span["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "route matched",
            "rate limit",
            "authenticated",
            "upstream response"
        ]
    );
    let rate = &span["events"][1]["attributes"];
    assert_eq!(attr(rate, "allowed")["boolValue"], true);
    assert_eq!(attr(rate, "remaining")["intValue"], "99");
    let head = &span["events"][3]["attributes"];
    assert_eq!(attr(head, "http.response.status_code")["intValue"], "200");
    let (path, content_type, _) = posts.lock().unwrap()[0].clone();
    assert_eq!(
        (path.as_str(), content_type.as_str()),
        ("/v1/traces", "application/json")
    );
}

#[tokio::test]
async fn a_refusal_carries_its_code_and_unsampled_traces_are_not_exported() {
    let (collector, posts) = receiver().await;
    let up = Upstream::start().await;
    let gw = gateway(&config(collector), Some(up.addr)).await;
    let unsampled = "11111111111111111111111111111111";
    let r = client()
        .get(gw.url("/v1/partner/user/quiet"))
        .header("traceparent", format!("00-{unsampled}-{PARENT}-00"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refused = "22222222222222222222222222222222";
    let r = client()
        .get(gw.url("/nowhere"))
        .header("traceparent", format!("00-{refused}-{PARENT}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(up.count(), 1, "the refused request went nowhere");
    let (_, span) = span_of(&posts, refused).await;
    assert_eq!(span["name"], "GET", "no route matched");
    assert_eq!(
        attr(&span["attributes"], "portcullis.refusal")["stringValue"],
        "not_found"
    );
    assert_eq!(
        attr(&span["attributes"], "http.response.status_code")["intValue"],
        "404"
    );
    assert!(span["events"].as_array().unwrap().is_empty());
    // The unsampled request was served first; its span would have been queued before this one.
    assert!(
        spans(&posts).iter().all(|(_, s)| s["traceId"] != unsampled),
        "an unsampled trace is not exported"
    );
}

#[tokio::test]
async fn a_collector_that_never_answers_does_not_hold_up_requests() {
    // Accepts connections and reads nothing: every export waits for otlp_timeout and fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let up = Upstream::start().await;
    let text = config(collector).replace(
        "service_name = \"edge-test\"",
        "service_name = \"edge-test\"\notlp_timeout = \"300ms\"",
    );
    let gw = gateway(&text, Some(up.addr)).await;
    for _ in 0..20 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            client().get(gw.url("/v1/partner/user/x")).send(),
        )
        .await
        .expect("a request is never held by the exporter")
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.count(), 20);
    let snap = gw.gw.snapshot();
    let exporter = snap.trace.exporter().expect("export is on");
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.failed() == 0 {
        assert!(
            Instant::now() < deadline,
            "the stuck export never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exporter.exported(), 0);
}

/// `portcullis check` on a config ending in `[tracing]` + `tracing`.
fn check(tracing: &str) -> (i32, String, String) {
    check_text(&format!("{BASIC}\n[tracing]\n{tracing}\n"))
}

#[test]
fn bad_tracing_values_name_their_line_and_accept_from_any_is_a_note() {
    let lines = BASIC.lines().count() + 3;
    let (code, _, err) = check(
        "otlp_endpoint = \"ftp://127.0.0.1:4318/v1/traces\"\nsample_ratio = 1.5\naccept_from = \"everyone\"",
    );
    assert_eq!(code, 1);
    for (n, key, message) in [
        (lines, "otlp_endpoint", "must be an http:// or https:// URL"),
        (lines + 1, "sample_ratio", "1.5 is not between 0 and 1"),
        (lines + 2, "accept_from", "unknown value \"everyone\""),
    ] {
        let expected = format!("portcullis.toml:{n}:");
        let line = err
            .lines()
            .find(|l| l.contains(&format!("tracing.{key}:")))
            .unwrap_or_else(|| panic!("no diagnostic for {key}: {err}"));
        assert!(line.contains(&expected) && line.contains(message), "{line}");
    }
    let (code, out, _) =
        check("accept_from = \"any\"\notlp_endpoint = \"https://127.0.0.1:4318/v1/traces\"");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: tracing.accept_from = \"any\""), "{out}");
    let (code, out, _) = check("");
    assert_eq!(code, 0);
    assert!(!out.contains("note:"), "{out}");
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_spans_without_holding_requests() {
    // A collector that never answers: the first batch waits out otlp_timeout while the queue
    // of 2 fills up behind it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let up = Upstream::start().await;
    let text = config(collector).replace(
        "service_name = \"edge-test\"",
        "service_name = \"edge-test\"\notlp_timeout = \"10s\"\notlp_queue = 2",
    );
    let gw = gateway(&text, Some(up.addr)).await;
    for _ in 0..12 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            client().get(gw.url("/v1/partner/user/q")).send(),
        )
        .await
        .expect("a full export queue holds up no request")
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.count(), 12);
    let snap = gw.gw.snapshot();
    let exporter = snap.trace.exporter().expect("export is on");
    // One batch in flight (at most the 2 the queue held) plus 2 queued: the rest were dropped.
    assert!(
        exporter.dropped() >= 12 - 2 - 2,
        "dropped {}",
        exporter.dropped()
    );
    assert!(exporter.dropped() <= 11);
    assert_eq!(exporter.exported(), 0);
}
