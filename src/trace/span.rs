//! Span: what one request records for export: its start, its steps as events, its end.
//!
//! Nothing is recorded unless OTLP export is on and the trace is sampled: `RequestTrace` then
//! holds a boxed [`SpanDraft`], else every [`RequestTrace::step`] is a branch on `None`.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;

use super::TraceContext;

/// A request's trace: its context, and the span being recorded when exporting.
#[derive(Debug)]
pub struct RequestTrace {
    ctx: TraceContext,
    draft: Option<Box<SpanDraft>>,
}

/// A step of the request path, recorded as a span event.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A route matched (its name).
    RouteMatched(&'a str),
    /// The rate limiter decided.
    RateLimit {
        /// Admitted.
        allowed: bool,
        /// Requests left in the window.
        remaining: u32,
    },
    /// Credentials were checked (`None`: the route needs none).
    Authenticated(Option<&'a str>),
    /// The upstream (or built-in target) answered with this status.
    UpstreamResponse(u16),
}

/// A span attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A span event: name, time, attributes.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event name.
    pub name: &'static str,
    /// Unix time, ns.
    pub time_ns: u64,
    /// Attributes.
    pub attributes: Vec<(&'static str, Value)>,
}

/// The span of a request in progress.
#[derive(Debug)]
pub struct SpanDraft {
    start_ns: u64,
    method: String,
    path: String,
    events: Vec<Event>,
}

/// What the end of a request adds to its span.
#[derive(Debug, Clone, Copy)]
pub struct SpanEnd<'a> {
    /// Status sent to the client.
    pub status: u16,
    /// Route name, `None` when no route matched.
    pub route: Option<&'a str>,
    /// Client IP (after trusted proxies), when known.
    pub client_ip: Option<IpAddr>,
    /// The refusal code when the gateway answered with an error envelope.
    pub refusal: Option<&'static str>,
}

/// A finished span, ready to encode.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// This span's id.
    pub span_id: [u8; 8],
    /// The caller's span id, if the trace came in.
    pub parent_id: Option<[u8; 8]>,
    /// Trace flags.
    pub flags: u8,
    /// `tracestate` as accepted.
    pub tracestate: Option<String>,
    /// `METHOD route` (or `METHOD` alone when no route matched).
    pub name: String,
    /// Unix time, ns.
    pub start_ns: u64,
    /// Unix time, ns.
    pub end_ns: u64,
    /// Attributes.
    pub attributes: Vec<(&'static str, Value)>,
    /// Steps.
    pub events: Vec<Event>,
    /// Whether the request was answered with a 5xx status.
    pub error: bool,
}

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl RequestTrace {
    pub(super) fn new(ctx: TraceContext, draft: Option<Box<SpanDraft>>) -> Self {
        Self { ctx, draft }
    }

    /// The request's trace context.
    pub fn context(&self) -> &TraceContext {
        &self.ctx
    }

    /// The trace id as hex (the access log's `trace_id`).
    pub fn id(&self) -> super::Hex<32> {
        self.ctx.trace_id_hex()
    }

    /// Whether a span is being recorded.
    pub fn recording(&self) -> bool {
        self.draft.is_some()
    }

    /// Records a step (nothing when not recording).
    pub fn step(&mut self, step: Step<'_>) {
        if let Some(d) = &mut self.draft {
            d.events.push(step.event());
        }
    }

    pub(super) fn take_draft(&mut self) -> Option<Box<SpanDraft>> {
        self.draft.take()
    }
}

impl Step<'_> {
    fn event(self) -> Event {
        let (name, attributes) = match self {
            Step::RouteMatched(route) => (
                "route matched",
                vec![("http.route", Value::Str(route.into()))],
            ),
            Step::RateLimit { allowed, remaining } => (
                "rate limit",
                vec![
                    ("allowed", Value::Bool(allowed)),
                    ("remaining", Value::Int(i64::from(remaining))),
                ],
            ),
            Step::Authenticated(method) => (
                "authenticated",
                vec![("auth.method", Value::Str(method.unwrap_or("none").into()))],
            ),
            Step::UpstreamResponse(status) => (
                "upstream response",
                vec![("http.response.status_code", Value::Int(i64::from(status)))],
            ),
        };
        Event {
            name,
            time_ns: now_ns(),
            attributes,
        }
    }
}

impl SpanDraft {
    pub(super) fn begin<B>(req: &Request<B>) -> Box<Self> {
        Box::new(Self {
            start_ns: now_ns(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            events: Vec::with_capacity(4),
        })
    }

    pub(super) fn end(self, ctx: &TraceContext, end: SpanEnd<'_>) -> FinishedSpan {
        let Self {
            start_ns,
            method,
            path,
            events,
        } = self;
        let name = match end.route {
            Some(r) => format!("{method} {r}"),
            None => method.clone(),
        };
        let mut attributes = vec![
            ("http.request.method", Value::Str(method)),
            ("url.path", Value::Str(path)),
            (
                "http.response.status_code",
                Value::Int(i64::from(end.status)),
            ),
        ];
        if let Some(r) = end.route {
            attributes.push(("http.route", Value::Str(r.into())));
        }
        if let Some(ip) = end.client_ip {
            attributes.push(("client.address", Value::Str(ip.to_string())));
        }
        if let Some(code) = end.refusal {
            attributes.push(("portcullis.refusal", Value::Str(code.into())));
        }
        FinishedSpan {
            trace_id: ctx.trace_id,
            span_id: ctx.span_id,
            parent_id: ctx.parent_id,
            flags: ctx.flags,
            tracestate: ctx
                .tracestate
                .as_ref()
                .and_then(|t| t.to_str().ok())
                .map(str::to_string),
            name,
            start_ns,
            end_ns: now_ns(),
            attributes,
            events,
            error: end.status >= 500,
        }
    }
}
