//! Connection pool: idle HTTP/1.1 connections to one upstream, reused most-recent first.
//!
//! A connection is checked out for one exchange (`h1::exchange`, run by the request's own task)
//! and comes back when the response body has been read to its end (`UpstreamBody`), the request
//! was written to its end, and nothing unread is left on it. A body dropped before its end takes
//! its connection down with it: HTTP/1.1 cannot abandon a response midway. Idle connections that
//! outlived the idle timeout, were closed by the upstream or sent bytes nobody asked for are
//! discarded at checkout, and by a sweep every second (`Pools::evict_idle`, started with the
//! gateway); the check (`Conn::is_usable`) never waits.
//!
//! Retries: a request of which no byte could be written on a reused connection is retried once
//! on a new connection. An idempotent request without a body (GET, HEAD, OPTIONS, PUT, DELETE,
//! TRACE) whose reused connection broke before the response began is replayed once on a new
//! connection; anything with a body, or a POST or PATCH, is never replayed once sent.
//!
//! Bounds: `upstream_response_timeout` runs from the end of the request body to the response
//! head (an upload is bounded by `body_idle_timeout` on the client's side, and a write to the
//! upstream may not stay blocked longer than `upstream_response_timeout`), and the response
//! body may not pause longer than `upstream_body_idle_timeout`: past it the response fails, so
//! the client sees it end incomplete, and the connection is closed.
//!
//! Why not hyper-util's pooled client: it manages a generic keyed pool with a task per returned
//! connection, which cost ~10 % of a forward's instructions (callgrind); one upstream needs a
//! `Vec` behind a mutex. Why not hyper's client connection: see `h1`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service;

use super::body::{Body, BoxError, empty};
use super::h1::decode::{Decoder, Step};
use super::h1::head::{self, Framing, ResponseHead};
use super::h1::upload::Upload;
use super::h1::{self as wire, Conn, Exchanged, Failed, H1Error};
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
    connect_timeout: Duration,
}

struct IdleConn {
    conn: Conn,
    since: Instant,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnPool({})", self.dst)
    }
}

