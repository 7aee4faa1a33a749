//! Catch: a panic in one request's handler becomes `500 internal_server_error`, not a crash.
//!
//! [`catch_panic`] polls any handler future inside `catch_unwind`; a panic is logged with the
//! request id and answered with the partner envelope carrying that id. The connection and the
//! process keep serving. (The release profile unwinds for this; `panic = "abort"` would not.)

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use http::{HeaderValue, Response};

use crate::error::{ErrorStyle, Reject, render};
use crate::proxy::body::{Body, full};
use crate::request_id::{self, RequestId};

/// Runs `handler`; if it panics, logs the panic with `request_id` and answers 500.
pub async fn catch_panic<F>(handler: F, request_id: RequestId) -> Response<Body>
where
    F: Future<Output = Response<Body>>,
{
    let mut handler = std::pin::pin!(handler);
    let caught = std::future::poll_fn(|cx| {
        match catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(resp)) => Poll::Ready(Ok(resp)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await;
    caught.unwrap_or_else(|panic| {
        tracing::error!(request_id = %request_id, panic = panic_text(&*panic),
            "request handler panicked; answered 500");
        internal_error(&request_id)
    })
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
