//! Connection pool: idle HTTP/1.1 connections to one upstream, reused most-recent first.
//!
//! A connection is checked out for one exchange and comes back when the response body has been
//! read to its end (`PooledBody`). A body dropped before its end takes its connection down with
//! it: HTTP/1.1 cannot abandon a response midway. Idle connections that outlived the idle timeout
//! or were closed by the upstream are discarded at checkout, and by a sweep every second
//! (`Pools::evict_idle`, started with the gateway). A connection goes back to the pool only once
//! both bodies are done: one whose request body is still uploading (or broke) is never reused.
//!
//! Retries: a request that could not even be written on a reused connection (closed under us) is
//! retried once on a new connection. An idempotent request without a body (GET, HEAD, OPTIONS,
//! PUT, DELETE, TRACE) whose reused connection broke before the response head is replayed once on
//! a new connection; anything with a body, or a POST or PATCH, is never replayed once sent.
//!
//! Bounds: `upstream_response_timeout` runs from the end of the request body to the response
//! head (an upload is bounded by `body_idle_timeout` instead), and the response body may not
//! pause longer than `upstream_body_idle_timeout`: past it the response fails, so the client
//! sees it end incomplete, and the connection is closed.
//!
//! Why not hyper-util's pooled client: it manages a generic keyed pool with a task per returned
//! connection, which cost ~10 % of a forward's instructions (callgrind); one upstream needs a
//! `Vec` behind a mutex.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Notify;
use tower_service::Service;

use super::body::{Body, BoxError, empty};
use super::{UpstreamError, error_chain};
use crate::idle_timer::IdleTimer;
use crate::log_limit::LogLimit;

static UPSTREAM_STALLED: LogLimit = LogLimit::per_secs(10);

/// TCP (and TLS for `https` upstreams) connector.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Idle connections to one upstream.
pub struct ConnPool {
    connector: Connector,
    dst: Uri,
    idle: Mutex<Vec<IdleConn>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct IdleConn {
    tx: SendRequest<SentBody>,
    since: Instant,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnPool({})", self.dst)
    }
}

impl ConnPool {
    /// A pool for `dst` (`scheme://authority`), keeping at most `max_idle` idle connections.
    pub fn new(connector: Connector, dst: Uri, max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            connector,
            dst,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle or new connection; waits at most
    /// `head_timeout` after the request body ended for the response head.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Body>,
        head_timeout: Duration,
        body_idle: Duration,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let (parts, body) = req.into_parts();
        let sent = Sent::new(body.is_end_stream());
        let replay =
            (idempotent(&parts.method) && body.is_end_stream()).then(|| Replay::of(&parts));
        let req = Request::from_parts(
            parts,
            SentBody {
                inner: body,
                sent: sent.clone(),
            },
        );
        tokio::select! {
            exchanged = self.exchange(req, replay) => exchanged.map(|(resp, tx)| {
                resp.map(|body| PooledBody {
                    body,
                    slot: Some((self.clone(), tx)),
                    sent,
                    idle: IdleTimer::new(body_idle),
                })
            }),
            () = sent.then_wait(head_timeout) => Err(UpstreamError::Timeout),
        }
    }

    async fn exchange(
        &self,
        req: Request<SentBody>,
        replay: Option<Replay>,
    ) -> Result<(Response<Incoming>, SendRequest<SentBody>), UpstreamError> {
        let (mut tx, reused) = match self.checkout().await {
            Some(tx) => (tx, true),
            // Boxed: the connect (and TLS handshake) future is large and rarely run; inline, its
            // size would be moved with every request's future.
            None => (Box::pin(self.connect()).await?, false),
        };
        match tx.try_send_request(req).await {
            Ok(resp) => Ok((resp, tx)),
            Err(e) => Box::pin(self.retry(e, replay, reused)).await,
        }
    }

    /// The request failed on a connection: once more on a new one if it never left, or if it is
    /// a bodyless idempotent request whose reused connection broke (boxed by the caller: cold).
    async fn retry(
        &self,
        mut e: hyper::client::conn::TrySendError<Request<SentBody>>,
        replay: Option<Replay>,
        reused: bool,
    ) -> Result<(Response<Incoming>, SendRequest<SentBody>), UpstreamError> {
        let retry = match (e.take_message(), replay) {
            (Some(unsent), _) if reused => unsent,
            (None, Some(replay)) if reused && replayable(e.error()) => replay.request(),
            _ => return Err(failed(e.into_error())),
        };
        let mut tx = self.connect().await?;
        let resp = tx.send_request(retry).await.map_err(failed)?;
        Ok((resp, tx))
    }

