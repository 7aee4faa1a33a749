//! Access log: one JSON event per request with the fields operators search by.

mod common;
use common::*;

#[tokio::test]
async fn one_json_event_per_request() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let up = Upstream::start().await;
    let gw = gateway(BASIC, Some(up.addr)).await;
    let r = client()
        .get(gw.url("/v1/partner/user/logged?q=1"))
        .header("x-request-id", "log-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(gw.url("/missing"))
        .header("x-request-id", "log-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    let ok = &events[0];
    assert_eq!(ok["request_id"], "log-me");
    assert_eq!(
        ok["route"], "/v1/partner/user",
        "an unnamed route is named by its prefix"
    );
    assert_eq!(ok["class"], "user");
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/v1/partner/user/logged");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["upstream"], "app");
    assert!(ok["latency_us"].as_u64().is_some());
    let missing = &events[1];
    assert_eq!(missing["request_id"], "log-404");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["route"], "-");
}
