//! Inbound webhook verification over the wire: a real gateway on a manual clock, a real
//! recording upstream, signatures made by the reference algorithms in `webhook_support`.
//! Valid webhooks reach the upstream byte for byte; every refusal is the route's envelope and
//! reaches nothing.

mod common;
mod webhook_support;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use portcullis::clock::ManualClock;
use webhook_support::*;

const OLD: &str = "contio-old-secret-0123456789";
const NEW: &str = "contio-new-secret-9876543210";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn config() -> String {
    let (old, new) = (secret_file(OLD), secret_file(NEW));
    let std = secret_file(WHSEC);
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "partner"

[limits]
body_idle_timeout = "300ms"
upstream_response_timeout = "2s"

[classes.partner]
errors = "partner"

[upstreams.app]
url = "http://{{UPSTREAM}}"

[webhooks.inbound.contio]
scheme = "custom"
signature_header = "X-Contio-Signature"
timestamp_header = "X-Contio-Timestamp"
encoding = "hex"
signed_payload = "{{timestamp}}.{{body}}"
secrets = ["file:{old}", "file:{new}"]
max_body = "4KiB"

[webhooks.inbound.prefixed]
scheme = "custom"
signature_header = "X-Signature"
timestamp_header = "X-Timestamp"
prefix = "sha256="
secrets = ["file:{new}"]

[webhooks.inbound.std]
scheme = "standard"
secrets = ["file:{std}"]

[[routes]]
path = "/hooks/contio/"
class = "partner"
auth = "webhook"
webhook = "contio"
upstream = "app"

[[routes]]
path = "/hooks/prefixed/"
class = "partner"
auth = "webhook"
webhook = "prefixed"
upstream = "app"

[[routes]]
path = "/hooks/std/"
class = "partner"
auth = "webhook"
webhook = "std"
upstream = "app"

[[routes]]
path = "/status/"
class = "partner"
auth = "webhook"
webhook = "contio"
upstream = "app"
"#,
        old = old.display(),
        new = new.display(),
        std = std.display(),
    )
}

struct Setup {
    up: Upstream,
    gw: TestGateway,
    clock: Arc<ManualClock>,
}

async fn setup() -> Setup {
    let up = Upstream::start().await;
    let clock = ManualClock::new(T0);
    let gw = gateway_with_clock(&config(), Some(up.addr), clock.clone()).await;
    Setup { up, gw, clock }
}

const BODY: &[u8] = br#"{"event":"action_item.created","id":"ai_1"}"#;

async fn post(s: &Setup, path: &str, headers: &[(&str, String)], body: &[u8]) -> reqwest::Response {
    let mut req = client().post(s.gw.url(path)).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    req.send().await.unwrap()
}

async fn contio(s: &Setup, ts: &str, sig: &str, body: &[u8]) -> reqwest::Response {
    let h = [
        ("x-contio-timestamp", ts.to_string()),
        ("x-contio-signature", sig.to_string()),
    ];
    post(s, "/hooks/contio/events", &h, body).await
}

async fn refused(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status(), status);
    let v = json(resp).await;
    assert_eq!(v["code"], code, "{v}");
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
}

#[tokio::test]
async fn a_valid_chunked_webhook_reaches_the_upstream_byte_for_byte() {
    let s = setup().await;
    // Non-canonical JSON: odd spacing, key order, escapes, UTF-8, a trailing newline.
    let body = "{ \"b\" :1,\"a\":[ 2 ,1 ],\"s\":\"\\u00e9 é\\n\" }\n".as_bytes();
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, body);
    let head = format!(
        "POST /hooks/contio/events HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
         X-Contio-Timestamp: {ts}\r\nX-Contio-Signature: {sig}"
    );
    let (status, out) = raw_chunked_post(s.gw.addr, &head, body, 7).await;
    assert_eq!(status, 200, "{out}");
    let seen = s.up.last();
    assert_eq!(seen.body, body);
    assert_eq!(seen.path, "/hooks/contio/events");
}

