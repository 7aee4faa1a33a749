//! State: the shared-state backend (`[state]`): one Redis connection every instance-spanning feature uses.
//!
//! With `backend = "embedded"` (the default) nothing here runs: the limiter counts in memory and
//! the token service keeps its state in the `oauth.store` file. With `backend = "redis"`,
//! [`RedisState`] holds one reconnecting multiplexed connection (`redis::aio::ConnectionManager`)
//! shared by the limiter (`ratelimit::redis`), the token store (`store::redis`) and the
//! revocation feed (`revocations`).
//!
//! # Failure handling
//! Every operation goes through [`RedisState::call`], bounded by `state.timeout`. A connection
//! failure or a timeout marks Redis *down*: later calls fail at once (no added latency) until the
//! watcher's `PING` succeeds again, which it retries with backoff (100 ms doubling to 2 s). Server
//! errors (`OOM`, `READONLY`, ...) fail that call only. Callers decide what a failure means (the
//! limiter: the class's `on_backend_error`; the token service: an error response). Failures are
//! counted in `portcullis_state_errors_total{op, kind}` and logged at most once per 10 s. Every
//! call that reached Redis is timed in `portcullis_state_duration_seconds{op}`.
//! `/readyz` answers 503 until the first `PING` succeeds and while Redis is down.

pub mod revocations;
pub mod settings;

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use thiserror::Error;

use crate::log_limit::LogLimit;
pub use settings::{RawState, RedisSettings, Startup, StateSettings};

/// Least wait between two reconnection attempts.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Most wait between two reconnection attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Health check interval while Redis is up.
const PING_EVERY: Duration = Duration::from_secs(1);

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A failed Redis operation.
#[derive(Debug, Error)]
pub enum StateError {
    /// Redis is known to be unreachable; the call was not attempted.
    #[error("Redis is unreachable")]
    Down,
    /// No answer within `state.timeout`.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Redis(String),
}

impl StateError {
    /// The metric label.
    fn kind(&self) -> &'static str {
        match self {
            StateError::Down => "down",
            StateError::Timeout(_) => "timeout",
            StateError::Redis(_) => "error",
        }
    }
}

/// The Redis backend: settings, connection, health.
pub struct RedisState {
    settings: RedisSettings,
    conn: ConnectionManager,
    health: AtomicU8,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.settings.url)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Prepares the connection without opening it (needs a tokio runtime) and starts the
    /// watcher that opens it, checks it every second and reconnects with backoff.
    pub fn start(settings: RedisSettings) -> Result<Arc<Self>, String> {
        let client = match &settings.ca_pem {
            None => redis::Client::open(settings.info.clone()),
            Some(pem) => redis::Client::build_with_tls(
                settings.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout.max(settings.store_timeout)))
            .set_number_of_retries(1)
            .set_min_delay(RETRY_MIN)
            .set_max_delay(RETRY_MAX);
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        let state = Arc::new(Self {
            settings,
            conn,
            health: AtomicU8::new(UNKNOWN),
        });
        tokio::spawn(watch(Arc::downgrade(&state)));
        Ok(state)
    }

    /// The settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// `prefix + rest`.
    pub fn key(&self, rest: &str) -> String {
        let mut k = String::with_capacity(self.settings.prefix.len() + rest.len());
        k.push_str(&self.settings.prefix);
        k.push_str(rest);
        k
    }

    /// A key of the OAuth state: every one shares the hash tag `{<prefix>oauth}`, so each Lua
    /// script of the token store touches one Redis Cluster slot.
    pub fn oauth_key(&self, rest: &str) -> String {
        format!("{{{}oauth}}:{rest}", self.settings.prefix)
    }

    /// True once a `PING` succeeded and no failure was seen since.
    pub fn is_up(&self) -> bool {
        self.health.load(Ordering::Acquire) == UP
    }

    /// Waits (bounded by `within`) until Redis answers.
    pub async fn wait_up(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.is_up() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.is_up()
    }

    /// Runs one operation on the shared connection, bounded by `state.timeout`.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_within(op, self.settings.timeout, f).await
    }

    /// Runs one token-store operation, bounded by `state.store_timeout`.
    pub async fn call_store<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_within(op, self.settings.store_timeout, f).await
    }

    async fn call_within<T, F, Fut>(
        &self,
        op: &'static str,
        bound: Duration,
        f: F,
    ) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.health.load(Ordering::Acquire) == DOWN {
            return Err(self.failed(op, StateError::Down));
        }
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(bound, f(self.conn.clone())).await;
        crate::metrics::state_duration(op, started.elapsed());
        let err = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => {
                if connection_failure(&e) {
                    self.mark_down();
                }
                StateError::Redis(e.to_string())
            }
            Err(_) => {
                self.mark_down();
                StateError::Timeout(bound)
            }
        };
        Err(self.failed(op, err))
    }

    fn mark_down(&self) {
        self.health.store(DOWN, Ordering::Release);
    }

    fn failed(&self, op: &'static str, e: StateError) -> StateError {
        static LOG: LogLimit = LogLimit::per_secs(10);
        metrics::counter!("portcullis_state_errors_total", "op" => op, "kind" => e.kind())
            .increment(1);
        if let Some(suppressed) = LOG.admit() {
            tracing::warn!(suppressed, op, error = %e, url = %self.settings.url, "Redis operation failed");
        }
        e
    }

    async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(
            tokio::time::timeout(self.settings.connect_timeout, ping).await,
            Ok(Ok(_))
        )
    }
}

/// Whether an error means the connection is unusable (rather than one command failing).
fn connection_failure(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout()
}

/// Checks Redis every second while up, with backoff while down; logs each transition once and
/// a still-down state at most once per 10 s. Ends when the state is dropped.
async fn watch(state: Weak<RedisState>) {
    static STILL_DOWN: LogLimit = LogLimit::per_secs(10);
    let mut backoff = RETRY_MIN;
    loop {
        let Some(s) = state.upgrade() else { return };
        let was = s.health.load(Ordering::Acquire);
        let wait = if s.ping().await {
            if was != UP {
                tracing::info!(url = %s.settings.url, "Redis reachable");
            }
            s.health.store(UP, Ordering::Release);
            backoff = RETRY_MIN;
            PING_EVERY
        } else {
            if was == UP {
                tracing::warn!(url = %s.settings.url, "Redis unreachable; retrying with backoff");
            } else if let Some(suppressed) = STILL_DOWN.admit() {
                tracing::warn!(suppressed, url = %s.settings.url, "Redis still unreachable");
            }
            s.mark_down();
            let w = backoff;
            backoff = (backoff * 2).min(RETRY_MAX);
            w
        };
        drop(s);
        tokio::time::sleep(wait).await;
    }
}
