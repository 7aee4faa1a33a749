//! Admin client: the HTTP/1 caller behind `portcullis clients ...` and `portcullis apps ...`,
//! talking to a running gateway's credential API (`admin_api`) on its admin listener.
//!
//! The address comes from `--admin-url` or `PORTCULLIS_ADMIN_URL`, the operator token from
//! `--token` or `PORTCULLIS_ADMIN_TOKEN`; a token written `env:NAME` or `file:PATH` is read from
//! that variable or file, so it need not appear on a command line. Every call is bounded by
//! [`CALL_TIMEOUT`].

pub mod cli;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest wait for one call, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A connection to one admin listener.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

/// Resolves a token given as text, `env:NAME` or `file:PATH`.
pub fn resolve_token(given: &str) -> Result<String, String> {
    if let Some(name) = given.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = given.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("cannot read the token file {path}: {e}"));
    }
    Ok(given.to_string())
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9091`) with an operator token.
    pub fn new(base: &str, token: String) -> Result<Self, String> {
        let uri: Uri = base
            .parse()
            .map_err(|_| format!("{base:?} is not a URL like http://127.0.0.1:9091"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "{base:?}: the admin listener is plain http://host:port"
            ));
        }
        if token.is_empty() {
            return Err("no operator token: pass --token or set PORTCULLIS_ADMIN_TOKEN".into());
        }
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// One call: `method` on `path` (under `/admin/v1/`) with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let bytes = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok::<_, String>(Answer { status, body })
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(format!("cannot reach the admin API at {url}: {e}")),
            Err(_) => Err(format!(
                "the admin API at {url} did not answer within {CALL_TIMEOUT:?}"
            )),
        }
    }
}
