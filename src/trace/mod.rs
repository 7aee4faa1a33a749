//! Trace context: W3C Trace Context (`traceparent` / `tracestate`) in and out, and the
//! optional OpenTelemetry export of one span per request.
//!
//! Every request gets a [`TraceContext`]: the incoming trace continued (only from peers
//! `[tracing] accept_from` believes: by default `server.trusted_proxies`) or a new trace. The
//! gateway is one hop: the upstream receives `traceparent` with the same trace id, the
//! gateway's own span id as parent and the flags kept, plus the accepted `tracestate`
//! unchanged. Headers from a peer that is not believed are dropped, so clients cannot choose
//! the ids that land in the operator's tracing backend. The trace id is in the access log.
//!
//! Ids come from `rand`'s thread-local generator (ChaCha, seeded from the OS): a few
//! nanoseconds per request, and unguessable, which trace ids need not be but costs nothing here.
//! The outgoing header is formatted in a stack buffer (one copy into the header value).
//!
//! With `[tracing] otlp_endpoint` set, sampled requests also record a [`span::SpanDraft`]
//! (steps as events) that [`export`] sends in batches from a background task; see there.

pub mod export;
pub mod otlp;
pub mod parse;
pub mod settings;
pub mod span;

use http::header::HeaderValue;
use http::{HeaderMap, Request};

pub use parse::{TRACEPARENT, TRACESTATE};
pub use settings::{AcceptFrom, RawTracing, TraceSettings};
pub use span::{RequestTrace, Step};

/// Bit 0 of the trace flags.
pub const SAMPLED: u8 = 1;

/// One request's place in a trace.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// The trace id (continued or new).
    pub trace_id: [u8; 16],
    /// The gateway's span id: the parent-id the upstream receives.
    pub span_id: [u8; 8],
    /// The caller's span id, when an incoming context was accepted.
    pub parent_id: Option<[u8; 8]>,
    /// Trace flags sent on.
    pub flags: u8,
    /// The accepted `tracestate`, passed on unchanged.
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The context of a request with `headers`: continued when `accept` and the
    /// `traceparent` is valid, else a new trace sampled with probability `sample_ratio`.
    pub fn start(headers: &HeaderMap, accept: bool, sample_ratio: f64) -> Self {
        let span_id = nonzero_u64().to_be_bytes();
        if let Some(p) = accept.then(|| parse::traceparent(headers)).flatten() {
            return Self {
                trace_id: p.trace_id,
                span_id,
                parent_id: Some(p.parent_id),
                flags: p.flags,
                tracestate: parse::tracestate(headers),
            };
        }
        let sampled = sample_ratio >= 1.0 || rand::random::<f64>() < sample_ratio;
        Self {
            trace_id: nonzero_u128().to_be_bytes(),
            span_id,
            parent_id: None,
            flags: if sampled { SAMPLED } else { 0 },
            tracestate: None,
        }
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> Hex<32> {
        Hex::of(&self.trace_id)
    }

    /// The gateway's span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> Hex<16> {
        Hex::of(&self.span_id)
    }

    /// `00-<trace-id>-<span-id>-<flags>`.
    pub fn traceparent(&self) -> HeaderValue {
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        buf[3..35].copy_from_slice(&self.trace_id_hex().0);
        buf[35] = b'-';
        buf[36..52].copy_from_slice(&self.span_id_hex().0);
        buf[52] = b'-';
        buf[53..].copy_from_slice(&Hex::<2>::of(&[self.flags]).0);
        // Hex digits and dashes: always a valid header value.
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static(""))
    }

    /// Replaces whatever trace headers the request came with by this hop's.
    pub fn write_headers(&self, h: &mut HeaderMap) {
        h.remove(TRACESTATE);
        h.insert(TRACEPARENT, self.traceparent());
        if let Some(state) = &self.tracestate {
            h.insert(TRACESTATE, state.clone());
        }
    }
}

/// Lower-case hex of `N / 2` bytes, on the stack.
#[derive(Clone, Copy)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> Hex<N> {
    fn of(bytes: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'0'; N];
        for (i, b) in bytes.iter().take(N / 2).enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        Self(out)
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> std::fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn nonzero_u128() -> u128 {
    rand::random::<u128>().max(1)
}

fn nonzero_u64() -> u64 {
    rand::random::<u64>().max(1)
}

/// The compiled `[tracing]` section: which contexts to accept, and the exporter when on.
#[derive(Debug)]
pub struct Tracer {
    settings: TraceSettings,
    exporter: Option<export::Exporter>,
}

impl Tracer {
    /// A tracer with `settings`; `exporter` when `otlp_endpoint` is set (and not checking).
    pub fn new(settings: TraceSettings, exporter: Option<export::Exporter>) -> Self {
        Self { settings, exporter }
    }

    /// The settings.
    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    /// The exporter, when OTLP export is on.
    pub fn exporter(&self) -> Option<&export::Exporter> {
        self.exporter.as_ref()
    }

    /// Starts a request's trace; `peer_trusted`: the TCP peer is in `server.trusted_proxies`.
    pub fn begin<B>(&self, req: &Request<B>, peer_trusted: bool) -> RequestTrace {
        let accept = match self.settings.accept_from {
            AcceptFrom::TrustedProxies => peer_trusted,
            AcceptFrom::None => false,
            AcceptFrom::Any => true,
        };
        let ctx = TraceContext::start(req.headers(), accept, self.settings.sample_ratio);
        let record = self.exporter.is_some() && ctx.sampled();
        RequestTrace::new(ctx, record.then(|| span::SpanDraft::begin(req)))
    }

    /// Ends a request's trace: a recorded span goes to the exporter's queue (never waits).
    pub fn finish(&self, trace: &mut RequestTrace, end: span::SpanEnd<'_>) {
        let (Some(exporter), Some(draft)) = (&self.exporter, trace.take_draft()) else {
            return;
        };
        exporter.push((*draft).end(trace.context(), end));
    }
}
