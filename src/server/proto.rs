//! Proto: one connection served as the HTTP version its first bytes showed.
//!
//! [`conn::serve`](super::conn::serve) reads those bytes itself (bounded by
//! `header_read_timeout`, and to arm the h2 flood scanner), so the version is known before hyper
//! sees the stream. [`Protocols`] holds hyper's two connection builders, configured once per
//! listener, and [`Proto`] the connection one of them made. (hyper-util's auto builder would read
//! the bytes a second time and keep a rewind layer under every later read and write.)

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::TokioExecutor;

type BoxError = Box<dyn StdError + Send + Sync>;

/// hyper's HTTP/1.1 and h2 connection builders.
#[derive(Debug, Clone)]
pub struct Protocols {
    /// HTTP/1.1 (served with upgrades, for WebSocket).
    pub http1: http1::Builder,
    /// h2, prior knowledge or ALPN.
    pub http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    /// Serves `io` with `svc`: as h2 when the client sent the h2 preface (`h2`), else as
    /// HTTP/1.1 with upgrades.
    pub fn serve<I, S, B>(&self, io: I, svc: S, h2: bool) -> Proto<I, S>
    where
        I: Read + Write + Unpin + Send + 'static,
        S: HttpService<Incoming, ResBody = B>,
        S::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
        TokioExecutor: Http2ServerConnExec<S::Future, B>,
    {
        if h2 {
            Proto::H2 {
                conn: self.http2.serve_connection(io, svc),
            }
        } else {
            Proto::H1 {
                conn: self.http1.serve_connection(io, svc).with_upgrades(),
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection being served; resolves when it closes. Each variant's `conn` is hyper's.
    // pin-project-lite takes no doc comments on variant fields.
    #[allow(missing_docs)]
    #[project = ProtoProj]
    pub enum Proto<I, S>
    where
        S: HttpService<Incoming>,
    {
        /// HTTP/1.1.
        H1 {
            #[pin]
            conn: http1::UpgradeableConnection<I, S>,
        },
        /// h2.
        H2 {
            #[pin]
            conn: http2::Connection<I, S, TokioExecutor>,
        },
    }
}

impl<I, S, B> Proto<I, S>
where
    I: Read + Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    /// Starts a graceful close: HTTP/1.1 closes once idle, h2 sends GOAWAY. Keep polling.
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            ProtoProj::H1 { conn } => conn.graceful_shutdown(),
            ProtoProj::H2 { conn } => conn.graceful_shutdown(),
        }
    }
}

impl<I, S, B> Future for Proto<I, S>
where
    I: Read + Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ProtoProj::H1 { conn } => conn.poll(cx),
            ProtoProj::H2 { conn } => conn.poll(cx),
        }
    }
}
