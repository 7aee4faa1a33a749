//! JWKS sources: keys fetched from a JWKS URL, refreshed in the background, refetched once on an unknown `kid`.
//!
//! One `JwksSource` per URL lives in the `JwksRegistry` of `AuthState`, so its keys, counters
//! and cooldown survive config reloads (the registry holds weak references: a source dies, and
//! its refresh task ends, when no live `Authenticator` uses its URL any more).
//!
//! - **Refresh**: after each fetch the next one is due after `Cache-Control: max-age` clamped to
//!   `[min_refresh, max_refresh]` (or `refresh` when there is no max-age; `min_refresh` after a
//!   failure). Due times are on the injected clock; the task checks them every 250 ms.
//! - **Single flight**: every fetch runs under one async mutex per source. A request with an
//!   unknown `kid` notes the fetch generation, takes the mutex, and if a fetch finished while it
//!   waited it just re-checks the keys; otherwise it fetches itself unless the unknown-kid
//!   cooldown (on the injected clock) is still running, in which case it is refused.
//! - **Bounded wait**: the unknown-`kid` fetch runs as its own task; the request waits for it at
//!   most `UNKNOWN_KID_WAIT`, so a hung JWKS host never holds requests for the fetch timeout.
//! - **Stale keys**: a failed fetch keeps the last good key set, and so does a document in which
//!   no key is usable (all skipped, or none at all). Each fetch is counted in
//!   `portcullis_jwks_refresh_total{url, result}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::jwt::VerifyKey;
use super::keys::jwks_entry_to_keys;
use crate::clock::SharedClock;

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time allowed for one fetch (connect, response, body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the refresh task looks at the clock.
const TICK: Duration = Duration::from_millis(250);
/// Longest a request with an unknown `kid` waits for the refetch it caused (or for a refresh
/// already running, e.g. one hung on a dead host); the fetch itself carries on in the background.
pub const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(1);

/// Per-URL settings from `[[jwt.jwks]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// Algorithms for keys that name none.
    pub algorithms: Vec<Algorithm>,
    /// Refresh interval without `max-age`.
    pub refresh: Duration,
    /// Lower bound for `max-age` (also the retry interval after a failure).
    pub min_refresh: Duration,
    /// Upper bound for `max-age`.
    pub max_refresh: Duration,
    /// Minimum time between unknown-kid refetches.
    pub unknown_kid_cooldown: Duration,
    /// CA certificates trusted for this URL instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

/// Counters of one source (monotonic; metrics wiring reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// Fetch attempts (start, background and unknown-kid).
    pub fetches: u64,
    /// Fetch attempts that failed (network, status, body); old keys kept.
    pub failures: u64,
    /// Fetches caused by an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// Tokens refused because their `kid` stayed unknown.
    pub unknown_kid_refusals: u64,
    /// Keys currently served.
    pub keys: usize,
    /// Interval chosen after the last fetch, seconds.
    pub refresh_interval_secs: u64,
}

