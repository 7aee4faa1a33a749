//! Echo: the built-in upstream that answers with the request as a backend would receive it.
//!
//! Operators point a route at an `echo` upstream to see exactly what the gateway forwards:
//! method, normalized path, query, and the headers after stripping and identity injection.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;

use super::body::{Body, BoxError, full};

#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: BTreeMap<String, Vec<String>>,
    body_bytes: u64,
}

/// Reads the request body (counting it) and describes the request as JSON.
pub async fn respond(req: Request<Body>) -> Result<Response<Body>, BoxError> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            body_bytes += d.len() as u64;
        }
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echo = Echo {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers,
        body_bytes,
    };
    let json = serde_json::to_vec_pretty(&echo)?;
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(Bytes::from(json)))?;
    Ok(resp)
}
