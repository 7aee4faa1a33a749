//! Connection IO: the client stream as hyper sees it, with a write timeout and the sniffed prefix.
//!
//! `ConnIo` replays the bytes read while telling HTTP/1.1 from h2c, fails a write that stays
//! blocked longer than `client_write_timeout` (a client that stopped reading cannot pin a response
//! and its upstream connection), and on HTTP/2 feeds inbound bytes to the flood scanner: over its
//! budget it stops reading and wakes the connection task, which queues GOAWAY; then reads end.
//! On HTTP/1.1 it feeds them to the fragment scan instead (`super::fragment`), and starts the
//! connection's head clock when bytes arrive with no request in flight (`header_read_timeout`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::{ConnState, FloodStage};
use super::fragment::FragmentScan;
use super::h2_flood::FrameScanner;
use crate::idle_timer::IdleTimer;

/// A client stream with its sniffed prefix, write timeout and (h2) flood scanner.
pub struct ConnIo<S> {
    inner: S,
    prefix: Vec<u8>,
    at: usize,
    stalled: IdleTimer,
    scanner: Option<FrameScanner>,
    /// HTTP/1.1: request lines with a `#fragment` (the parsed URI no longer shows it).
    fragments: Option<FragmentScan>,
    state: Arc<ConnState>,
}

impl<S> ConnIo<S> {
    /// Wraps `inner`; `prefix` are bytes already read from it.
    pub fn new(
        inner: S,
        prefix: Vec<u8>,
        write_timeout: Duration,
        scanner: Option<FrameScanner>,
        state: Arc<ConnState>,
    ) -> Self {
        Self {
            inner,
            prefix,
            at: 0,
            stalled: IdleTimer::new(write_timeout),
            fragments: scanner.is_none().then(FragmentScan::default),
            scanner,
            state,
        }
    }

    /// Bounds a pending write: an error once it has been pending for the write timeout.
    fn bound<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if self.stalled.expired(cx, r.is_pending()) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client_write_timeout: the client stopped reading",
            )));
        }
        r
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.state.flood_stage() {
            // Read nothing more until the connection task has queued the GOAWAY, then end.
            FloodStage::Detected => return Poll::Pending,
            FloodStage::Closing => return Poll::Ready(Ok(())),
            FloodStage::None => {}
        }
        let before = buf.filled().len();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
        } else {
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
        if let Some(scan) = &mut this.fragments {
            scan.feed(&buf.filled()[before..], &this.state.fragments);
            if buf.filled().len() > before {
                this.state.head_bytes();
            }
        }
        if let Some(scanner) = &mut this.scanner
            && let Some(at) = scanner.feed(&buf.filled()[before..])
        {
            // The frames before the offending one are delivered (the handshake needs them).
            buf.set_filled(before + at);
            this.state.flood();
            if at == 0 {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        self.bound(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bound(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(cx, r)
    }
}