/// One JWKS URL's keys and fetch state.
pub struct JwksSource {
    url: String,
    clock: SharedClock,
    client: Option<HttpClient>,
    settings: Mutex<JwksSettings>,
    keys: ArcSwap<Vec<VerifyKey>>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetch_gen: AtomicU64,
    unknown_kid_inflight: AtomicBool,
    unknown_kid_done: tokio::sync::Notify,
    last_unknown_fetch_ms: Mutex<Option<u64>>,
    next_due_ms: AtomicU64,
    interval_secs: AtomicU64,
    started: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    unknown_kid_refusals: AtomicU64,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.url)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys currently served.
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        self.keys.load_full()
    }

    /// Counters and current state.
    pub fn stats(&self) -> JwksStats {
        JwksStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            unknown_kid_refetches: self.unknown_kid_refetches.load(Ordering::Relaxed),
            unknown_kid_refusals: self.unknown_kid_refusals.load(Ordering::Relaxed),
            keys: self.keys.load().len(),
            refresh_interval_secs: self.interval_secs.load(Ordering::Relaxed),
        }
    }

    fn settings(&self) -> JwksSettings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fetches now (under the single-flight lock) unless a fetch already completed since
    /// `seen_gen`; returns whether the key set may have changed.
    async fn fetch_serialized(&self, seen_gen: Option<u64>, unknown_kid: bool) -> bool {
        let _guard = self.fetch_lock.lock().await;
        if let Some(seen) = seen_gen
            && self.fetch_gen.load(Ordering::Acquire) != seen
        {
            return true;
        }
        if unknown_kid {
            let now = self.clock.now_millis();
            let cooldown = self.settings().unknown_kid_cooldown.as_millis() as u64;
            let mut last = self
                .last_unknown_fetch_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(t) = *last
                && now < t.saturating_add(cooldown)
            {
                return false;
            }
            *last = Some(now);
            self.unknown_kid_refetches.fetch_add(1, Ordering::Relaxed);
        }
        self.fetch_and_store().await;
        true
    }

    async fn fetch_and_store(&self) {
        let settings = self.settings();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let next = match self.fetch_once(&settings).await {
            Ok((keys, max_age)) => {
                let interval = match max_age {
                    Some(age) => age.clamp(settings.min_refresh, settings.max_refresh),
                    None => settings.refresh,
                };
                tracing::info!(
                    url = %self.url,
                    keys = keys.len(),
                    refresh_secs = interval.as_secs(),
                    "jwks fetched"
                );
                self.keys.store(Arc::new(keys));
                crate::metrics::jwks_refresh(&self.url, true);
                interval
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_refresh(&self.url, false);
                tracing::warn!(
                    url = %self.url,
                    error = %why,
                    keys_kept = self.keys.load().len(),
                    "jwks fetch failed; keeping last good keys"
                );
                settings.min_refresh
            }
        };
        self.interval_secs.store(next.as_secs(), Ordering::Relaxed);
        self.next_due_ms.store(
            self.clock
                .now_millis()
                .saturating_add(next.as_millis() as u64),
            Ordering::Relaxed,
        );
        self.fetch_gen.fetch_add(1, Ordering::Release);
    }

    async fn fetch_once(
        &self,
        settings: &JwksSettings,
    ) -> Result<(Vec<VerifyKey>, Option<Duration>), String> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| "no HTTP client (TLS setup failed)".to_string())?;
        let req = http::Request::get(&self.url)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))?;
        let work = async {
            let resp = client
                .request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let max_age = max_age(resp.headers());
            let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading body: {e}"))?
                .to_bytes();
            Ok((body, max_age))
        };
        let (body, max_age) = tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| "timed out".to_string())??;
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))?;
        let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
            return Err("body has no \"keys\" array".to_string());
        };
        let mut keys = Vec::new();
        let mut skipped = 0usize;
        for entry in entries {
            let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
            let parsed = serde_json::from_value::<Jwk>(entry.clone())
                .map_err(|e| format!("not a JWK: {e}"))
                .and_then(|jwk| jwks_entry_to_keys(&jwk, &settings.algorithms));
            match parsed {
                Ok(mut k) => keys.append(&mut k),
                Err(why) => {
                    skipped += 1;
                    tracing::warn!(url = %self.url, kid, reason = %why, "jwks key skipped");
                }
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "the document has no usable key ({skipped} skipped)"
            ));
        }
        Ok((keys, max_age))
    }

    /// Called when a token's `kid` matched no key: one shared refetch (subject to the
    /// cooldown), waited for at most `UNKNOWN_KID_WAIT`. Returns true when the caller should
    /// look the kid up again.
    pub(crate) async fn refetch_for_unknown_kid(self: &Arc<Self>) -> bool {
        let seen = self.fetch_gen.load(Ordering::Acquire);
        let done = self.unknown_kid_done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        if !self.unknown_kid_inflight.swap(true, Ordering::AcqRel) {
            let src = self.clone();
            tokio::spawn(async move {
                src.fetch_serialized(Some(seen), true).await;
                src.unknown_kid_inflight.store(false, Ordering::Release);
                src.unknown_kid_done.notify_waiters();
            });
        }
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, done).await;
        self.fetch_gen.load(Ordering::Acquire) != seen
    }

    /// Records a refusal of a token whose kid stayed unknown.
    pub(crate) fn count_unknown_kid_refusal(&self) {
        self.unknown_kid_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// Fetches once if never started, then spawns the refresh task (idempotent).
    pub(crate) async fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.keys.load().is_empty() {
            self.fetch_serialized(None, false).await;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let Some(src) = weak.upgrade() else { break };
                if src.clock.now_millis() >= src.next_due_ms.load(Ordering::Relaxed) {
                    src.fetch_serialized(None, false).await;
                }
            }
        });
    }
}

