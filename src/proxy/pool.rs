//! Connection pool: idle HTTP/1.1 connections to one upstream, reused most-recent first.
//!
//! A connection is checked out for one exchange and comes back when the response body has been
//! read to its end (`PooledBody`). A body dropped before its end takes its connection down with
//! it: HTTP/1.1 cannot abandon a response midway. Idle connections that outlived the idle timeout
//! or were closed by the upstream are discarded at checkout, and by a sweep every second
//! (`Pools::evict_idle`, started with the gateway). A request that could not even be
//! written on a reused connection (closed under us) is retried once on a new connection; nothing
//! is retried once any of it was sent.
//!
//! Why not hyper-util's pooled client: it manages a generic keyed pool with a task per returned
//! connection, which cost ~10 % of a forward's instructions (callgrind); one upstream needs a
//! `Vec` behind a mutex.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::body::Body;
use super::{UpstreamError, error_chain};

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
    tx: SendRequest<Body>,
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

    /// Sends `req` (origin-form URI, `Host` set) on an idle or new connection.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let (mut tx, reused) = match self.checkout().await {
            Some(tx) => (tx, true),
            None => (self.connect().await?, false),
        };
        match tx.try_send_request(req).await {
            Ok(resp) => Ok(self.wrap(resp, tx)),
            Err(mut e) => match e.take_message() {
                Some(req) if reused => {
                    let mut tx = self.connect().await?;
                    let resp = tx.send_request(req).await.map_err(failed)?;
                    Ok(self.wrap(resp, tx))
                }
                _ => Err(failed(e.into_error())),
            },
        }
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

    async fn checkout(&self) -> Option<SendRequest<Body>> {
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

    async fn connect(&self) -> Result<SendRequest<Body>, UpstreamError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&*e)))?;
        let io = connector
            .call(self.dst.clone())
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&*e)))?;
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

    fn wrap(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        tx: SendRequest<Body>,
    ) -> Response<PooledBody> {
        resp.map(|body| PooledBody {
            body,
            slot: Some((self.clone(), tx)),
        })
    }

    fn put(&self, tx: SendRequest<Body>) {
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

/// An upstream response body that hands its connection back to the pool once read to the end.
pub struct PooledBody {
    body: Incoming,
    slot: Option<(Arc<ConnPool>, SendRequest<Body>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, tx)) = self.slot.take() {
            pool.put(tx);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken exchange: the connection goes with it.
            Poll::Ready(Some(Err(_))) => this.slot = None,
            _ => {}
        }
        polled
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
