//! Server: listeners, the accept loop, TLS, HTTP/1.1 and HTTP/2 (hyper-util auto), graceful drain.
//!
//! Every wait is bounded (DESIGN section 10). At accept, connections over `max_connections` or
//! `max_connections_per_ip` are closed at once; an accept error backs off (`accept`). TLS
//! handshakes run in the connection's own task under `tls_handshake_timeout`. `conn` serves one
//! connection: protocol sniff and heads under `header_read_timeout`, `client_idle_timeout` with no
//! request in flight, `client_write_timeout` on a client that stops reading, h2 stream and
//! control-frame limits, and a panic in a handler answered 500 (`catch`). Oversized heads are
//! refused by hyper's buffer cap (the pipeline renders 431 for heads between the configured limit
//! and it). On shutdown, listeners close and in-flight requests and WebSocket tunnels get
//! `shutdown_grace` to finish; tunnels still open then are closed.

pub mod accept;
pub mod bounds;
pub mod catch;
pub mod conn;
pub mod conns;
pub mod fragment;
pub mod h2_flood;
pub mod io;
pub mod proto;
pub mod side;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::validate::Limits;
use crate::gateway::Gateway;
use crate::log_limit::LogLimit;
use crate::pipeline::ConnInfo;
use conn::ConnSettings;
use conns::Slot;
use proto::Protocols;

static REFUSED: LogLimit = LogLimit::per_secs(10);
/// How long tunnels told to close (after the grace period) get to go.
const TUNNEL_CLOSE: std::time::Duration = std::time::Duration::from_secs(1);

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
        let (stop, stopped) = watch::channel(false);
        let snap = self.gw.snapshot();
        let limits = &snap.config.limits;
        // [plain, with RFC 8441]: SETTINGS_ENABLE_CONNECT_PROTOCOL only while a route allows
        // WebSocket (decided per connection, so a reload that adds one takes effect).
        let builders = [false, true].map(|ws| Arc::new(protocols(limits, ws)));
        let mut backoff = accept::Backoff::default();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff.reset();
                        self.admit(stream, peer, &builders, &stopped);
                    }
                    Err(e) => backoff.failed("main", &e).await,
                },
                () = &mut shutdown => break,
            }
        }
        self.gw.set_draining();
        drop(self.listener);
        let _ = stop.send(true);
        let grace = self.gw.snapshot().config.shutdown_grace;
        let tunnels = &self.gw.shared().tunnels;
        let drained = async {
            self.gw.connections().all_closed().await;
            tunnels.all_closed().await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                tunnels = tunnels.open(),
                "shutdown grace elapsed with connections or tunnels still open; closing them"
            );
        }
        tunnels.close_all();
        let _ = tokio::time::timeout(TUNNEL_CLOSE, tunnels.all_closed()).await;
    }

    /// Takes a connection slot (or closes the connection over a cap) and spawns its task.
    fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        builders: &[Arc<Protocols>; 2],
        stopped: &watch::Receiver<bool>,
    ) {
        let snap = self.gw.snapshot();
        let builder = &builders[usize::from(snap.config.websocket_routes)];
        let limits = &snap.config.limits;
        let conns = self.gw.connections();
        match conns.try_open(
            peer.ip(),
            limits.max_connections,
            limits.max_connections_per_ip,
        ) {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                self.spawn_conn(stream, peer, slot, builder, stopped, limits);
            }
            Err(why) => {
                if let Some(suppressed) = REFUSED.admit() {
                    tracing::warn!(%peer, reason = %why, suppressed, "connection refused at accept");
                }
                metrics::counter!("portcullis_connections_refused_total").increment(1);
            }
        }
    }

    fn spawn_conn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        builder: &Arc<Protocols>,
        stopped: &watch::Receiver<bool>,
        limits: &Limits,
    ) {
        let (gw, builder, stopped) = (self.gw.clone(), builder.clone(), stopped.clone());
        let settings = ConnSettings {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.client_idle_timeout,
            write_timeout: limits.client_write_timeout,
            h2_control_frames_per_sec: limits.h2_max_control_frames_per_sec,
        };
        let handshake_timeout = limits.tls_handshake_timeout;
        let tls = self.tls.clone();
        // Boxed, allocated first and written in place: tokio's task cell then holds a pointer,
        // so neither the spawn nor the task's end copies the connection's future (several KiB:
        // gdb counted eight copies of 7.7 KiB per connection before). The TLS branch is boxed
        // too, so a plain connection's future has no room for the handshake's.
        let task = Box::write(Box::new_uninit(), async move {
            let _slot = slot;
            let Some(acceptor) = tls else {
                let info = ConnInfo::new(peer, false);
                return conn::serve(&builder, stream, gw, info, stopped, settings).await;
            };
            let serve_tls = async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let info = ConnInfo::new(peer, true);
                        conn::serve(&builder, tls, gw, info, stopped, settings).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls_handshake_timeout; closed"),
                }
            };
            Box::pin(serve_tls).await;
        });
        tokio::spawn(Box::into_pin(task));
    }
}

/// HTTP/1.1 + HTTP/2 (prior knowledge or ALPN) with the configured head limits and timeouts.
fn protocols(limits: &Limits, websocket: bool) -> Protocols {
    // hyper's own cap is the hard stop; heads between the configured limit and it get our 431.
    let hard_cap = (limits.max_header_bytes * 2).max(16 * 1024);
    let mut h1 = http1::Builder::new();
    // No header timer in hyper: it boxes and arms a sleep for every request. The connection's
    // head clock (`conn::ConnState::head_bytes`) bounds each HTTP/1.1 head instead. Writes stay
    // vectored (hyper's default): head and body chunks go out in one `writev` without being
    // copied. Flattened writes (`writev(false)`) saved 423 instructions a small response, but
    // copied every body chunk once more (a 1 MiB response cost 9 % more CPU) and left each
    // connection's write buffer at the size of its largest burst (`hard_cap` and a chunk)
    // for as long as the connection lived.
    h1.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(hard_cap);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(hard_cap as u32)
        .max_concurrent_streams(limits.h2_max_concurrent_streams);
    if websocket {
        h2.enable_connect_protocol();
    }
    Protocols {
        http1: h1,
        http2: h2,
    }
}
