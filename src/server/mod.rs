//! Server: listeners, the accept loop, TLS, HTTP/1.1 and HTTP/2 (hyper-util auto), graceful drain.
//!
//! An accept error never ends the loop. TLS handshakes run in the connection's own task under a
//! timeout. Slow clients are cut off by the header-read timeout; oversized heads are refused by
//! hyper's buffer cap (the pipeline renders 431 for heads between the configured limit and it).
//! On shutdown, listeners close and in-flight requests get `shutdown_grace` to finish.

pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::gateway::Gateway;
use crate::pipeline::{self, ConnInfo};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve.
pub struct Server {
    gw: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Binds the snapshot's listen address (port 0 picks a free port).
    pub async fn bind(gw: Arc<Gateway>) -> std::io::Result<Self> {
        let snap = gw.snapshot();
        let listener = TcpListener::bind(snap.config.listen).await?;
        gw.start().await;
        let tls = match &snap.config.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key).map_err(std::io::Error::other)?),
            None => None,
        };
        Ok(Self { gw, listener, tls })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests (bounded by the grace time).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let builder = Arc::new(http_builder(&self.gw));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        self.spawn_conn(stream, peer, &builder, &graceful);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        self.gw.set_draining();
        drop(self.listener);
        let grace = self.gw.snapshot().config.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace elapsed with connections still open");
        }
    }

    fn spawn_conn(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        builder: &Arc<Builder<TokioExecutor>>,
        graceful: &GracefulShutdown,
    ) {
        let gw = self.gw.clone();
        let builder = builder.clone();
        match self.tls.clone() {
            None => {
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    serve_conn(&builder, stream, gw, ConnInfo::new(peer, false), watcher).await;
                });
            }
            Some(acceptor) => {
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_conn(&builder, tls, gw, ConnInfo::new(peer, true), watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn serve_conn<S>(
    builder: &Builder<TokioExecutor>,
    io: S,
    gw: Arc<Gateway>,
    info: ConnInfo,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let info = Arc::new(info);
    let svc = service_fn(move |req| {
        let gw = gw.clone();
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(pipeline::handle(gw, &info, req).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// HTTP/1.1 + HTTP/2 (prior knowledge or ALPN) with the configured head limits and timeouts.
fn http_builder(gw: &Gateway) -> Builder<TokioExecutor> {
    let limits = gw.snapshot().config.limits.clone();
    // hyper's own cap is the hard stop; heads between the configured limit and it get our 431.
    let hard_cap = (limits.max_header_bytes * 2).max(16 * 1024);
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(hard_cap);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(hard_cap as u32);
    b
}