/// `Cache-Control: max-age=N` of a response.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let (name, value) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .map(Duration::from_secs)
        .next()
}

/// A source is one (URL, CA file) pair.
type SourceKey = (String, Option<std::path::PathBuf>);

/// JWKS sources by URL and CA file; survives reloads inside `AuthState`.
#[derive(Default)]
pub struct JwksRegistry {
    sources: Mutex<HashMap<SourceKey, Weak<JwksSource>>>,
    client: OnceLock<Option<HttpClient>>,
}

impl std::fmt::Debug for JwksRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksRegistry").finish_non_exhaustive()
    }
}

impl JwksRegistry {
    /// The client for a source: the shared public-roots one, or one trusting `ca_file` only.
    fn client_for(&self, ca_file: Option<&std::path::Path>) -> Option<HttpClient> {
        let Some(path) = ca_file else {
            return self.client();
        };
        match crate::outbound_tls::with_ca_file(path) {
            Ok(tls) => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .build();
                Some(Client::builder(TokioExecutor::new()).build(https))
            }
            Err(e) => {
                tracing::error!(error = %e, "jwks client TLS setup failed");
                None
            }
        }
    }

    fn client(&self) -> Option<HttpClient> {
        self.client
            .get_or_init(|| {
                let provider = rustls::crypto::aws_lc_rs::default_provider();
                match hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_webpki_roots(provider)
                {
                    Ok(b) => {
                        let https = b.https_or_http().enable_http1().enable_http2().build();
                        Some(Client::builder(TokioExecutor::new()).build(https))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "jwks client TLS setup failed");
                        None
                    }
                }
            })
            .clone()
    }

    /// The live source for `url` and its CA file (settings updated to `settings`), or a new
    /// one: a changed `ca_file` gets a fresh source with a client trusting the new roots.
    pub(crate) fn source(
        &self,
        url: &str,
        settings: JwksSettings,
        clock: &SharedClock,
    ) -> Arc<JwksSource> {
        let mut map = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        let key = (url.to_string(), settings.ca_file.clone());
        if let Some(src) = map.get(&key).and_then(Weak::upgrade) {
            *src.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
            return src;
        }
        let src = Arc::new(JwksSource {
            url: url.to_string(),
            clock: clock.clone(),
            client: self.client_for(settings.ca_file.as_deref()),
            settings: Mutex::new(settings),
            keys: ArcSwap::from_pointee(Vec::new()),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetch_gen: AtomicU64::new(0),
            unknown_kid_inflight: AtomicBool::new(false),
            unknown_kid_done: tokio::sync::Notify::new(),
            last_unknown_fetch_ms: Mutex::new(None),
            next_due_ms: AtomicU64::new(0),
            interval_secs: AtomicU64::new(0),
            started: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            unknown_kid_refetches: AtomicU64::new(0),
            unknown_kid_refusals: AtomicU64::new(0),
        });
        map.insert(key, Arc::downgrade(&src));
        src
    }

    /// A live source for `url` (whatever its CA file), if any.
    pub fn get(&self, url: &str) -> Option<Arc<JwksSource>> {
        let map = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((u, _), _)| u == url)
            .find_map(|(_, w)| w.upgrade())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_age() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=120, must-revalidate"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(120)));
        h.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        assert_eq!(max_age(&h), None);
    }
}
