//! Trace context (W3C): a trusted proxy's `traceparent` / `tracestate` continue to the upstream
//! with the gateway's span id as parent; anyone else's (and any invalid one) start a new trace;
//! the access log's `trace_id` is the upstream's.

mod common;
use common::*;

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_PARENT: &str = "00f067aa0ba902b7";

fn incoming(flags: &str) -> String {
    format!("00-{INCOMING_TRACE}-{INCOMING_PARENT}-{flags}")
}

/// BASIC with the test's own peer (127.0.0.1) as a trusted proxy.
fn trusted() -> String {
    BASIC.replace(
        "default_class = \"user\"",
        "default_class = \"user\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
    )
}

/// The access events, captured once for this test binary.
fn logs() -> &'static LogBuf {
    global_json_logs()
}

/// The traceparent fields (trace id, parent id, flags) the upstream received, checked for form.
fn upstream_parent(seen: &Seen) -> (String, String, String) {
    let v = seen
        .headers
        .get("traceparent")
        .expect("the upstream received a traceparent")
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1].len(), 32);
    assert_eq!(parts[2].len(), 16);
    assert!(
        v.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lower-case hex: {v}"
    );
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

async fn send(gw: &TestGateway, headers: &[(&str, &str)], request_id: &str) -> u16 {
    let mut req = client()
        .get(gw.url("/v1/partner/user/traced"))
        .header("x-request-id", request_id);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

fn access_trace_id(request_id: &str) -> String {
    let text = logs().text();
    let event = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "access" && v["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no access event for {request_id}: {text}"));
    event["trace_id"].as_str().expect("trace_id").to_string()
}

#[tokio::test]
async fn a_trusted_proxys_trace_continues_with_a_new_parent_id() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(&trusted(), Some(up.addr)).await;
    let tp = incoming("01");
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let headers = [("traceparent", tp.as_str()), ("tracestate", state)];
    assert_eq!(send(&gw, &headers, "trusted-1").await, 200);
    let seen = up.last();
    let (trace, parent, flags) = upstream_parent(&seen);
    assert_eq!(trace, INCOMING_TRACE, "the same trace");
    assert_ne!(
        parent, INCOMING_PARENT,
        "the gateway is a hop: its own span id"
    );
    assert_eq!(flags, "01", "flags kept");
    assert_eq!(
        seen.headers["tracestate"], state,
        "tracestate passed on unchanged"
    );
    assert_eq!(seen.headers.get_all("traceparent").iter().count(), 1);
    assert_eq!(access_trace_id("trusted-1"), INCOMING_TRACE);

    // An unsampled incoming trace stays unsampled.
    let tp = incoming("00");
    assert_eq!(
        send(&gw, &[("traceparent", tp.as_str())], "trusted-2").await,
        200
    );
    let (trace, _, flags) = upstream_parent(&up.last());
    assert_eq!((trace.as_str(), flags.as_str()), (INCOMING_TRACE, "00"));
    assert!(up.last().headers.get("tracestate").is_none());
}

#[tokio::test]
async fn an_untrusted_peer_gets_a_new_trace_and_its_tracestate_is_dropped() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let tp = incoming("01");
    let headers = [("traceparent", tp.as_str()), ("tracestate", "evil=chosen")];
    assert_eq!(send(&gw, &headers, "untrusted-1").await, 200);
    let seen = up.last();
    let (trace, parent, flags) = upstream_parent(&seen);
    assert_ne!(
        trace, INCOMING_TRACE,
        "a client does not choose the trace id"
    );
    assert_ne!(parent, INCOMING_PARENT);
    assert_eq!(
        flags, "01",
        "new traces are sampled by default (sample_ratio = 1)"
    );
    assert!(
        seen.headers.get("tracestate").is_none(),
        "{:?}",
        seen.headers
    );
    assert_eq!(access_trace_id("untrusted-1"), trace);

    // A request without any trace headers starts one too, with a different id.
    assert_eq!(send(&gw, &[], "untrusted-2").await, 200);
    let (other, _, _) = upstream_parent(&up.last());
    assert_ne!(other, trace);
    assert_eq!(access_trace_id("untrusted-2"), other);
}

#[tokio::test]
async fn invalid_traceparents_from_a_trusted_proxy_start_a_new_trace() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(&trusted(), Some(up.addr)).await;
    let bad = [
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
    ];
    for (i, tp) in bad.iter().enumerate() {
        let id = format!("invalid-{i}");
        let headers = [("traceparent", *tp), ("tracestate", "congo=t61rcWkgMzE")];
        assert_eq!(send(&gw, &headers, &id).await, 200, "{tp}");
        let seen = up.last();
        let (trace, parent, _) = upstream_parent(&seen);
        assert_ne!(trace.to_lowercase(), INCOMING_TRACE, "{tp}");
        assert_ne!(parent.to_lowercase(), INCOMING_PARENT, "{tp}");
        assert!(
            seen.headers.get("tracestate").is_none(),
            "tracestate of a refused traceparent is dropped ({tp})"
        );
        assert_eq!(access_trace_id(&id), trace);
    }
    // A later version is read by its first four fields and goes on as version 00.
    let later = format!("cc-{INCOMING_TRACE}-{INCOMING_PARENT}-01-future");
    assert_eq!(send(&gw, &[("traceparent", &later)], "later").await, 200);
    let (trace, _, flags) = upstream_parent(&up.last());
    assert_eq!((trace.as_str(), flags.as_str()), (INCOMING_TRACE, "01"));
}

#[tokio::test]
async fn accept_from_none_ignores_even_trusted_proxies() {
    logs();
    let up = Upstream::start().await;
    let config = format!("{}\n[tracing]\naccept_from = \"none\"\n", trusted());
    let gw = gateway(&config, Some(up.addr)).await;
    let tp = incoming("01");
    assert_eq!(
        send(&gw, &[("traceparent", tp.as_str())], "none-1").await,
        200
    );
    let (trace, _, _) = upstream_parent(&up.last());
    assert_ne!(trace, INCOMING_TRACE);
}

#[tokio::test]
async fn a_refused_request_is_logged_with_its_trace_id_and_nothing_is_forwarded() {
    logs();
    let up = Upstream::start().await;
    let gw = gateway(&trusted(), Some(up.addr)).await;
    let tp = incoming("01");
    let r = client()
        .get(gw.url("/nowhere"))
        .header("x-request-id", "refused-1")
        .header("traceparent", tp.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(up.count(), 0);
    assert_eq!(access_trace_id("refused-1"), INCOMING_TRACE);
}