#[tokio::test]
async fn a_valid_sized_webhook_is_forwarded_exactly() {
    let s = setup().await;
    let body = b"{\"z\":  0.10,\n \"a\": \"x\"}";
    let ts = T0.to_string();
    let resp = contio(&s, &ts, &contio_signature(NEW, &ts, body), body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(s.up.last().body, body);
}

#[tokio::test]
async fn an_unsigned_post_is_refused_and_not_forwarded() {
    let s = setup().await;
    let resp = post(&s, "/hooks/contio/events", &[], BODY).await;
    assert_eq!(resp.headers()["www-authenticate"], "Webhook");
    refused(resp, 401, "invalid_signature").await;
    // A bearer token is no substitute for the signature.
    let h = [("authorization", "Bearer abc.def.ghi".to_string())];
    refused(
        post(&s, "/hooks/contio/x", &h, BODY).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn the_window_holds_on_both_sides() {
    let s = setup().await;
    s.clock.advance_secs(1000);
    let now = T0 + 1000;
    for (ts, ok) in [
        (now - 300, true),
        (now + 300, true),
        (now - 301, false),
        (now + 301, false),
    ] {
        let ts = ts.to_string();
        let resp = contio(&s, &ts, &contio_signature(OLD, &ts, BODY), BODY).await;
        if ok {
            assert_eq!(resp.status(), 200, "ts {ts}");
        } else {
            refused(resp, 401, "timestamp_out_of_window").await;
        }
    }
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn malformed_timestamps_are_refused() {
    let s = setup().await;
    let t = T0.to_string();
    for ts in [
        format!("+{t}"),
        format!("-{t}"),
        format!("{t}.0"),
        format!("{t}.5"),
        "1700 000000".to_string(),
        "1.7e9".to_string(),
        "0x6553f100".to_string(),
        format!("000{t}"),
        String::new(),
    ] {
        let resp = contio(&s, &ts, &contio_signature(OLD, &ts, BODY), BODY).await;
        refused(resp, 401, "invalid_timestamp").await;
    }
    assert_eq!(s.up.count(), 0);
}

/// Digits moved across the timestamp/body boundary do not keep a signature valid: the
/// separator is signed and the timestamp must be digits only.
#[tokio::test]
async fn the_timestamp_body_boundary_cannot_be_shifted() {
    let s = setup().await;
    let ts = T0.to_string();
    let body = b"0.{\"amount\":1}";
    let sig = contio_signature(OLD, &ts, body);
    // Same signed bytes "1700000000.0.{...}" split differently.
    let shifted_ts = format!("{ts}.0");
    refused(
        contio(&s, &shifted_ts, &sig, b"{\"amount\":1}").await,
        401,
        "invalid_timestamp",
    )
    .await;
    let (short_ts, moved) = ts.split_at(ts.len() - 1);
    let shifted_body = format!("{moved}.0.{{\"amount\":1}}");
    let resp = contio(&s, short_ts, &sig, shifted_body.as_bytes()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn tampered_bodies_are_refused() {
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    let mut flipped = BODY.to_vec();
    flipped[3] ^= 1;
    let mut longer = BODY.to_vec();
    longer.push(b'\n');
    for body in [flipped, longer, BODY[..BODY.len() - 1].to_vec(), Vec::new()] {
        refused(contio(&s, &ts, &sig, &body).await, 401, "invalid_signature").await;
    }
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn every_malformed_signature_form_is_refused() {
    let s = setup().await;
    let ts = T0.to_string();
    let good = contio_signature(OLD, &ts, BODY);
    let b64 = {
        use base64::Engine;
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&good[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    for sig in [
        good[..63].to_string(),
        good[..62].to_string(),
        format!("{good}0"),
        format!("{good}00"),
        format!("sha256={good}"),
        format!("{}g", &good[..63]),
        format!("{good},{good}"),
        b64,
        String::new(),
    ] {
        refused(contio(&s, &ts, &sig, BODY).await, 401, "invalid_signature").await;
    }
    // A prefixed scheme: another algorithm's prefix, a different case, or no prefix.
    let sig = contio_signature(NEW, &ts, BODY);
    for value in [
        format!("sha1={sig}"),
        format!("SHA256={sig}"),
        sig.clone(),
        format!("sha256= {sig}"),
    ] {
        let h = [("x-timestamp", ts.clone()), ("x-signature", value)];
        refused(
            post(&s, "/hooks/prefixed/a", &h, BODY).await,
            401,
            "invalid_signature",
        )
        .await;
    }
    let h = [
        ("x-timestamp", ts.clone()),
        ("x-signature", format!("sha256={sig}")),
    ];
    assert_eq!(post(&s, "/hooks/prefixed/a", &h, BODY).await.status(), 200);
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn duplicated_signature_or_timestamp_headers_are_invalid_requests() {
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    let twice_sig = [
        ("x-contio-timestamp", ts.clone()),
        ("x-contio-signature", sig.clone()),
        ("x-contio-signature", sig.clone()),
    ];
    refused(
        post(&s, "/hooks/contio/a", &twice_sig, BODY).await,
        400,
        "invalid_request",
    )
    .await;
    let twice_ts = [
        ("x-contio-timestamp", ts.clone()),
        ("x-contio-timestamp", ts.clone()),
        ("x-contio-signature", sig),
    ];
    refused(
        post(&s, "/hooks/contio/a", &twice_ts, BODY).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn a_replayed_webhook_is_refused_until_its_window_passes() {
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    assert_eq!(contio(&s, &ts, &sig, BODY).await.status(), 200);
    s.clock.advance_secs(299);
    refused(contio(&s, &ts, &sig, BODY).await, 401, "replayed_webhook").await;
    s.clock.advance_secs(2);
    refused(
        contio(&s, &ts, &sig, BODY).await,
        401,
        "timestamp_out_of_window",
    )
    .await;
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_webhook_the_upstream_failed_on_may_be_retried() {
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    let h = [
        ("x-contio-timestamp", ts.clone()),
        ("x-contio-signature", sig),
    ];
    assert_eq!(post(&s, "/status/503", &h, BODY).await.status(), 503);
    // The 5xx did not consume the webhook: the sender's retry passes verification again.
    assert_eq!(post(&s, "/status/503", &h, BODY).await.status(), 503);
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn rotation_accepts_either_configured_secret_and_no_other() {
    let s = setup().await;
    let ts = T0.to_string();
    let a = br#"{"n":1}"#;
    let b = br#"{"n":2}"#;
    assert_eq!(
        contio(&s, &ts, &contio_signature(OLD, &ts, a), a)
            .await
            .status(),
        200
    );
    assert_eq!(
        contio(&s, &ts, &contio_signature(NEW, &ts, b), b)
            .await
            .status(),
        200
    );
    let other = contio_signature("some-other-secret-000000", &ts, BODY);
    refused(
        contio(&s, &ts, &other, BODY).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(s.up.count(), 2);
}

#[tokio::test]
async fn bodies_over_the_cap_are_413_and_never_forwarded() {
    let s = setup().await;
    let ts = T0.to_string();
    let big = vec![b'x'; 4097];
    let resp = contio(&s, &ts, &contio_signature(OLD, &ts, &big), &big).await;
    refused(resp, 413, "payload_too_large").await;
    // Chunked: no declared length; the cap cuts it while buffering.
    let head = format!(
        "POST /hooks/contio/a HTTP/1.1\r\nHost: gw\r\nX-Contio-Timestamp: {ts}\r\n\
         X-Contio-Signature: {}",
        contio_signature(OLD, &ts, &big)
    );
    let (status, _) = raw_chunked_post(s.gw.addr, &head, &big, 1000).await;
    assert_eq!(status, 413);
    let exact = vec![b'x'; 4096];
    assert_eq!(
        contio(&s, &ts, &contio_signature(OLD, &ts, &exact), &exact)
            .await
            .status(),
        200
    );
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_slow_body_is_cut_off_by_the_body_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    let mut sock = tokio::net::TcpStream::connect(s.gw.addr).await.unwrap();
    let head = format!(
        "POST /hooks/contio/a HTTP/1.1\r\nHost: gw\r\nContent-Length: {}\r\n\
         X-Contio-Timestamp: {ts}\r\nX-Contio-Signature: {sig}\r\n\r\n",
        BODY.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&BODY[..10]).await.unwrap();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut out = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut sock, &mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("the gateway answered a stalled body");
    assert_eq!(status_of(&read), 408, "{read}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn standard_webhooks_verify_by_id_and_any_v1_signature() {
    let s = setup().await;
    let ts = T0.to_string();
    let good = standard_signature(WHSEC, "msg_1", &ts, BODY);
    let other = standard_signature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_1", &ts, BODY);
    let headers = |id: &str, sig: String| {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", sig),
        ]
    };
    // Several signatures in one header; other versions are skipped.
    let multi = format!("{other} v1a,c29tZXRoaW5n {good}");
    assert_eq!(
        post(&s, "/hooks/std/e", &headers("msg_1", multi), BODY)
            .await
            .status(),
        200
    );
    // The same id again, even re-signed at a later time, is a replay.
    s.clock.advance_secs(10);
    let later = (T0 + 10).to_string();
    let resigned = standard_signature(WHSEC, "msg_1", &later, BODY);
    let h = vec![
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", later.clone()),
        ("webhook-signature", resigned),
    ];
    refused(
        post(&s, "/hooks/std/e", &h, BODY).await,
        401,
        "replayed_webhook",
    )
    .await;
    // No v1 entry, a v1 entry of the wrong length, a wrong id: refused.
    let sig2 = standard_signature(WHSEC, "msg_2", &later, BODY);
    for (id, sig) in [
        ("msg_2", sig2.replace("v1,", "v2,")),
        ("msg_2", format!("{}A", sig2)),
        ("msg_3", sig2.clone()),
        ("msg_2", sig2.replace("v1,", "")),
    ] {
        let h = vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", later.clone()),
            ("webhook-signature", sig),
        ];
        refused(
            post(&s, "/hooks/std/e", &h, BODY).await,
            401,
            "invalid_signature",
        )
        .await;
    }
    // The id is part of what is signed: no id header, no verification.
    let h = vec![
        ("webhook-timestamp", later.clone()),
        ("webhook-signature", sig2),
    ];
    refused(
        post(&s, "/hooks/std/e", &h, BODY).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(s.up.count(), 1);
}

#[tokio::test]
async fn a_reload_does_not_reopen_a_replay_window() {
    let s = setup().await;
    let ts = T0.to_string();
    let sig = contio_signature(OLD, &ts, BODY);
    assert_eq!(contio(&s, &ts, &sig, BODY).await.status(), 200);
    s.gw.gw.reload().await.expect("the same config reloads");
    refused(contio(&s, &ts, &sig, BODY).await, 401, "replayed_webhook").await;
    assert_eq!(s.up.count(), 1);
}

/// HTTP/2 carries the body in DATA frames: the signature covers the same bytes.
#[tokio::test]
async fn a_valid_webhook_over_http2_is_forwarded_exactly() {
    let s = setup().await;
    let ts = T0.to_string();
    let body = b"{\"h2\":  true}";
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(s.gw.url("/hooks/contio/h2"))
        .header("x-contio-timestamp", ts.as_str())
        .header("x-contio-signature", contio_signature(NEW, &ts, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(s.up.last().body, body);
}

/// The access event of a verified webhook says `auth = "webhook"`; a refused one says `none`
/// with its code.
#[tokio::test]
async fn the_access_log_names_a_verified_webhook() {
    let logs = global_json_logs();
    let s = setup().await;
    let ts = T0.to_string();
    let signed = [
        ("x-contio-timestamp", ts.clone()),
        ("x-contio-signature", contio_signature(NEW, &ts, BODY)),
        ("x-request-id", "hook-ok".to_string()),
    ];
    let resp = post(&s, "/hooks/contio/events", &signed, BODY).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    let unsigned = [("x-request-id", "hook-unsigned".to_string())];
    let resp = post(&s, "/hooks/contio/events", &unsigned, BODY).await;
    let _ = resp.bytes().await.unwrap();
    let event = |id: &str| {
        logs.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "access" && v["request_id"] == id)
    };
    let started = std::time::Instant::now();
    while (event("hook-ok").is_none() || event("hook-unsigned").is_none())
        && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ok = event("hook-ok").expect("the verified webhook's event");
    assert_eq!(ok["auth"], "webhook");
    assert_eq!(ok["code"], "");
    assert_eq!(ok["bytes_in"], BODY.len() as u64);
    let refused = event("hook-unsigned").expect("the refused webhook's event");
    assert_eq!(refused["auth"], "none");
    assert_ne!(refused["code"], "", "{refused}");
}
