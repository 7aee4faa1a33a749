//! Outbound: `[webhooks.outbound.NAME]` and the delivery of a backend's event, signed with the
//! scheme, to one allow-listed destination.
//!
//! The backend posts the event body to a route whose upstream has `kind = "webhook_out"`, naming
//! the destination in `X-Webhook-Destination` by its allow-list key or its exact URL. Nothing
//! else is ever dialled: no URL from the request is used (no SSRF), and redirects are not
//! followed. Each attempt is signed afresh (a new timestamp) under one webhook id, taken from the
//! backend's `X-Webhook-Id` when valid so the backend's own retries stay idempotent too, or
//! generated once. 5xx answers, connection failures and timeouts are retried up to `retries`
//! times, waiting `backoff` doubled after each attempt (at most 30 s); any other answer is final.
//! The backend's answer: `200 {"delivered": true, ...}`, or `502 webhook_delivery_failed` with
//! the last status.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::BodyExt;
use serde::Deserialize;
use toml::Spanned;

use super::scheme::{Scheme, SchemeKeys, SecretFormat};
use super::secret::Secret;
use super::{BuildContext, WebhookError, signature};
use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::config::units::parse_duration;
use crate::error::Reject;
use crate::proxy::Upstream;
use crate::proxy::body::{Body, full};

/// The request header naming the destination.
pub const DESTINATION_HEADER: HeaderName = HeaderName::from_static("x-webhook-destination");
/// The request header a backend may set to fix the webhook id.
pub const ID_HEADER: HeaderName = HeaderName::from_static("x-webhook-id");
/// Default retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 3;
/// Default wait before the first retry (doubled after each).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
/// Default bound on one attempt (connect, response head, response body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `[webhooks.outbound.NAME]`: a scheme, its secret, the allow-list and the retry policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
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
    /// The signing secret, `env:NAME` / `file:PATH`.
    pub secret: SString,
    /// Allowed destinations: key = name the backend may use, value = the URL.
    pub destinations: BTreeMap<String, SString>,
    /// Retries after the first attempt (default 3, at most 10).
    pub retries: Option<Spanned<u32>>,
    /// Wait before the first retry, doubled after each (default `"500ms"`).
    pub backoff: Option<SString>,
    /// Bound on one attempt (default `"10s"`).
    pub timeout: Option<SString>,
}

impl RawOutbound {
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

#[derive(Debug)]
struct Destination {
    name: String,
    url: String,
    target: Uri,
    upstream: Upstream,
}

/// A compiled outbound sender.
pub struct Outbound {
    name: String,
    scheme: Scheme,
    secret: Secret,
    destinations: Vec<Destination>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("name", &self.name)
            .field("destinations", &self.destinations)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum Attempt {
    Answered(u16),
    Unreachable,
}

impl Outbound {
    /// Compiles `webhooks.outbound.<name>`.
    pub fn compile(
        name: &str,
        raw: &RawOutbound,
        base: &Path,
        cx: &BuildContext<'_>,
        d: &mut Diagnostics,
    ) -> Option<Self> {
        let key = format!("webhooks.outbound.{name}");
        let scheme = Scheme::compile(&raw.scheme_keys(), &key, d);
        // A broken scheme still gets its secret and destinations checked.
        let format = scheme
            .as_ref()
            .map_or(SecretFormat::Raw, |s| s.secret_format);
        let secret = Secret::resolve(&raw.secret, format, &format!("{key}.secret"), base, d);
        if raw.destinations.is_empty() {
            d.push(
                None,
                format!("{key}.destinations"),
                "an outbound sender needs at least one destination",
                "add destinations = { partner = \"https://partner.example/hooks\" }",
            );
        }
        let destinations: Vec<Destination> = raw
            .destinations
            .iter()
            .filter_map(|(n, u)| destination(n, u, &format!("{key}.destinations.{n}"), cx, d))
            .collect();
        let retries = raw
            .retries
            .as_ref()
            .map_or(DEFAULT_RETRIES, |r| *r.get_ref());
        if retries > 10 {
            let at = raw.retries.as_ref().map(Spanned::span);
            d.push(
                at,
                format!("{key}.retries"),
                "more than 10 retries",
                "use 0 to 10",
            );
        }
        let backoff = duration(&raw.backoff, DEFAULT_BACKOFF, &format!("{key}.backoff"), d);
        let timeout = duration(&raw.timeout, DEFAULT_TIMEOUT, &format!("{key}.timeout"), d);
        (destinations.len() == raw.destinations.len() && retries <= 10).then_some(())?;
        Some(Self {
            name: name.to_string(),
            scheme: scheme?,
            secret: secret?,
            destinations,
            retries,
            backoff: backoff?,
            timeout: timeout?,
            clock: cx.clock.clone(),
        })
    }

    /// Notes for `portcullis check`: destinations reached over plain HTTP.
    pub fn relaxations(&self) -> Vec<String> {
        self.destinations
            .iter()
            .filter(|d| d.url.starts_with("http://"))
            .map(|d| {
                format!(
                    "webhooks.outbound.{}.destinations.{}: {} is plain HTTP (signed, not encrypted)",
                    self.name, d.name, d.url
                )
            })
            .collect()
    }