impl ConnPool {
    /// A pool for `dst` (`scheme://authority`), keeping at most `max_idle` idle connections
    /// for `idle_timeout`; a connection (TCP and TLS) must be open within `connect_timeout`.
    pub fn new(connector: Connector, dst: Uri, s: super::PoolSettings) -> Self {
        Self {
            connector,
            dst,
            idle: Mutex::new(Vec::new()),
            max_idle: s.idle_per_host,
            idle_timeout: s.idle_timeout,
            connect_timeout: s.connect_timeout,
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle or new connection; waits at most
    /// `head_timeout` after the request body ended for the response head.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Body>,
        head_timeout: Duration,
        body_idle: Duration,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let (mut parts, body) = req.into_parts();
        let framing = head::request_framing(&parts.method, &mut parts.headers, &body);
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let bytes = head::encode_request(&parts.method, target, &parts.headers);
        let replayable = idempotent(&parts.method) && framing == Framing::Empty;
        let mut upload = Upload::new(bytes.clone(), body, framing, head_timeout);
        let (mut conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            // Boxed: the connect (and TLS handshake) future is large and rarely run; inline, its
            // size would be moved with every request's future.
            None => (Box::pin(self.connect()).await?, false),
        };
        let fields = std::mem::take(&mut parts.headers);
        let exchanged =
            match wire::exchange(&mut conn, &mut upload, &parts.method, head_timeout, fields).await
            {
                Ok(x) => x,
                Err(failed) if reused => {
                    let again = Retry {
                        failed,
                        replay: replayable.then_some(bytes),
                        method: &parts.method,
                        head_timeout,
                    };
                    let (fresh, x) = Box::pin(self.retry(again, &mut upload)).await?;
                    conn = fresh;
                    x
                }
                Err(failed) => return Err(upstream_error(failed.error)),
            };
        let upload = (!upload.is_done()).then_some(upload);
        Ok(UpstreamBody::new(
            conn,
            exchanged,
            upload,
            self.clone(),
            body_idle,
        ))
    }

    /// A reused connection failed: once more on a new one if nothing of the request left, or
    /// if it is a bodyless idempotent request and the response had not begun (boxed by the
    /// caller: cold).
    async fn retry(
        &self,
        r: Retry<'_>,
        upload: &mut Upload,
    ) -> Result<(Conn, Exchanged), UpstreamError> {
        let broken = matches!(r.failed.error, H1Error::Closed | H1Error::Io(_));
        let mut replayed;
        let upload = match r.replay {
            _ if r.failed.unsent && broken => upload,
            Some(bytes) if broken && r.failed.before_response => {
                replayed = Upload::new(bytes, empty(), Framing::Empty, r.head_timeout);
                &mut replayed
            }
            _ => return Err(upstream_error(r.failed.error)),
        };
        let mut conn = self.connect().await?;
        let x = wire::exchange(
            &mut conn,
            upload,
            r.method,
            r.head_timeout,
            Default::default(),
        )
        .await
        .map_err(|f| upstream_error(f.error))?;
        Ok((conn, x))
    }

    /// Drops idle connections past the idle timeout, closed by the upstream, or with unread
    /// bytes (the sweeper calls this; checkout applies the same rule to the one it takes).
    pub fn evict_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain_mut(|c| c.since.elapsed() <= self.idle_timeout && c.conn.is_usable());
        }
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(IdleConn { mut conn, since }) = idle.pop() {
            if since.elapsed() <= self.idle_timeout && conn.is_usable() {
                return Some(conn);
            }
        }
        None
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
        tx.send_request(req)
            .await
            .map_err(|e| UpstreamError::Failed(error_chain(&e)))
    }

    /// A new TCP (and TLS) connection to the upstream, within `connect_timeout` (the
    /// connector bounds only the TCP connect; a TLS handshake that never ends is bounded here).
    async fn open(&self) -> Result<<Connector as Service<Uri>>::Response, UpstreamError> {
        let mut connector = self.connector.clone();
        let opened = tokio::time::timeout(self.connect_timeout, async {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(self.dst.clone()).await
        });
        match opened.await {
            Ok(Ok(io)) => Ok(io),
            Ok(Err(e)) if super::is_tls_error(&*e) => Err(UpstreamError::Tls(error_chain(&*e))),
            Ok(Err(e)) => Err(UpstreamError::Connect(error_chain(&*e))),
            Err(_) => Err(UpstreamError::Connect(format!(
                "no connection within {:?} (upstream_connect_timeout)",
                self.connect_timeout
            ))),
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        Ok(Conn::new(TokioIo::new(self.open().await?)))
    }

    fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(IdleConn {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// What a retry needs to know about the first try.
struct Retry<'a> {
    failed: Failed,
    /// The request's head, when it may be replayed (idempotent, no body).
    replay: Option<Bytes>,
    method: &'a Method,
    head_timeout: Duration,
}

fn upstream_error(e: H1Error) -> UpstreamError {
    match e {
        H1Error::Timeout => UpstreamError::Timeout,
        e => UpstreamError::Failed(e.to_string()),
    }
}

/// Methods a client may expect to be repeated (RFC 9110 section 9.2.2).
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The upstream stalled inside its response body.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing of its response body for {0:?} (upstream_body_idle_timeout)")]
pub struct UpstreamBodyTimeout(pub Duration);

/// An upstream response body, read from the connection as the server polls it. The connection
/// goes back to the pool at the body's end when it may carry another exchange; a request body
/// still uploading (full duplex, or an early answer) is written on as the body is polled.
pub struct UpstreamBody {
    conn: Option<Conn>,
    decoder: Decoder,
    upload: Option<Upload>,
    keep_alive: bool,
    pool: Arc<ConnPool>,
    idle: IdleTimer,
    /// The upstream answered before the request was all sent, and will not read the rest.
    abandoned_upload: bool,
}

impl UpstreamBody {
    fn new(
        conn: Conn,
        x: Exchanged,
        upload: Option<Upload>,
        pool: Arc<ConnPool>,
        body_idle: Duration,
    ) -> Response<Self> {
        let ResponseHead {
            parts,
            framing,
            keep_alive,
        } = x.head;
        let abandoned_upload = upload.is_some() && !keep_alive;
        let mut body = Self {
            abandoned_upload,
            conn: Some(conn),
            decoder: Decoder::new(framing),
            // An upstream that answered early and closes will not read the rest: the upload
            // ends here, so the server knows the client's body is left unread (and says close).
            upload: upload.filter(|_| keep_alive),
            keep_alive: keep_alive && framing != Framing::Close,
            pool,
            idle: IdleTimer::new(body_idle),
        };
        if body.decoder.is_done() {
            body.finish();
        }
        Response::from_parts(parts, body)
    }

    /// Whether the client's request body was left unread (the upstream answered early and
    /// closes): the client connection cannot carry another request.
    pub fn left_request_unread(&self) -> bool {
        self.abandoned_upload
    }

    /// The body is complete: its connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && self.keep_alive
            && self.upload.is_none()
            && conn.buf().is_empty()
        {
            self.pool.put(conn);
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Bounded: each turn either returns or consumed bytes the socket just delivered.
        loop {
            let Some(conn) = this.conn.as_mut() else {
                if this.decoder.is_done() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(Box::new(H1Error::Closed))));
            };
            if let Some(upload) = this.upload.as_mut()
                && let Poll::Ready(done) = upload.poll(cx, conn.io())
            {
                // Finished, or failed while the response streams: either way not reusable
                // unless it finished.
                this.upload = None;
                this.keep_alive &= done.is_ok();
            }
            let step = match this.decoder.step(conn.buf(), false) {
                Ok(step) => step,
                Err(e) => return this.fail(e),
            };
            match step {
                Step::Data(data) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Step::NeedMore => {}
            }
            let polled = conn.poll_fill(cx);
            if this.idle.expired(cx, polled.is_pending()) {
                if let Some(suppressed) = UPSTREAM_STALLED.admit() {
                    tracing::warn!(suppressed, "upstream_body_idle_timeout: response cut off");
                }
                return this.fail(UpstreamBodyTimeout(this.idle.after()));
            }
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => match this.decoder.step(conn.buf(), true) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(_) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Err(e) => return this.fail(e),
                },
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
