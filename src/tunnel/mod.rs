//! Tunnel: WebSocket through the gateway (RFC 6455 over HTTP/1.1, RFC 8441 over h2), after the policy.
//!
//! [`ask`] recognizes a WebSocket handshake before the pipeline's request checks: an HTTP/1.1
//! `GET` with `Upgrade: websocket` and `Connection: upgrade`, or an h2 extended `CONNECT` with
//! `:protocol = websocket`, which from then on is handled as the `GET` it becomes upstream.
//! Every other `Upgrade` (`h2c` included) is not an ask: the header is removed before forwarding,
//! as for any hop-by-hop field. A route without `websocket = true` refuses an ask
//! ([`allowed`]: `400 websocket_not_allowed`); on a route that allows it, the whole pipeline runs
//! (rate limit, authentication, scopes, identity headers, credential stripping), then a
//! [`limits::Permit`] is taken, and only then is the handshake forwarded ([`open`]) on an
//! upstream connection of its own (an upgraded connection never returns to the pool).
//!
//! The upstream's `101` becomes the client's `101` (HTTP/1.1) or `200` (h2; the bridge sends
//! the upstream a `Sec-WebSocket-Key` of its own and checks its `Sec-WebSocket-Accept`). Any other answer is relayed as an ordinary
//! response, except a `2xx`, which means the upstream ignored the upgrade: `502`. The answer
//! carries a [`Plan`]; the pipeline starts it once the response is rendered, and its task waits
//! for both upgrades and runs the [`pump`] under the `[tunnels]` limits. The tunnel writes the
//! one access-log event of its request when it ends, with its duration and bytes each way.

pub mod limits;
pub mod pump;
pub mod settings;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use http::header::{SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::error::Reject;
use crate::proxy::body::{Body, empty, full};
use crate::proxy::forwarding::ForwardingRules;
use crate::proxy::{Upstream, UpstreamError, headers, response};
use crate::server::conn::{Busy, ConnHold};
use limits::Permit;
use pump::{End, pump};
use settings::TunnelSettings;

/// Largest upstream answer relayed when it refuses an upgrade (an error page, not a stream).
const REFUSAL_MAX: usize = 64 * 1024;

/// How a request asks for a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// HTTP/1.1 `Upgrade: websocket` (RFC 6455).
    Http1,
    /// h2 extended `CONNECT` with `:protocol = websocket` (RFC 8441), rewritten to `GET`.
    H2,
}

/// The WebSocket ask of `req`, if it is one; an extended `CONNECT` is rewritten to `GET`.
/// A malformed ask (not a bodyless HTTP/1.1 `GET`) is `400`.
pub fn ask<B>(req: &mut Request<B>) -> Result<Option<Ask>, Reject> {
    if req.method() == Method::CONNECT {
        let websocket = req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
        if !websocket {
            return Ok(None);
        }
        *req.method_mut() = Method::GET;
        return Ok(Some(Ask::H2));
    }
    let h = req.headers();
    if !(has_token(h, &UPGRADE, "websocket") && has_token(h, &CONNECTION, "upgrade")) {
        return Ok(None);
    }
    let bodyless = !h.contains_key(TRANSFER_ENCODING)
        && h.get(CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
    if req.method() != Method::GET || req.version() != Version::HTTP_11 || !bodyless {
        return Err(Reject::BadRequest(
            "A WebSocket upgrade is an HTTP/1.1 GET request without a body.".into(),
        ));
    }
    Ok(Some(Ask::Http1))
}

/// True when a comma-separated field `name` lists `token` (case-insensitive).
fn has_token(h: &HeaderMap, name: &http::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A route without `websocket = true` refuses every ask.
pub fn allowed(ask: Option<Ask>, route_allows: bool) -> Result<(), Reject> {
    match ask {
        Some(_) if !route_allows => Err(Reject::WebSocketNotAllowed),
        _ => Ok(()),
    }
}

/// An ask that passed the whole policy and holds a place under the caps.
#[derive(Debug)]
pub struct Admitted {
    ask: Ask,
    permit: Permit,
}

impl Admitted {
    /// `ask` holding `permit`.
    pub fn new(ask: Ask, permit: Permit) -> Self {
        Self { ask, permit }
    }
}

/// What an open tunnel needs besides its upgrades: limits, close signal, the access record.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// `[tunnels]`.
    pub settings: TunnelSettings,
    /// The gateway's close-all signal.
    pub closing: watch::Receiver<bool>,
    /// Bound on the upstream's answer to the handshake.
    pub head_timeout: Duration,
    /// The upstream's config name (for `portcullis_upstream_errors_total`).
    pub upstream: String,
}

/// Forwards an admitted handshake (`parts` already rewritten by the pipeline, `Host` and URI
/// set for `up`) and renders the client's answer.
pub async fn open(
    up: &Upstream,
    mut parts: http::request::Parts,
    admitted: Admitted,
    bounds: Bounds,
    forwarding: &ForwardingRules,
) -> Result<Response<Body>, Reject> {
    let client = parts
        .extensions
        .remove::<OnUpgrade>()
        .ok_or_else(|| Reject::Internal("a WebSocket ask without an upgrade handle".into()))?;
    let hold = parts.extensions.remove::<ConnHold>().map(|h| h.busy());
    let client_version = parts.version;
    let accept = upstream_head(&mut parts, admitted.ask);
    let req = Request::from_parts(parts, empty());
    let mut resp = up
        .send_upgrade(req, bounds.head_timeout)
        .await
        .map_err(|e| upstream_reject(e, &bounds.upstream))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return refusal(resp, bounds.head_timeout, forwarding).await;
    }
    if !has_token(resp.headers(), &UPGRADE, "websocket") {
        return Err(Reject::BadUpstreamResponse);
    }
    // RFC 6455 section 4.1: a client fails the connection on a wrong accept; here the gateway
    // is that client.
    if let Some(want) = accept
        && resp
            .headers()
            .get(SEC_WEBSOCKET_ACCEPT)
            .map(HeaderValue::as_bytes)
            != Some(want.as_bytes())
    {
        static LOG: crate::log_limit::LogLimit = crate::log_limit::LogLimit::per_secs(10);
        if let Some(suppressed) = LOG.admit() {
            tracing::warn!(
                suppressed,
                "the upstream's Sec-WebSocket-Accept does not match the gateway's key"
            );
        }
        return Err(Reject::BadUpstreamResponse);
    }
    let upstream = hyper::upgrade::on(&mut resp);
    let mut answer = client_answer(resp.headers(), admitted.ask);
    forwarding.append_via(answer.headers_mut(), client_version);
    let plan = Plan {
        client,
        upstream,
        permit: admitted.permit,
        hold,
        bounds,
    };
    answer
        .extensions_mut()
        .insert(Handoff(Arc::new(Mutex::new(Some(plan)))));
    Ok(answer)
}

