//! Inbound: `[webhooks.inbound.NAME]` and the pipeline step that verifies a signed webhook
//! before it is forwarded.
//!
//! Order of the step, cheapest refusal first: the headers (each exactly once; the timestamp all
//! digits and inside the window in both directions), then the body, buffered under the route's
//! cap (a declared length over it is 413 before a byte is read; a body growing past it is 413
//! before any HMAC work) and `body_idle_timeout`, then the HMAC under every configured secret
//! (rotation: any one verifies), then replay memory. The verified bytes are forwarded exactly.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;

use super::WebhookError;
use super::replay::{self, Replay, ReplayKey, Seen};
use super::scheme::{Scheme, SchemeKeys, SecretFormat};
use super::secret::Secret;
use super::signature::{self, Tag};
use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::config::units::{parse_bytes, parse_duration};
use crate::error::Reject;
use crate::proxy::body::{BodyState, CappedBody};

/// Default window around the sender's timestamp.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Default largest webhook body.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// `[webhooks.inbound.NAME]`: a scheme, its secrets and its bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    /// `"standard"` (default) or `"custom"`.
    pub scheme: Option<SString>,
    /// Custom: signature header.
    pub signature_header: Option<SString>,
    /// Custom: timestamp header.
    pub timestamp_header: Option<SString>,
    /// Custom: webhook id header.
    pub id_header: Option<SString>,
    /// Custom: `"hex"` or `"base64"`.
    pub encoding: Option<SString>,
    /// Custom: text before the signature.
    pub prefix: Option<SString>,
    /// Custom: signed payload template.
    pub signed_payload: Option<SString>,
    /// `env:NAME` / `file:PATH` references; any one verifies (rotation).
    #[serde(default)]
    pub secrets: Vec<SString>,
    /// Accepted distance between the timestamp and now, both ways (default `"300s"`).
    pub tolerance: Option<SString>,
    /// Largest body (default `"1MiB"`); the route's `max_body_bytes` also applies.
    pub max_body: Option<SString>,
}

impl RawInbound {
    /// The scheme keys of this section.
    pub fn scheme_keys(&self) -> SchemeKeys<'_> {
        SchemeKeys {
            scheme: self.scheme.as_ref(),
            signature_header: self.signature_header.as_ref(),
            timestamp_header: self.timestamp_header.as_ref(),
            id_header: self.id_header.as_ref(),
            encoding: self.encoding.as_ref(),
            prefix: self.prefix.as_ref(),
            signed_payload: self.signed_payload.as_ref(),
        }
    }
}

