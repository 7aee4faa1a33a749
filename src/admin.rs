//! Admin: the separate operator listener: `/healthz`, `/readyz`, `/metrics`, `POST /reload`,
//! the credential API under `/admin/v1/` (`admin_api`) and the web console at `/console/`
//! (`console`), which uses only that API and `/metrics`.
//!
//! Bind it to loopback or a management network: health, metrics and reload are unauthenticated
//! by design, like the admin ports of Envoy and HAProxy; the credential API needs an operator
//! token and is off without `[[admin.tokens]]`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::gateway::Gateway;

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener) {
    let mut backoff = crate::server::accept::Backoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                backoff.failed("admin", &e).await;
                continue;
            }
        };
        backoff.reset();
        let gw = gw.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(handle(&gw, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", v.to_string())
}

async fn handle(gw: &Gateway, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path().starts_with(crate::admin_api::PREFIX) {
        return match crate::admin_api::handle(gw, req).await {
            Some(resp) => resp,
            None => not_found(),
        };
    }
    if let Some(resp) = crate::console::handle(req.method(), req.uri().path(), req.headers()) {
        return resp;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        (&Method::GET, "/readyz") if gw.is_draining() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "draining"}),
        ),
        (&Method::GET, "/readyz") if !gw.state_ready() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_ready", "reason": "the Redis state backend is unreachable"}),
        ),
        (&Method::GET, "/readyz") => json(StatusCode::OK, serde_json::json!({"status": "ready"})),
        (&Method::GET, "/metrics") => match crate::metrics::handle() {
            Some(h) => reply(StatusCode::OK, "text/plain; version=0.0.4", h.render()),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "metrics recorder unavailable"}),
            ),
        },
        (&Method::POST, "/reload") => match gw.reload().await {
            Ok(()) => json(StatusCode::OK, serde_json::json!({"status": "reloaded"})),
            Err(diags) => {
                let problems: Vec<String> = diags.iter().map(ToString::to_string).collect();
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({"status": "refused", "problems": problems}),
                )
            }
        },
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": "not found"}),
    )
}