/// The handshake as the upstream receives it: an HTTP/1.1 `GET` upgrade. For the h2 bridge the
/// gateway is the WebSocket client of the upstream and sends a key of its own; the
/// `Sec-WebSocket-Accept` the upstream must answer with is returned.
fn upstream_head(parts: &mut http::request::Parts, ask: Ask) -> Option<String> {
    let h = &mut parts.headers;
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.remove(CONTENT_LENGTH);
    if ask != Ask::H2 {
        // The client sent its own key and checks the answer itself.
        return None;
    }
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let accept = accept_for(&key);
    h.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).ok()?);
    h.entry(SEC_WEBSOCKET_VERSION)
        .or_insert(HeaderValue::from_static("13"));
    Some(accept)
}

/// RFC 6455 section 4.2.2: base64 of SHA-1 over the key and the protocol's GUID.
fn accept_for(key: &str) -> String {
    use sha1::Digest;
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = sha1::Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The client's answer to an upstream `101`: `101` with the upstream's end-to-end fields
/// (HTTP/1.1), or `200` without `Sec-WebSocket-Accept`, which RFC 8441 does not use (h2).
fn client_answer(upstream: &HeaderMap, ask: Ask) -> Response<Body> {
    let mut h = upstream.clone();
    headers::strip_hop_by_hop(&mut h);
    h.remove(CONTENT_LENGTH);
    let status = match ask {
        Ask::Http1 => {
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
            StatusCode::SWITCHING_PROTOCOLS
        }
        Ask::H2 => {
            h.remove(SEC_WEBSOCKET_ACCEPT);
            StatusCode::OK
        }
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    *resp.headers_mut() = h;
    resp
}

/// An upstream that did not switch: its error answer relayed (read whole, bounded), or `502`
/// for a `2xx` (it ignored the upgrade; over h2 a `2xx` would open a tunnel to nothing).
async fn refusal(
    resp: Response<hyper::body::Incoming>,
    timeout: Duration,
    forwarding: &ForwardingRules,
) -> Result<Response<Body>, Reject> {
    let (mut parts, body) = resp.into_parts();
    if parts.status.is_success() || parts.status.is_informational() {
        return Err(Reject::BadUpstreamResponse);
    }
    response::check(parts.status, &mut parts.headers, true)?;
    let collected = tokio::time::timeout(timeout, Limited::new(body, REFUSAL_MAX).collect());
    let bytes: Bytes = match collected.await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return Err(Reject::BadUpstreamResponse),
        Err(_) => return Err(Reject::UpstreamTimeout),
    };
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(CONTENT_LENGTH);
    forwarding.append_via(&mut parts.headers, parts.version);
    Ok(Response::from_parts(parts, full(bytes)))
}

fn upstream_reject(e: UpstreamError, upstream: &str) -> Reject {
    static FAILED: crate::log_limit::LogLimit = crate::log_limit::LogLimit::per_secs(10);
    crate::metrics::upstream_error(upstream, e.failure());
    if let Some(suppressed) = FAILED.admit() {
        tracing::warn!(suppressed, upstream, error = %e, "WebSocket handshake to the upstream failed");
    }
    match e {
        UpstreamError::Timeout => Reject::UpstreamTimeout,
        UpstreamError::Connect(_) | UpstreamError::Tls(_) | UpstreamError::Failed(_) => {
            Reject::BadGateway
        }
    }
}

/// An accepted tunnel, waiting for the client's answer to be written.
pub struct Plan {
    client: OnUpgrade,
    upstream: OnUpgrade,
    permit: Permit,
    hold: Option<Busy>,
    bounds: Bounds,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plan")
    }
}

