//! Access log: the one `access` event of each request, written when its response body ends.
//!
//! The pipeline's wrapper (`pipeline::handle`) builds an [`Entry`] once the response head is
//! decided, and only when the `access` target is enabled at INFO: with the log off, nothing here
//! runs. [`attach`] wraps the response body in [`Logged`], which counts the body bytes handed to
//! the connection and writes the event when the body ends: at its last frame, at an error, or
//! when it is dropped unfinished (the client went away; `complete` is then `false`). So
//! `latency_us` is the time from the request to the last response byte, and `bytes_out` what
//! was actually sent; `bytes_in` is read then from the request body's counter (`BodyState`),
//! which the streaming body updates as frames pass.
//!
//! WebSocket tunnels log their own event when they end (`tunnel::Record`), with the same
//! request fields.
//!
//! Fields: `request_id`, `trace_id` (W3C, see `trace`), `route` (its name, `-` when none matched), `class`, `client_ip`,
//! `principal` (authenticated subject, empty when none), `auth` (`none`, `bearer`, `api_key`,
//! `webhook`), `method`, `path`, `status`, `code` (the envelope's catalogue code when the
//! gateway or its token service refused the request, empty otherwise), `bytes_in`, `bytes_out`, `latency_us`,
//! `upstream_latency_us` (request sent upstream to its response head; absent when nothing went
//! upstream), `upstream` (its name), `complete`.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::auth::{AuthMethod, Principal};
use crate::proxy::body::{Body, BodyState, BoxError};
use crate::request_id::RequestId;

/// Whether access events are written (the `access` target at INFO).
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::INFO)
}

/// How the request was authenticated, for the `auth` field.
pub fn auth_name(principal: Option<&Principal>, webhook_verified: bool) -> &'static str {
    match principal.map(Principal::method) {
        Some(AuthMethod::Bearer) => "bearer",
        Some(AuthMethod::ApiKey) => "api_key",
        None if webhook_verified => "webhook",
        None => "none",
    }
}

/// The fields of one request's access event, known at its response head.
#[derive(Debug)]
pub struct Entry {
    /// `X-Request-Id`.
    pub request_id: RequestId,
    /// The W3C trace id (continued from a trusted proxy, or new).
    pub trace_id: crate::trace::Hex<32>,
    /// Route name (`-` when no route matched).
    pub route: String,
    /// Route class.
    pub class: String,
    /// Client IP (after trusted proxies).
    pub client_ip: Option<IpAddr>,
    /// The authenticated principal.
    pub principal: Option<Arc<Principal>>,
    /// How it was authenticated (`auth_name`).
    pub auth: &'static str,
    /// Method as received.
    pub method: http::Method,
    /// Path as received.
    pub path: String,
    /// Status sent to the client.
    pub status: u16,
    /// Catalogue code of the gateway's refusal.
    pub code: Option<&'static str>,
    /// The request body's counter (none when no body was read).
    pub body: Option<Arc<BodyState>>,
    /// Request sent upstream to its response head.
    pub upstream_latency: Option<Duration>,
    /// Upstream name (empty when no route matched).
    pub upstream: String,
    /// When the request arrived.
    pub started: Instant,
}

impl Entry {
    /// The fields a tunnel logs when it ends (its event counts its own bytes).
    pub fn into_tunnel_record(self) -> crate::tunnel::Record {
        crate::tunnel::Record {
            request_id: self.request_id.to_string(),
            trace_id: self.trace_id.to_string(),
            route: self.route,
            class: self.class,
            client_ip: self.client_ip,
            method: self.method.to_string(),
            path: self.path,
            status: self.status,
            latency_us: self.started.elapsed().as_micros() as u64,
            upstream: self.upstream,
            principal: self
                .principal
                .as_ref()
                .map_or(String::new(), |p| p.subject().to_string()),
            auth: self.auth,
        }
    }

    /// Writes the event: `bytes_out` sent, `complete` when the body reached its end.
    fn write(&self, bytes_out: u64, complete: bool) {
        let client_ip = self.client_ip.map(tracing::field::display);
        let principal = self.principal.as_ref().map_or("", |p| p.subject());
        let bytes_in = self.body.as_ref().map_or(0, |b| b.bytes());
        let upstream_latency_us = self.upstream_latency.map(|d| d.as_micros() as u64);
        tracing::info!(
            target: "access",
            request_id = %self.request_id,
            trace_id = %self.trace_id,
            route = %self.route,
            class = %self.class,
            client_ip,
            principal,
            auth = self.auth,
            method = %self.method,
            path = %self.path,
            status = self.status,
            code = self.code.unwrap_or(""),
            bytes_in,
            bytes_out,
            latency_us = self.started.elapsed().as_micros() as u64,
            upstream_latency_us,
            upstream = %self.upstream,
            complete,
        );
    }
}

/// `resp` with its body wrapped so that `entry` is written when the body ends.
pub fn attach(resp: Response<Body>, entry: Entry) -> Response<Body> {
    resp.map(|inner| {
        Logged {
            inner,
            bytes: 0,
            entry: Some(Box::new(entry)),
        }
        .boxed_unsync()
    })
}

/// A response body that counts its bytes and writes its request's access event at its end.
pub struct Logged {
    inner: Body,
    bytes: u64,
    entry: Option<Box<Entry>>,
}

impl Logged {
    fn finish(&mut self, complete: bool) {
        if let Some(entry) = self.entry.take() {
            entry.write(self.bytes, complete);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body may never be polled; one dropped midway was cut off.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
