//! Route metrics: the per-route series of one route, registered when the config is compiled.
//!
//! `RequestMetrics` is what the pipeline holds for a request: its class's handles and its
//! route's, so recording a finished request is two counter increments and one histogram sample
//! (one more for the upstream's part), with no label formatting or registry lookup. Handles are keyed by label values in
//! the process recorder, so a reload that keeps a route's name keeps its series.
//!
//! Series (the route label is the route's `name`; `-` for requests no route matched):
//! - `portcullis_route_requests_total{route,class,status}`: status is the class `1xx`..`5xx`;
//! - `portcullis_request_duration_seconds{route,class}`: request to response head (one
//!   histogram for both: `sum by (class, le)` gives the class's);
//! - `portcullis_upstream_duration_seconds{route}`: request sent upstream to its response head;
//! - `portcullis_route_rejects_total{route,class,code}`: refusals by catalogue code (counted
//!   through the recorder on the refusal path, which is rarer; codes are the catalogue's).

use std::time::Duration;

use metrics::{Counter, Histogram};

use super::{ClassMetrics, STATUS_CLASSES};

/// The route label of requests that matched no route.
pub const NO_ROUTE: &str = "-";

/// One route's own series.
#[derive(Clone)]
pub struct RouteMetrics {
    name: String,
    class: String,
    requests: [Counter; 5],
    duration: Histogram,
    upstream: Histogram,
}

impl RouteMetrics {
    /// Registers the series of route `name` in `class`.
    pub fn new(name: &str, class: &str) -> Self {
        let _ = super::handle();
        let requests = STATUS_CLASSES.map(|status| {
            metrics::counter!(
                "portcullis_route_requests_total",
                "route" => name.to_string(),
                "class" => class.to_string(),
                "status" => status
            )
        });
        let route = name.to_string();
        Self {
            name: name.to_string(),
            class: class.to_string(),
            requests,
            duration: metrics::histogram!(
                "portcullis_request_duration_seconds",
                "route" => route.clone(),
                "class" => class.to_string()
            ),
            upstream: metrics::histogram!("portcullis_upstream_duration_seconds", "route" => route),
        }
    }
}

/// The handles a request records into: its class's and its route's.
#[derive(Clone)]
pub struct RequestMetrics {
    class: ClassMetrics,
    route: RouteMetrics,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestMetrics({})", self.route.name)
    }
}

impl RequestMetrics {
    /// The metrics of route `route` (its name) in the class whose handles are `class`.
    pub fn new(class: ClassMetrics, route: &str, class_name: &str) -> Self {
        Self {
            class,
            route: RouteMetrics::new(route, class_name),
        }
    }

    /// Records one finished request (at its response head).
    pub fn request(&self, status: u16, latency: Duration) {
        self.class.request(status);
        self.route.requests[super::status_index(status)].increment(1);
        self.route.duration.record(latency.as_secs_f64());
    }

    /// Records the time an upstream took from the request to its response head.
    pub fn upstream(&self, took: Duration) {
        self.route.upstream.record(took.as_secs_f64());
    }

    /// Records a refusal by the gateway, by catalogue code (also in the process-wide
    /// `portcullis_rejects_total{code}`).
    pub fn reject(&self, code: &'static str) {
        super::reject(code);
        metrics::counter!(
            "portcullis_route_rejects_total",
            "route" => self.route.name.clone(),
            "class" => self.route.class.clone(),
            "code" => code
        )
        .increment(1);
    }
}