    /// Delivers the backend's event (`headers`, `body`); see the module doc.
    pub async fn deliver(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, Reject> {
        let dest = self.destination(headers)?;
        let id = match headers.get(ID_HEADER) {
            Some(v) if signature::valid_id(v.as_bytes()) => {
                v.to_str().unwrap_or_default().to_string()
            }
            _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
        };
        let content_type = headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        let mut wait = self.backoff;
        let mut last = Attempt::Unreachable;
        let mut attempts = 0;
        for n in 0..=self.retries {
            if n > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            attempts += 1;
            last = self.attempt(dest, &id, &content_type, &body).await;
            match last {
                Attempt::Answered(s) if (200..300).contains(&s) => {
                    return Ok(delivered(&dest.name, &id, s, attempts));
                }
                Attempt::Answered(s) if s < 500 => break,
                _ => {}
            }
        }
        tracing::warn!(webhook = %self.name, destination = %dest.name, attempts, "webhook delivery failed");
        Err(WebhookError::DeliveryFailed {
            attempts,
            last_status: match last {
                Attempt::Answered(s) => Some(s),
                Attempt::Unreachable => None,
            },
        }
        .into())
    }

    /// The allow-listed destination the request names (by key or exact URL).
    fn destination(&self, headers: &HeaderMap) -> Result<&Destination, Reject> {
        let missing = || WebhookError::MissingDestination(DESTINATION_HEADER.to_string());
        let mut all = headers.get_all(DESTINATION_HEADER).iter();
        let value = all.next().ok_or_else(missing)?;
        if all.next().is_some() {
            return Err(WebhookError::Repeated(DESTINATION_HEADER.to_string()).into());
        }
        let text = value
            .to_str()
            .map_err(|_| WebhookError::DestinationNotAllowed)?;
        self.destinations
            .iter()
            .find(|d| d.name == text || d.url == text)
            .ok_or_else(|| WebhookError::DestinationNotAllowed.into())
    }

    /// The signed request headers for `id`, `timestamp` and `body` (also used by the CLI).
    pub fn signed_headers(
        &self,
        id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> Vec<(HeaderName, String)> {
        sign(&self.scheme, &self.secret, id, timestamp, body)
    }

    async fn attempt(
        &self,
        dest: &Destination,
        id: &str,
        ctype: &HeaderValue,
        body: &Bytes,
    ) -> Attempt {
        let mut req = Request::new(full(body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = dest.target.clone();
        let h = req.headers_mut();
        h.insert(HOST, dest.upstream.host().clone());
        h.insert(CONTENT_TYPE, ctype.clone());
        h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        for (name, value) in self.signed_headers(id, self.clock.unix_secs(), body) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        let exchange = async {
            let resp = dest
                .upstream
                .send(req, self.timeout, self.timeout)
                .await
                .ok()?;
            let status = resp.status().as_u16();
            // Read the answer to its end so the connection can be reused.
            let _ = resp.into_body().collect().await;
            Some(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Some(status)) => Attempt::Answered(status),
            _ => Attempt::Unreachable,
        }
    }
}

/// The scheme's headers for one signed request.
pub fn sign(
    scheme: &Scheme,
    secret: &Secret,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> Vec<(HeaderName, String)> {
    let ts = timestamp.to_string();
    let tag = signature::tag(secret.bytes(), scheme, id.as_bytes(), ts.as_bytes(), body);
    let mut out = Vec::with_capacity(3);
    if let Some(h) = &scheme.id_header {
        out.push((h.clone(), id.to_string()));
    }
    out.push((scheme.timestamp_header.clone(), ts));
    out.push((
        scheme.signature_header.clone(),
        signature::encode(scheme, &tag),
    ));
    out
}

fn delivered(dest: &str, id: &str, status: u16, attempts: u32) -> Response<Body> {
    let body = serde_json::json!({
        "delivered": true,
        "destination": dest,
        "webhook_id": id,
        "status": status,
        "attempts": attempts,
    });
    let mut resp = Response::new(full(body.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn destination(
    name: &str,
    url: &SString,
    key: &str,
    cx: &BuildContext<'_>,
    d: &mut Diagnostics,
) -> Option<Destination> {
    let parsed = url.get_ref().parse::<Uri>().ok().filter(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.authority().is_some_and(|a| !a.as_str().contains('@'))
    });
    let Some(uri) = parsed else {
        d.push(
            Some(url.span()),
            key,
            format!("\"{}\" is not an http(s) URL", url.get_ref()),
            "write the full URL, e.g. \"https://partner.example/hooks\"",
        );
        return None;
    };
    let target = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse::<Uri>()
        .ok()?;
    match cx.pools.get(&uri, None, cx.pool_settings) {
        Ok(upstream) => Some(Destination {
            name: name.to_string(),
            url: url.get_ref().clone(),
            target,
            upstream,
        }),
        Err(e) => {
            d.push(Some(url.span()), key, e, "check the destination URL");
            None
        }
    }
}

fn duration(
    v: &Option<SString>,
    default: Duration,
    key: &str,
    d: &mut Diagnostics,
) -> Option<Duration> {
    let Some(v) = v else { return Some(default) };
    match parse_duration(v.get_ref()) {
        Ok(t) if t > Duration::ZERO && t <= Duration::from_secs(300) => Some(t),
        Ok(_) => {
            d.push(
                Some(v.span()),
                key,
                "out of range",
                "use a duration between 1ms and 300s",
            );
            None
        }
        Err(e) => {
            d.push(Some(v.span()), key, e, "write e.g. \"500ms\" or \"10s\"");
            None
        }
    }
}
