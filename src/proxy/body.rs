//! Body: the gateway's response body type and a request body that streams under a size cap.
//!
//! `CappedBody` passes frames through as they arrive (nothing is buffered), counting bytes; past
//! the cap it fails the stream and raises a flag, so the pipeline answers 413 instead of 502.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

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

/// A body that fails once more than `cap` bytes have passed.
pub struct CappedBody<B> {
    inner: B,
    seen: u64,
    cap: u64,
    tripped: Arc<AtomicBool>,
}

impl<B> CappedBody<B> {
    /// Wraps `inner`; `tripped` is set when the cap is exceeded.
    pub fn new(inner: B, cap: u64, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            seen: 0,
            cap,
            tripped,
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.cap {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge(this.cap)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
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