/// A compiled inbound scheme.
pub struct Inbound {
    name: String,
    scheme: Scheme,
    secrets: Vec<Secret>,
    tolerance_secs: u64,
    max_body: u64,
    replay: Replay,
    clock: SharedClock,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("name", &self.name)
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

/// A verified webhook: its exact body, and its replay key (forgotten if delivery fails).
#[derive(Debug)]
pub struct Verified {
    /// The body as received (decoded from chunked framing).
    pub body: Bytes,
    /// Its key in replay memory.
    pub key: ReplayKey,
}

impl Inbound {
    /// Compiles the section `webhooks.inbound.<name>`.
    pub fn compile(
        name: &str,
        raw: &RawInbound,
        base: &Path,
        replay: Replay,
        clock: SharedClock,
        d: &mut Diagnostics,
    ) -> Option<Self> {
        let key = format!("webhooks.inbound.{name}");
        let scheme = Scheme::compile(&raw.scheme_keys(), &key, d);
        // A broken scheme still gets its secrets and bounds checked (every problem at once).
        let format = scheme
            .as_ref()
            .map_or(SecretFormat::Raw, |s| s.secret_format);
        if raw.secrets.is_empty() {
            d.push(
                None,
                format!("{key}.secrets"),
                "an inbound webhook scheme needs at least one secret",
                "add secrets = [\"env:PARTNER_WEBHOOK_SECRET\"]",
            );
        }
        let secrets: Vec<Secret> = raw
            .secrets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Secret::resolve(s, format, &format!("{key}.secrets[{i}]"), base, d)
            })
            .collect();
        let tolerance = match &raw.tolerance {
            None => Some(DEFAULT_TOLERANCE),
            Some(t) => bounded(t, &format!("{key}.tolerance"), d, parse_duration, |t| {
                *t >= Duration::from_secs(1) && *t <= Duration::from_secs(3600)
            }),
        };
        let max_body = match &raw.max_body {
            None => Some(DEFAULT_MAX_BODY),
            Some(b) => bounded(b, &format!("{key}.max_body"), d, parse_bytes, |b| {
                (1..=64 * 1024 * 1024).contains(b)
            }),
        };
        (secrets.len() == raw.secrets.len() && !secrets.is_empty()).then_some(())?;
        Some(Self {
            name: name.to_string(),
            scheme: scheme?,
            secrets,
            tolerance_secs: tolerance?.as_secs(),
            max_body: max_body?,
            replay,
            clock,
        })
    }

    /// The scheme's name (`webhooks.inbound.<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The largest body this scheme reads, bounded by the route's `route_max`.
    pub fn body_cap(&self, route_max: u64) -> u64 {
        self.max_body.min(route_max)
    }

    /// The pipeline step: checks the headers, buffers the body (`route_max`, `idle`), verifies
    /// the signature and remembers the webhook. The caller forwards `Verified::body`.
    pub async fn verify<B>(
        &self,
        headers: &HeaderMap,
        body: B,
        route_max: u64,
        idle: Duration,
    ) -> Result<Verified, Reject>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::proxy::body::BoxError>,
    {
        let s = &self.scheme;
        let signature = single(headers, &s.signature_header)?.ok_or(
            WebhookError::MissingSignature(s.signature_header.to_string()),
        )?;
        let ts_value = single(headers, &s.timestamp_header)?.ok_or(
            WebhookError::MissingTimestamp(s.timestamp_header.to_string()),
        )?;
        let id = match &s.id_header {
            Some(h) => {
                let v = single(headers, h)?.ok_or(WebhookError::MissingId(h.to_string()))?;
                if !signature::valid_id(v.as_bytes()) {
                    return Err(WebhookError::MissingId(h.to_string()).into());
                }
                Some(v)
            }
            None => None,
        };
        let ts = signature::parse_timestamp(ts_value.as_bytes()).ok_or(
            WebhookError::MalformedTimestamp(s.timestamp_header.to_string()),
        )?;
        let now = self.clock.unix_secs();
        if now.abs_diff(ts) > self.tolerance_secs {
            return Err(WebhookError::OutOfWindow(self.tolerance_secs).into());
        }
        let offered = signature::candidates(s, signature.as_bytes())
            .map_err(|e| WebhookError::MalformedSignature(e.to_string()))?;
        let body = self.read_body(headers, body, route_max, idle).await?;
        let id_bytes = id.map_or(&b""[..], HeaderValue::as_bytes);
        let matched = self
            .matching(id_bytes, ts_value.as_bytes(), &body, &offered)
            .ok_or(WebhookError::InvalidSignature)?;
        // The id identifies a delivery across the sender's re-signed retries; without one,
        // the signature itself does.
        let key = match id {
            Some(id) => replay::key(&self.name, id.as_bytes()),
            None => replay::key(&self.name, &matched),
        };
        let ttl = (ts + self.tolerance_secs + 1).saturating_sub(now);
        match self.replay.remember(key, now, ttl).await {
            Seen::New => Ok(Verified { body, key }),
            Seen::Again => Err(WebhookError::Replayed.into()),
            Seen::Unavailable => Err(WebhookError::ReplayUnavailable.into()),
        }
    }

    /// The tag under some configured secret that one of `offered` equals.
    pub fn matching(&self, id: &[u8], ts: &[u8], body: &[u8], offered: &[Tag]) -> Option<Tag> {
        let expected: Vec<Tag> = self
            .secrets
            .iter()
            .map(|k| signature::tag(k.bytes(), &self.scheme, id, ts, body))
            .collect();
        signature::matching(&expected, offered)
    }

    /// Forgets a verified webhook whose delivery failed, so the sender's retry is accepted.
    pub async fn settle(&self, verified_key: ReplayKey, delivered: bool) {
        if !delivered {
            self.replay.forget(verified_key).await;
        }
    }

    async fn read_body<B>(
        &self,
        headers: &HeaderMap,
        body: B,
        route_max: u64,
        idle: Duration,
    ) -> Result<Bytes, Reject>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::proxy::body::BoxError>,
    {
        let cap = self.body_cap(route_max);
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap) {
            return Err(Reject::PayloadTooLarge { limit: cap });
        }
        let state = Arc::new(BodyState::default());
        let capped = CappedBody::new(body, cap, idle, state.clone());
        match capped.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(_) if state.too_large() => Err(Reject::PayloadTooLarge { limit: cap }),
            Err(_) if state.timed_out() => Err(Reject::RequestTimeout),
            Err(e) => Err(Reject::BadRequest(format!(
                "the request body could not be read: {e}"
            ))),
        }
    }
}

/// The header's one value; a repeated header is `400 invalid_request`.
fn single<'h>(h: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, Reject> {
    let mut all = h.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(WebhookError::Repeated(name.to_string()).into());
    }
    Ok(first)
}

fn bounded<T>(
    v: &SString,
    key: &str,
    d: &mut Diagnostics,
    parse: impl Fn(&str) -> Result<T, String>,
    ok: impl Fn(&T) -> bool,
) -> Option<T> {
    match parse(v.get_ref()) {
        Ok(t) if ok(&t) => Some(t),
        Ok(_) => {
            d.push(
                Some(v.span()),
                key,
                format!("\"{}\" is out of range", v.get_ref()),
                "tolerance: 1s to 1h (default 300s); max_body: 1 byte to 64MiB (default 1MiB)",
            );
            None
        }
        Err(e) => {
            d.push(Some(v.span()), key, e, "write e.g. \"300s\" or \"1MiB\"");
            None
        }
    }
}
