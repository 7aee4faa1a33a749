//! Trace settings: the `[tracing]` config section (whose trace context to accept, sampling,
//! OTLP export), owned here.
//!
//! Raw keys, their validation (each bad value reported at its file:line:column with a fix) and
//! the validated form. Safe defaults: incoming context is believed only from
//! `server.trusted_proxies`, and nothing is exported. `accept_from = "any"` is a relaxation that
//! `portcullis check` reports.

use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use toml::Spanned;

use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::config::units::parse_duration;

/// `[tracing]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Whose `traceparent` / `tracestate` is continued: `"trusted_proxies"` (default), `"none"`,
    /// `"any"`.
    pub accept_from: Option<SString>,
    /// Fraction (0 to 1) of traces the gateway starts that are marked sampled (default 1).
    pub sample_ratio: Option<Spanned<f64>>,
    /// OTLP/HTTP traces endpoint (`http://` or `https://` URL ending in `/v1/traces`); absent =
    /// no export.
    pub otlp_endpoint: Option<SString>,
    /// `service.name` of the exported spans (default `"portcullis"`).
    pub service_name: Option<SString>,
    /// Longest wait for the OTLP receiver per batch (default `"5s"`).
    pub otlp_timeout: Option<SString>,
    /// Spans waiting for export at most; more are dropped and counted (default 2048).
    pub otlp_queue: Option<Spanned<usize>>,
}

/// Whose incoming trace context the gateway continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptFrom {
    /// Peers in `server.trusted_proxies` only.
    #[default]
    TrustedProxies,
    /// Nobody: every request starts a new trace.
    None,
    /// Every peer (a relaxation: clients choose trace ids).
    Any,
}

/// `[tracing]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Whose context is continued.
    pub accept_from: AcceptFrom,
    /// Fraction of new traces marked sampled.
    pub sample_ratio: f64,
    /// Where spans are exported (OTLP/HTTP JSON); `None` = off.
    pub otlp_endpoint: Option<Uri>,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// Bound on one export request.
    pub otlp_timeout: Duration,
    /// Capacity of the export queue.
    pub otlp_queue: usize,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            accept_from: AcceptFrom::default(),
            sample_ratio: 1.0,
            otlp_endpoint: None,
            service_name: "portcullis".into(),
            otlp_timeout: Duration::from_secs(5),
            otlp_queue: 2048,
        }
    }
}

impl TraceSettings {
    /// Validates `[tracing]`; a bad value is reported and its default kept.
    pub fn validate(raw: &RawTracing, d: &mut Diagnostics) -> Self {
        let def = Self::default();
        Self {
            accept_from: accept_from(raw.accept_from.as_ref(), d).unwrap_or(def.accept_from),
            sample_ratio: ratio(raw.sample_ratio.as_ref(), d).unwrap_or(def.sample_ratio),
            otlp_endpoint: raw.otlp_endpoint.as_ref().and_then(|e| endpoint(e, d)),
            service_name: service_name(raw.service_name.as_ref(), d).unwrap_or(def.service_name),
            otlp_timeout: timeout(raw.otlp_timeout.as_ref(), d).unwrap_or(def.otlp_timeout),
            otlp_queue: queue(raw.otlp_queue.as_ref(), d).unwrap_or(def.otlp_queue),
        }
    }

    /// One line per relaxation, for `portcullis check`.
    pub fn relaxations(&self) -> Vec<String> {
        match self.accept_from {
            AcceptFrom::Any => vec![
                "tracing.accept_from = \"any\": any client may choose the trace id and tracestate \
                 the upstream and the trace backend see"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }
}

fn accept_from(v: Option<&SString>, d: &mut Diagnostics) -> Option<AcceptFrom> {
    let v = v?;
    match v.get_ref().as_str() {
        "trusted_proxies" => Some(AcceptFrom::TrustedProxies),
        "none" => Some(AcceptFrom::None),
        "any" => Some(AcceptFrom::Any),
        other => {
            d.push(
                Some(v.span()),
                "tracing.accept_from",
                format!("unknown value \"{other}\""),
                "use \"trusted_proxies\" (the default), \"none\" or \"any\"",
            );
            None
        }
    }
}

fn ratio(v: Option<&Spanned<f64>>, d: &mut Diagnostics) -> Option<f64> {
    let v = v?;
    let r = *v.get_ref();
    if (0.0..=1.0).contains(&r) {
        return Some(r);
    }
    d.push(
        Some(v.span()),
        "tracing.sample_ratio",
        format!("{r} is not between 0 and 1"),
        "write a fraction, e.g. 0.1 to sample one trace in ten, or 1 for all",
    );
    None
}

fn endpoint(v: &SString, d: &mut Diagnostics) -> Option<Uri> {
    let problem = match v.get_ref().parse::<Uri>() {
        Ok(u) if !matches!(u.scheme_str(), Some("http" | "https")) => {
            "the OTLP endpoint must be an http:// or https:// URL".to_string()
        }
        Ok(u) if u.host().is_none_or(str::is_empty) => "the OTLP endpoint has no host".into(),
        Ok(u) if u.query().is_some() => "the OTLP endpoint must not have a query".into(),
        Ok(u) => return Some(u),
        Err(e) => format!("not a URL: {e}"),
    };
    d.push(
        Some(v.span()),
        "tracing.otlp_endpoint",
        problem,
        "write the collector's traces URL, e.g. \"http://127.0.0.1:4318/v1/traces\"",
    );
    None
}

fn service_name(v: Option<&SString>, d: &mut Diagnostics) -> Option<String> {
    let v = v?;
    let name = v.get_ref();
    if !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control) {
        return Some(name.clone());
    }
    d.push(
        Some(v.span()),
        "tracing.service_name",
        "the service name must be 1 to 128 characters without control characters",
        "write a short name, e.g. \"portcullis\" or \"edge-gateway\"",
    );
    None
}

fn timeout(v: Option<&SString>, d: &mut Diagnostics) -> Option<Duration> {
    let v = v?;
    let problem = match parse_duration(v.get_ref()) {
        Ok(t) if !t.is_zero() && t <= Duration::from_secs(60) => return Some(t),
        Ok(_) => "the timeout must be more than zero and at most 60s".to_string(),
        Err(e) => e,
    };
    d.push(
        Some(v.span()),
        "tracing.otlp_timeout",
        problem,
        "write a duration with a unit, e.g. \"5s\"",
    );
    None
}

fn queue(v: Option<&Spanned<usize>>, d: &mut Diagnostics) -> Option<usize> {
    let v = v?;
    let n = *v.get_ref();
    if (1..=65_536).contains(&n) {
        return Some(n);
    }
    d.push(
        Some(v.span()),
        "tracing.otlp_queue",
        format!("{n} is not between 1 and 65536"),
        "write the number of spans that may wait for export, e.g. 2048",
    );
    None
}
