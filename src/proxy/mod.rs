//! Proxy: forwarding to upstreams over pooled connections, bodies streamed both ways.
//!
//! One connection pool per upstream (`pool`: HTTP/1.1 keep-alive, http and https through
//! rustls). Pools live in `Pools`, outside the config snapshot, so a reload keeps warm
//! connections. Requests are sent as HTTP/1.1 whatever the client spoke (an h2 request must not
//! reach an HTTP/1 upstream as h2).

pub mod body;
pub mod echo;
pub mod forwarding;
pub mod h1;
pub mod headers;
pub mod pool;
pub mod response;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::error::Reject;
use body::Body;
use pool::{ConnPool, UpstreamBody};

/// A pooled client bound to one upstream base URL.
#[derive(Clone)]
pub struct Upstream {
    pool: Arc<ConnPool>,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
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
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

/// Upstream clients by (base URL, CA file, settings), shared across config reloads.
#[derive(Debug, Default)]
pub struct Pools {
    clients: DashMap<(String, Option<PathBuf>, PoolSettings), Upstream>,
}

impl Pools {
    /// Closes idle connections past their pool's idle timeout, or closed by their upstream.
    pub fn evict_idle(&self) {
        for entry in self.clients.iter() {
            entry.value().pool.evict_idle();
        }
    }

    /// The client for `base` (trusting `ca_file`'s CAs when given), created on first use. A
    /// reload that rewrites the CA file under the same path keeps the running pool's trust.
    pub fn get(
        &self,
        base: &Uri,
        ca_file: Option<&Path>,
        settings: PoolSettings,
    ) -> Result<Upstream, String> {
        let key = (base.to_string(), ca_file.map(Path::to_path_buf), settings);
        if let Some(u) = self.clients.get(&key) {
            return Ok(u.clone());
        }
        let u = Upstream::new(base, ca_file, settings)?;
        self.clients.insert(key, u.clone());
        Ok(u)
    }
}

impl Upstream {
    fn new(base: &Uri, ca_file: Option<&Path>, s: PoolSettings) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(s.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match ca_file {
            None => builder
                .with_provider_and_webpki_roots(provider)
                .map_err(|e| format!("TLS setup failed: {e}"))?,
            Some(path) => builder.with_tls_config(crate::outbound_tls::with_ca_file(path)?),
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let scheme = base.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = base
            .authority()
            .cloned()
            .ok_or("upstream URL has no host")?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "upstream host is not a valid Host value")?;
        let dst = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("upstream URL: {e}"))?;
        let pool = ConnPool::new(https, dst, s);
        let base_path = base.path().trim_end_matches('/').to_string();
        Ok(Self {
            pool: Arc::new(pool),
            scheme,
            authority,
            host,
            base_path,
        })
    }

    /// The upstream's authority as a `Host` value.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// The origin-form request target for a normalized path and query at this upstream.
    pub fn uri_for(&self, path: &str, query: Option<&str>) -> Result<Uri, Reject> {
        let len = self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1);
        let mut pq = String::with_capacity(len);
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq)
            .map_err(|_| Reject::BadRequest("the request target is not a valid URI".into()))?;
        Ok(Uri::from(pq))
    }

    /// Points `uri` at this upstream for the normalized `path`, keeping the query. The client's
    /// origin-form target is kept as it is when it is already that (no base path, path already
    /// normal): the usual case costs no allocation and no second parse.
    pub fn set_target(&self, uri: &mut Uri, path: &str) -> Result<(), Reject> {
        if self.base_path.is_empty() && uri.scheme().is_none() && uri.path() == path {
            return Ok(());
        }
        *uri = self.uri_for(path, uri.query())?;
        Ok(())
    }

    /// Sends `req` (URI and headers already rewritten); waits at most `head_timeout` for the
    /// response head once the request body is sent, and at most `body_idle` for each piece of
    /// the response body.
    /// (Not `async`: one layer less in the future every forwarded request carries.)
    pub fn send(
        &self,
        mut req: Request<Body>,
        head_timeout: Duration,
        body_idle: Duration,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + Send + '_ {
        *req.version_mut() = Version::HTTP_11;
        self.pool.send(req, head_timeout, body_idle)
    }

    /// Sends a WebSocket handshake on a connection of its own; waits at most `head_timeout`
    /// for the response head.
    pub async fn send_upgrade(
        &self,
        mut req: Request<Body>,
        head_timeout: Duration,
    ) -> Result<Response<hyper::body::Incoming>, UpstreamError> {
        *req.version_mut() = Version::HTTP_11;
        tokio::time::timeout(head_timeout, self.pool.send_upgrade(req))
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// Idle pooled connections to this upstream (tests, diagnostics).
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Refused or unreachable.
    #[error("connect failed: {0}")]
    Connect(String),
    /// No response head within `upstream_response_timeout` of the request's end.
    #[error("timed out")]
    Timeout,
    /// The TLS handshake with an `https` upstream failed (e.g. its certificate is not trusted).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The exchange broke (or the request body failed, e.g. over its cap).
    #[error("request failed: {0}")]
    Failed(String),
}

impl UpstreamError {
    /// The failure's kind, for `portcullis_upstream_errors_total`.
    pub fn failure(&self) -> crate::metrics::UpstreamFailure {
        use crate::metrics::UpstreamFailure as F;
        match self {
            UpstreamError::Connect(_) => F::Connect,
            UpstreamError::Tls(_) => F::Tls,
            UpstreamError::Timeout => F::Timeout,
            UpstreamError::Failed(_) => F::Reset,
        }
    }
}

/// Whether a connector error is a TLS failure: a `rustls::Error` somewhere in its chain, also
/// inside the `io::Error`s that tokio-rustls and hyper-rustls wrap it in.
pub(crate) fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    // Bounded: error chains are a handful of links deep.
    for _ in 0..16 {
        let Some(err) = cur else { return false };
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_tls_error(inner)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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

/// A path-only URI for the built-in targets.
pub fn local_uri(path: &str, query: Option<&str>) -> Result<http::Uri, Reject> {
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    target
        .parse()
        .map_err(|_| Reject::BadRequest("the request target is not a valid URI".into()))
}
