//! Proxy: forwarding to upstreams over pooled connections, bodies streamed both ways.
//!
//! One hyper-util client per upstream (HTTP/1.1 keep-alive pool, http and https through
//! rustls). Pools live in `Pools`, outside the config snapshot, so a reload keeps warm
//! connections. Requests are sent as HTTP/1.1 whatever the client spoke (an h2 request must not
//! reach an HTTP/1 upstream as h2).

pub mod body;
pub mod echo;
pub mod headers;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::Reject;
use body::Body;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled client bound to one upstream base URL.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Body>,
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Upstream({}://{}{})",
            self.scheme, self.authority, self.base_path
        )
    }
}

/// Pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections kept per host.
    pub idle_per_host: usize,
}

/// Upstream clients by (base URL, settings), shared across config reloads.
#[derive(Debug, Default)]
pub struct Pools {
    clients: DashMap<(String, PoolSettings), Upstream>,
}

impl Pools {
    /// The client for `base`, created on first use.
    pub fn get(&self, base: &Uri, settings: PoolSettings) -> Result<Upstream, String> {
        let key = (base.to_string(), settings);
        if let Some(u) = self.clients.get(&key) {
            return Ok(u.clone());
        }
        let u = Upstream::new(base, settings)?;
        self.clients.insert(key, u.clone());
        Ok(u)
    }
}

impl Upstream {
    fn new(base: &Uri, s: PoolSettings) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(s.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(s.idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        let scheme = base.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = base
            .authority()
            .cloned()
            .ok_or("upstream URL has no host")?;
        let base_path = base.path().trim_end_matches('/').to_string();
        Ok(Self {
            client,
            scheme,
            authority,
            base_path,
        })
    }

    /// The upstream's authority (for `Host`).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The URI for a normalized path and query at this upstream.
    pub fn uri_for(&self, path: &str, query: Option<&str>) -> Result<Uri, Reject> {
        let pq = match query {
            Some(q) => format!("{}{path}?{q}", self.base_path),
            None => format!("{}{path}", self.base_path),
        };
        let pq = PathAndQuery::try_from(pq)
            .map_err(|_| Reject::BadRequest("the request target is not a valid URI".into()))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| Reject::Internal(format!("upstream URI: {e}")))
    }

    /// Sends `req` (URI and headers already rewritten); waits at most `timeout` for the head.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<hyper::body::Incoming>, UpstreamError> {
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(e.to_string())),
            Ok(Err(e)) => Err(UpstreamError::Failed(error_chain(&e))),
        }
    }
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Refused or unreachable.
    #[error("connect failed: {0}")]
    Connect(String),
    /// No response head in time.
    #[error("timed out")]
    Timeout,
    /// The exchange broke (or the request body failed, e.g. over its cap).
    #[error("request failed: {0}")]
    Failed(String),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Shared pools handle.
pub type SharedPools = Arc<Pools>;