    /// Drops idle connections past the idle timeout or closed by the upstream (the sweeper
    /// calls this; checkout applies the same rule to the connection it takes).
    pub fn evict_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| c.since.elapsed() <= self.idle_timeout && !c.tx.is_closed());
        }
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    async fn checkout(&self) -> Option<SendRequest<SentBody>> {
        loop {
            let IdleConn { mut tx, since } = self.idle.lock().ok()?.pop()?;
            if since.elapsed() > self.idle_timeout || tx.is_closed() {
                continue;
            }
            // Usually ready at once; a connection still finishing its last exchange is awaited.
            if tx.ready().await.is_ok() {
                return Some(tx);
            }
        }
    }

    /// Sends an upgrade request (a WebSocket handshake) on a new connection of its own, driven
    /// with upgrades: an upgraded connection never comes back to the pool.
    pub async fn send_upgrade(
        &self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let io = self.open().await?;
        let (mut tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended with an error");
            }
        });
        tx.send_request(req).await.map_err(failed)
    }

    /// A new TCP (and TLS) connection to the upstream.
    async fn open(&self) -> Result<<Connector as Service<Uri>>::Response, UpstreamError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&*e)))?;
        connector.call(self.dst.clone()).await.map_err(|e| {
            if super::is_tls_error(&*e) {
                UpstreamError::Tls(error_chain(&*e))
            } else {
                UpstreamError::Connect(error_chain(&*e))
            }
        })
    }

    async fn connect(&self) -> Result<SendRequest<SentBody>, UpstreamError> {
        let io = self.open().await?;
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    fn put(&self, tx: SendRequest<SentBody>) {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(IdleConn {
                tx,
                since: Instant::now(),
            });
        }
    }
}

fn failed(e: hyper::Error) -> UpstreamError {
    UpstreamError::Failed(error_chain(&e))
}

/// Methods a client may expect to be repeated (RFC 9110 section 9.2.2).
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A broken connection, not a bad response or our own mistake.
fn replayable(e: &hyper::Error) -> bool {
    !(e.is_parse() || e.is_user() || e.is_timeout())
}

/// The head of a bodyless idempotent request, kept to replay it once on a new connection.
struct Replay {
    method: Method,
    uri: Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn of(parts: &http::request::Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        }
    }

    fn request(self) -> Request<SentBody> {
        let mut req = Request::new(SentBody {
            inner: empty(),
            sent: Sent::new(true),
        });
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        req
    }
}

/// Whether a request body has been sent to its end.
#[derive(Debug)]
pub struct Sent {
    done: AtomicBool,
    notify: Notify,
}

impl Sent {
    fn new(done: bool) -> Arc<Self> {
        Arc::new(Self {
            done: AtomicBool::new(done),
            notify: Notify::new(),
        })
    }

    fn finish(&self) {
        if !self.done.swap(true, Ordering::Relaxed) {
            self.notify.notify_waiters();
        }
    }

    fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits for the body's end, then `after`.
    async fn then_wait(&self, after: Duration) {
        loop {
            let notified = self.notify.notified();
            if self.is_done() {
                break;
            }
            notified.await;
        }
        tokio::time::sleep(after).await;
    }
}

/// A request body that records when it has been sent to its end.
pub struct SentBody {
    inner: Body,
    sent: Arc<Sent>,
}

impl HttpBody for SentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.sent.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.sent.finish(),
            _ => {}
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

/// The upstream stalled inside its response body.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing of its response body for {0:?} (upstream_body_idle_timeout)")]
pub struct UpstreamBodyTimeout(pub Duration);

/// An upstream response body that hands its connection back to the pool once read to the end
/// (and once its request body was sent to the end).
pub struct PooledBody {
    body: Incoming,
    slot: Option<(Arc<ConnPool>, SendRequest<SentBody>)>,
    sent: Arc<Sent>,
    idle: IdleTimer,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, tx)) = self.slot.take()
            && self.sent.is_done()
        {
            pool.put(tx);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if this.idle.expired(cx, polled.is_pending()) {
            this.slot = None;
            if let Some(suppressed) = UPSTREAM_STALLED.admit() {
                tracing::warn!(suppressed, "upstream_body_idle_timeout: response cut off");
            }
            return Poll::Ready(Some(Err(Box::new(UpstreamBodyTimeout(this.idle.after())))));
        }
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken exchange: the connection goes with it.
            Poll::Ready(Some(Err(_))) => this.slot = None,
            _ => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // The server may stop polling once `is_end_stream` says so, without reading `None`.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
