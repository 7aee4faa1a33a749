//! Limiter: the limiter the pipeline calls: the in-memory one, or the Redis one with the class's failure mode.
//!
//! With `[state] backend = "redis"` every check goes to Redis (one `EVALSHA`). When that fails
//! (Redis down, slow past `state.timeout`, or answering `OOM`/`READONLY`/...), the class's
//! `on_backend_error` decides:
//! * `local` (default): the in-memory limiter with the same limit decides, so each instance
//!   enforces N per W on its own (the total across k instances is then at most k·N);
//! * `open`: the request passes unlimited (no `RateLimit` headers);
//! * `closed`: the request is refused with 503 `service_unavailable` and `Retry-After: 1`.
//!
//! The added latency is bounded by `state.timeout` for the first failure; after it Redis is
//! marked down and checks fail over at once until the health check sees it again.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use toml::Spanned;

use super::redis::RedisLimiter;
use super::{Decision, Limit, MemoryLimiter, Settings};
use crate::config::diagnostic::Diagnostics;

/// What a class does when the shared backend fails (`[classes.NAME] on_backend_error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnBackendError {
    /// The in-memory limiter enforces the same limit per instance.
    #[default]
    Local,
    /// Requests pass without a limit (a relaxation: `portcullis check` reports it).
    Open,
    /// Requests are refused with 503.
    Closed,
}

impl OnBackendError {
    /// Parses the config value; problems go to `d`.
    pub fn compile(raw: Option<&Spanned<String>>, key: &str, d: &mut Diagnostics) -> Self {
        let Some(v) = raw else {
            return Self::default();
        };
        match v.get_ref().as_str() {
            "local" => Self::Local,
            "open" => Self::Open,
            "closed" => Self::Closed,
            other => {
                d.push(
                    Some(v.span()),
                    key,
                    format!("unknown failure mode \"{other}\""),
                    "use \"local\" (per-instance limit, the default), \"open\" or \"closed\"",
                );
                Self::default()
            }
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// A `closed` class refused the request because the shared backend failed.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("the rate-limit backend is unavailable")]
pub struct BackendUnavailable {
    /// Seconds after which to retry.
    pub retry_after_secs: u64,
}

/// The limiter of a running gateway. Cheap to clone; outlives reloads.
#[derive(Debug, Clone)]
pub struct Limiter {
    local: Arc<MemoryLimiter>,
    shared: Option<RedisLimiter>,
}

impl Limiter {
    /// In memory only.
    pub fn memory(local: Arc<MemoryLimiter>) -> Self {
        Self {
            local,
            shared: None,
        }
    }

    /// On Redis, with `local` as the `local` failure mode.
    pub fn redis(local: Arc<MemoryLimiter>, shared: RedisLimiter) -> Self {
        Self {
            local,
            shared: Some(shared),
        }
    }

    /// The in-memory limiter (the whole limiter on the embedded backend).
    pub fn local(&self) -> &Arc<MemoryLimiter> {
        &self.local
    }

    /// The settings of `[rate_limit]` the limiter was built with.
    pub fn settings(&self) -> Settings {
        self.local.settings()
    }

    /// Starts the in-memory limiter's idle-key sweep.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        self.local.spawn_sweeper(every)
    }

    /// Decides one request. `Ok(None)`: passed unlimited (`open` while the backend fails).
    pub async fn check(
        &self,
        class: &str,
        ip: IpAddr,
        limit: Limit,
        on_error: OnBackendError,
    ) -> Result<Option<Decision>, BackendUnavailable> {
        let Some(shared) = &self.shared else {
            return Ok(Some(self.local.check(class, ip, limit)));
        };
        // Boxed: the Redis round trip's future stays out of the in-memory path's size.
        match Box::pin(shared.check(class, self.local.group(ip), limit)).await {
            Ok(d) => Ok(Some(d)),
            Err(_) => {
                metrics::counter!("portcullis_ratelimit_fallbacks_total", "mode" => on_error.as_str())
                    .increment(1);
                match on_error {
                    OnBackendError::Local => Ok(Some(self.local.check(class, ip, limit))),
                    OnBackendError::Open => Ok(None),
                    OnBackendError::Closed => Err(BackendUnavailable {
                        retry_after_secs: 1,
                    }),
                }
            }
        }
    }
}
