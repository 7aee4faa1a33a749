//! Catch: a panic in one request's handler becomes `500 internal_server_error`, not a crash.
//!
//! [`catch_panic`] polls any handler future inside `catch_unwind`; a panic is logged with the
//! request id and answered with the partner envelope carrying that id. The connection and the
//! process keep serving. (The release profile unwinds for this; `panic = "abort"` would not.)

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response};

use crate::error::{ErrorStyle, Reject, render};
use crate::proxy::body::{Body, full};
use crate::request_id::{self, RequestId};

pin_project_lite::pin_project! {
    /// `handler`, polled inside `catch_unwind`; see [`catch_panic`].
    ///
    /// A struct rather than an `async fn`: an `async fn` taking the handler by value holds it
    /// twice (the argument and the pinned local) and moves it between the two on the first poll,
    /// several KiB per request for the pipeline's future. This one is polled where it was built.
    #[must_use = "futures do nothing unless polled"]
    pub struct CatchPanic<F> {
        #[pin]
        handler: F,
        request_id: RequestId,
    }
}

/// Runs `handler`; if it panics, logs the panic with `request_id` and answers 500.
pub fn catch_panic<F>(handler: F, request_id: RequestId) -> CatchPanic<F>
where
    F: Future<Output = Response<Body>>,
{
    CatchPanic {
        handler,
        request_id,
    }
}

impl<F: Future<Output = Response<Body>>> Future for CatchPanic<F> {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        let mut this = self.project();
        match catch_unwind(AssertUnwindSafe(|| this.handler.as_mut().poll(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                tracing::error!(request_id = %this.request_id, panic = panic_text(&*panic),
                    "request handler panicked; answered 500");
                Poll::Ready(internal_error(this.request_id))
            }
        }
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

fn internal_error(request_id: &RequestId) -> Response<Body> {
    let problem = Reject::Internal("panic".into()).problem();
    crate::metrics::reject(problem.code);
    let body = render(&problem, ErrorStyle::Partner, request_id.as_str());
    let mut resp = Response::new(full(body));
    *resp.status_mut() = problem.status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(request_id::HEADER, request_id.header_value());
    resp
}