/// The response extension carrying a [`Plan`] to the pipeline's wrapper.
#[derive(Debug, Clone)]
struct Handoff(Arc<Mutex<Option<Plan>>>);

/// The plan a tunnel answer carries (`None` for every other response).
pub fn take_plan<B>(resp: &mut Response<B>) -> Option<Plan> {
    let handoff = resp.extensions_mut().remove::<Handoff>()?;
    let mut slot = handoff.0.lock().unwrap_or_else(|p| p.into_inner());
    slot.take()
}

/// The request's access-log fields, written once when its tunnel ends.
#[derive(Debug, Clone)]
pub struct Record {
    /// `X-Request-Id`.
    pub request_id: String,
    /// W3C trace id (32 hex digits).
    pub trace_id: String,
    /// Route name (`-` when no route matched).
    pub route: String,
    /// Route class.
    pub class: String,
    /// Client IP (after trusted proxies).
    pub client_ip: Option<IpAddr>,
    /// Method as received (`CONNECT` for RFC 8441).
    pub method: String,
    /// Path as received.
    pub path: String,
    /// Status sent to the client (`101`, or `200` on h2).
    pub status: u16,
    /// Time from the request to the answer.
    pub latency_us: u64,
    /// Upstream name.
    pub upstream: String,
    /// Authenticated subject.
    pub principal: String,
    /// How it was authenticated (`none`, `bearer`, `api_key`).
    pub auth: &'static str,
}

impl Plan {
    /// Runs the tunnel in its own task; `record` (when the access log is on) is logged at its end.
    pub fn start(self, record: Option<Record>) {
        tokio::spawn(self.run(record));
    }

    async fn run(self, record: Option<Record>) {
        let Plan {
            client,
            upstream,
            permit,
            hold,
            bounds,
        } = self;
        let started = Instant::now();
        let both = async { tokio::try_join!(client, upstream) };
        let upgraded = tokio::time::timeout(bounds.settings.idle_timeout, both).await;
        let Ok(Ok((client, upstream))) = upgraded else {
            tracing::debug!("a WebSocket upgrade did not complete; no tunnel");
            if let Some(r) = record {
                log(&r, End::NotOpened, &pump::Traffic::new(), started.elapsed());
            }
            return;
        };
        metrics::gauge!("portcullis_tunnels_open").increment(1.0);
        let (end, traffic) = pump(
            TokioIo::new(client),
            TokioIo::new(upstream),
            bounds.settings,
            bounds.closing,
        )
        .await;
        metrics::gauge!("portcullis_tunnels_open").decrement(1.0);
        metrics::counter!("portcullis_tunnels_total", "end" => end.as_str()).increment(1);
        drop((permit, hold));
        if let Some(r) = record {
            log(&r, end, &traffic, started.elapsed());
        }
    }
}

/// The one access event of a tunnelled request.
fn log(r: &Record, end: End, traffic: &pump::Traffic, open_for: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        target: "access",
        request_id = %r.request_id,
        trace_id = %r.trace_id,
        route = %r.route,
        class = %r.class,
        client_ip = r.client_ip.map(tracing::field::display),
        method = %r.method,
        path = %r.path,
        status = r.status,
        latency_us = r.latency_us,
        upstream = %r.upstream,
        principal = %r.principal,
        auth = r.auth,
        tunnel = true,
        tunnel_ms = open_for.as_millis() as u64,
        bytes_up = traffic.up.load(Relaxed),
        bytes_down = traffic.down.load(Relaxed),
        tunnel_end = end.as_str(),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_is_the_rfc_6455_example() {
        assert_eq!(
            super::accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
