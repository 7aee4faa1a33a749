//! Metrics: Prometheus counters and histograms, rendered by the admin listener's `/metrics`.
//!
//! One process-wide recorder, installed before the first config is compiled; the pipeline
//! records one observation per request through per-class handles registered at compile time
//! (`ClassMetrics`), so the request path does no label formatting or registry lookup. Other
//! modules count their own (rare) events through the `metrics` macros. Histogram samples are
//! folded into their buckets by an upkeep task, so an unscraped gateway does not accumulate them.
//! Per-route series are in `route`; the functions below count the rarer events of other
//! modules, so every series name is written in this module. README "Operating it" lists them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub mod route;

pub use route::RequestMetrics;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static UPKEEP: AtomicBool = AtomicBool::new(false);

/// How often histogram samples are folded into buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

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

/// Starts the upkeep task once per process (needs a Tokio runtime).
pub fn spawn_upkeep() {
    let Some(handle) = handle() else { return };
    if UPKEEP.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A route class's request counters (one per status class) and its 429 counter (its latency
/// histogram is per route: `route::RouteMetrics`, labelled with the class too).
#[derive(Clone)]
pub struct ClassMetrics {
    requests: [Counter; 5],
    too_many: Counter,
}

impl std::fmt::Debug for ClassMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClassMetrics")
    }
}

impl ClassMetrics {
    /// Registers the class's series with the process recorder.
    pub fn new(class: &str) -> Self {
        let _ = handle();
        let requests = STATUS_CLASSES.map(|status| {
            metrics::counter!("portcullis_requests_total", "class" => class.to_string(), "status" => status)
        });
        // Every 429 the class answered (its limiter's, or an upstream's passed on): the console's
        // "429s per class" tile. Registered now, so it reads 0 before the first one.
        let too_many =
            metrics::counter!("portcullis_too_many_requests_total", "class" => class.to_string());
        too_many.increment(0);
        Self { requests, too_many }
    }

    /// Records one finished request.
    pub fn request(&self, status: u16) {
        self.requests[status_index(status)].increment(1);
        if status == 429 {
            self.too_many.increment(1);
        }
    }
}

/// The index of `status`'s class (`1xx` = 0) in `STATUS_CLASSES`.
pub(crate) fn status_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
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

/// Why a request to an upstream failed, for `portcullis_upstream_errors_total{upstream,kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The TCP connection could not be made.
    Connect,
    /// The TLS handshake with an `https` upstream failed.
    Tls,
    /// No response head within `upstream_response_timeout`.
    Timeout,
    /// The exchange broke after it was sent (closed or reset).
    Reset,
}

impl UpstreamFailure {
    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Tls => "tls",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Reset => "reset",
        }
    }
}

/// Records a failed request to upstream `upstream` (its config name).
pub fn upstream_error(upstream: &str, kind: UpstreamFailure) {
    metrics::counter!(
        "portcullis_upstream_errors_total",
        "upstream" => upstream.to_string(),
        "kind" => kind.as_str()
    )
    .increment(1);
}

/// Records a JWKS fetch of `url` (`ok` or `error`).
pub fn jwks_refresh(url: &str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!("portcullis_jwks_refresh_total", "url" => url.to_string(), "result" => result)
        .increment(1);
}

/// Records an access token issued by the token service under `grant`.
pub fn token_issued(grant: &'static str) {
    metrics::counter!("portcullis_tokens_issued_total", "grant" => grant).increment(1);
}

/// Records how long a shared-state (Redis) operation took, failed or not.
pub fn state_duration(op: &'static str, took: Duration) {
    metrics::histogram!("portcullis_state_duration_seconds", "op" => op).record(took.as_secs_f64());
}
