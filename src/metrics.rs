//! Metrics: Prometheus counters and histograms, rendered by the admin listener's `/metrics`.
//!
//! One process-wide recorder (installed on first use); the pipeline records one observation per
//! request. Other modules count their own events through the `metrics` macros.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once; `None` if another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            PrometheusBuilder::new()
                .set_buckets(&latency_buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Records one finished request.
pub fn request(class: &str, status: u16, latency: Duration) {
    let status_class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("portcullis_requests_total", "class" => class.to_string(), "status" => status_class)
        .increment(1);
    metrics::histogram!("portcullis_request_duration_seconds", "class" => class.to_string())
        .record(latency.as_secs_f64());
}

/// Records a request refused by the gateway, by catalogue code.
pub fn reject(code: &'static str) {
    metrics::counter!("portcullis_rejects_total", "code" => code).increment(1);
}

/// Records a config reload attempt.
pub fn reload(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("portcullis_config_reloads_total", "result" => result).increment(1);
}
