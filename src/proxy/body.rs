//! Body: the gateway's response body type and a request body that streams under a size cap.
//!
//! `CappedBody` passes frames through as they arrive (nothing is buffered), counting bytes; past
//! the cap, or after a pause longer than `body_idle_timeout`, it fails the stream and records
//! why in its `BodyState`, so the pipeline answers 413 or 408 instead of 502. This holds for
//! bodies the gateway reads itself (the token service) as well as streamed ones. The bytes it
//! passed on are kept in the `BodyState` too, for the access log's `bytes_in`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::idle_timer::IdleTimer;

/// Boxed error of a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the gateway sends or forwards.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with all of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Wraps any body as `Body`.
pub fn boxed<B>(b: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// The stream exceeded its cap.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub struct TooLarge(pub u64);

/// The client paused inside its body longer than `body_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its body for {0:?} (body_idle_timeout)")]
pub struct BodyTimeout(pub std::time::Duration);

/// What happened to a request body on its way, for the pipeline's answer.
#[derive(Debug, Default)]
pub struct BodyState {
    too_large: AtomicBool,
    timed_out: AtomicBool,
    broken: AtomicBool,
    bytes: AtomicU64,
}

impl BodyState {
    /// A state for a body of `bytes` already read in full (a verified webhook).
    pub fn read_in_full(bytes: u64) -> Self {
        let state = Self::default();
        state.bytes.store(bytes, Ordering::Relaxed);
        state
    }

    /// Body bytes passed on so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The body went over its cap.
    pub fn too_large(&self) -> bool {
        self.too_large.load(Ordering::Relaxed)
    }

    /// The client stalled inside the body.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// The client's body broke (closed or reset before its end).
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

/// A body that fails once more than `cap` bytes have passed, or when it pauses too long.
pub struct CappedBody<B> {
    inner: B,
    seen: u64,
    cap: u64,
    idle: IdleTimer,
    state: Arc<BodyState>,
}

impl<B> CappedBody<B> {
    /// Wraps `inner`: at most `cap` bytes, no pause longer than `idle`; `state` records which
    /// bound failed it.
    pub fn new(inner: B, cap: u64, idle: Duration, state: Arc<BodyState>) -> Self {
        Self {
            inner,
            seen: 0,
            cap,
            idle: IdleTimer::new(idle),
            state,
        }
    }
}

impl<B> HttpBody for CappedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.idle.expired(cx, polled.is_pending()) {
            this.state.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.idle.after())))));
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.cap {
                        this.state.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.cap)))));
                    }
                    this.state.bytes.store(this.seen, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.state.broken.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Told of each poll of a response body, and dropped with it (the server counts requests in
/// flight and spots an HTTP/2 client that stopped granting flow-control window).
pub trait PollWatch: Send + Unpin + 'static {
    /// `owes_poll`: the poll yielded data and the body is not done, so the server should poll
    /// again as soon as the client can take more.
    fn polled(&self, owes_poll: bool);
}

/// `body` reporting its polls to `watch` until it is done or dropped.
pub fn with_guard<G: PollWatch>(body: Body, watch: G) -> Body {
    Guarded { inner: body, watch }.boxed_unsync()
}

struct Guarded<G> {
    inner: Body,
    watch: G,
}

impl<G: PollWatch> HttpBody for Guarded<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let owes = matches!(polled, Poll::Ready(Some(Ok(_)))) && !self.inner.is_end_stream();
        self.watch.polled(owes);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
