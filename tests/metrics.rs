//! Metrics: after traffic of every kind, `/metrics` on the admin listener carries the per-route
//! and per-class series with the right labels and counts. The tests of this binary share one
//! process-wide recorder, so each test counts on routes no other test here sends to.

mod common;
mod metrics_support;

use metrics_support::{Scene, samples, value};

fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

#[tokio::test]
async fn every_kind_of_request_is_counted_by_route_class_status_and_code() {
    let scene = metrics_support::start().await;
    scene.drive().await;
    let text = scene.scrape().await;

    let req = "portcullis_route_requests_total";
    let ok = [("route", "obs-api"), ("class", "user"), ("status", "2xx")];
    assert_eq!(count(&text, req, &ok), 1.0);
    let none = [("route", "-"), ("class", "user"), ("status", "4xx")];
    assert_eq!(count(&text, req, &none), 1.0, "an unmatched request");
    let tight = [("route", "obs-tight"), ("class", "tight")];
    assert_eq!(
        count(&text, req, &[tight[0], tight[1], ("status", "2xx")]),
        1.0
    );
    assert_eq!(
        count(&text, req, &[tight[0], tight[1], ("status", "4xx")]),
        1.0
    );
    assert_eq!(
        count(&text, req, &[("route", "obs-down"), ("status", "5xx")]),
        1.0
    );

    let rej = "portcullis_route_rejects_total";
    let cases = [
        ("-", "user", "not_found"),
        ("obs-slow", "user", "upstream_timeout"),
        ("obs-down", "user", "bad_gateway"),
        ("obs-tls", "user", "bad_gateway"),
        ("obs-reset", "user", "bad_gateway"),
        ("obs-tight", "tight", "rate_limit_exceeded"),
        ("obs-bearer", "user", "missing_authorization"),
        ("obs-oauth", "oauth", "invalid_client"),
    ];
    for (route, class, code) in cases {
        let labels = [("route", route), ("class", class), ("code", code)];
        assert_eq!(count(&text, rej, &labels), 1.0, "{route} {code}");
    }
    assert_eq!(
        count(
            &text,
            "portcullis_too_many_requests_total",
            &[("class", "tight")]
        ),
        1.0
    );

    let up = "portcullis_upstream_errors_total";
    assert_eq!(
        count(&text, up, &[("upstream", "down"), ("kind", "connect")]),
        1.0
    );
    assert_eq!(
        count(&text, up, &[("upstream", "app"), ("kind", "timeout")]),
        1.0
    );
    assert_eq!(
        count(&text, up, &[("upstream", "plain"), ("kind", "tls")]),
        1.0
    );
    assert_eq!(
        count(&text, up, &[("upstream", "closer"), ("kind", "reset")]),
        1.0
    );

    // Histograms: requests to their response head, and the upstream's part of it.
    let dur = "portcullis_request_duration_seconds_count";
    assert_eq!(count(&text, dur, &[("route", "obs-api")]), 1.0);
    let tight_dur = [("route", "obs-tight"), ("class", "tight")];
    assert_eq!(count(&text, dur, &tight_dur), 2.0, "refused ones too");
    let upd = "portcullis_upstream_duration_seconds_count";
    assert_eq!(count(&text, upd, &[("route", "obs-api")]), 1.0);
    assert_eq!(count(&text, upd, &[("route", "obs-bearer")]), 1.0);
    let slow = count(
        &text,
        "portcullis_upstream_duration_seconds_sum",
        &[("route", "obs-slow")],
    );
    assert!(
        (0.3..2.0).contains(&slow),
        "the timed-out request waited its 300ms timeout: {slow}"
    );
    assert!(
        value(&text, upd, &[("route", "obs-tight")]) == Some(1.0),
        "the refused one never went upstream"
    );

    for grant in ["client_credentials", "refresh_token"] {
        let issued = count(&text, "portcullis_tokens_issued_total", &[("grant", grant)]);
        assert_eq!(issued, 1.0, "{grant}");
    }
    let jwks = "portcullis_jwks_refresh_total";
    let good = format!("http://{}/.well-known/jwks.json", scene.issuer.addr);
    assert!(count(&text, jwks, &[("url", &good), ("result", "ok")]) >= 1.0);
    let bad = format!("http://{}/not-a-jwks", scene.up.addr);
    assert!(count(&text, jwks, &[("url", &bad), ("result", "error")]) >= 1.0);

    // The refused second request never reached the upstream (the TLS attempt was no HTTP
    // request at all).
    let tight = scene
        .up
        .requests()
        .into_iter()
        .filter(|s| s.path == "/tight/a");
    assert_eq!(tight.count(), 1);
}

#[tokio::test]
async fn series_survive_a_reload_and_the_old_class_series_stay() {
    let scene: Scene = metrics_support::start().await;
    let before = samples(&scene.scrape().await);
    assert!(
        before
            .keys()
            .any(|k| k.starts_with("portcullis_requests_total{")),
        "the per-class series the console reads are still there"
    );
    assert!(
        before
            .keys()
            .any(|k| k.starts_with("portcullis_route_requests_total{")
                && k.contains("route=\"obs-keyed\"")),
        "per-route series are registered at compile time, before any request"
    );
    let r = common::client()
        .post(format!("{}/reload", scene.admin))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = common::client()
        .get(scene.gw.url("/keyed/x"))
        .header("x-api-key", metrics_support::API_KEY)
        .header("x-client-id", metrics_support::APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = scene.scrape().await;
    let labels = [("route", "obs-keyed"), ("status", "2xx")];
    assert_eq!(
        count(&text, "portcullis_route_requests_total", &labels),
        1.0
    );
}
