//! Gateway: the running gateway's state: the current config snapshot and what outlives reloads.
//!
//! Each request takes one `Arc<Snapshot>` and keeps it to the end, so a reload (one atomic swap)
//! never changes the rules under a request in flight. A config that fails to load changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::{self, Diagnostic, Shared, Snapshot};
use crate::server::conns::Connections;

/// How often idle rate-limit keys are swept.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// How often expired token-store records are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// How often idle upstream connections past their idle timeout are closed.
const POOL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The gateway: snapshot + shared state.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    shared: Shared,
    path: Option<PathBuf>,
    draining: AtomicBool,
    connections: Arc<Connections>,
}

impl Gateway {
    /// Loads the config at `path`.
    pub fn load(path: &Path, shared: Shared) -> Result<Arc<Self>, Vec<Diagnostic>> {
        let snap = config::load(path, &shared)?;
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: Some(path.to_path_buf()),
            draining: AtomicBool::new(false),
            connections: Arc::default(),
        }))
    }

    /// Wraps an already compiled snapshot (tests, benches).
    pub fn from_snapshot(snap: Snapshot, shared: Shared) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: None,
            draining: AtomicBool::new(false),
            connections: Arc::default(),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The long-lived state.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Re-reads the config file and swaps it in; on failure the running config stays. A
    /// successful reload applies `[rate_limit]` to the running limiter (its counters stay) and
    /// logs one event saying what changed (`reload::Changes`).
    pub async fn reload(&self) -> Result<(), Vec<Diagnostic>> {
        self.swap_in(true).await
    }

    async fn swap_in(&self, report: bool) -> Result<(), Vec<Diagnostic>> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // The config is checked against the credentials created at run time (one id, one source).
        self.shared.credentials.refresh_logged().await;
        let result = config::load(path, &self.shared);
        crate::metrics::reload(result.is_ok());
        let snap = Arc::new(result?);
        snap.auth.start().await;
        let changes = crate::reload::Changes::between(&self.snapshot(), &snap);
        // Counters outlive the swap; only the settings change (see `MemoryLimiter::apply`).
        snap.limiter.local().apply(snap.config.rate_limit);
        self.snapshot.store(snap);
        if report {
            changes.log();
        }
        Ok(())
    }

    /// Starts what runs beside the requests: JWKS fetches, the limiter's idle sweep, the token
    /// store's clean-up, and the verifier's list of revoked tokens (seeded from the store).
    pub async fn start(&self) {
        self.shared.credentials.refresh_logged().await;
        let snap = self.snapshot();
        snap.auth.start().await;
        snap.limiter.spawn_sweeper(SWEEP_EVERY);
        crate::metrics::spawn_upkeep();
        let pools = Arc::downgrade(&self.shared.pools);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(POOL_SWEEP_EVERY);
            loop {
                every.tick().await;
                let Some(pools) = pools.upgrade() else { return };
                pools.evict_idle();
            }
        });
        if let Some(svc) = &snap.oauth {
            match svc.revoked_jtis().await {
                Ok(list) => list
                    .iter()
                    .for_each(|r| self.shared.auth.revoke_jti(&r.jti, r.exp)),
                Err(e) => tracing::error!(error = %e, "cannot read revoked tokens from the store"),
            }
            let svc = Arc::downgrade(svc);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PURGE_EVERY);
                loop {
                    every.tick().await;
                    let Some(svc) = svc.upgrade() else { return };
                    if let Err(e) = svc.purge_expired().await {
                        tracing::warn!(error = %e, "token store clean-up failed");
                    }
                }
            });
        }
    }

    /// Loads the credentials created at run time and checks the config against them: an id the
    /// config and the store both define is a config error (at start-up, as at reload).
    pub async fn load_credentials(&self) -> Result<(), Vec<Diagnostic>> {
        if let Err(e) = self.shared.credentials.refresh().await {
            tracing::error!(error = %e, "cannot read run-time credentials from the store");
        }
        // The start-up config again, checked against the store: not a reload to report.
        self.swap_in(false).await
    }

    /// The Redis state backend, when `[state]` chose it.
    pub fn redis(&self) -> Option<&Arc<crate::state::RedisState>> {
        self.shared.state.get().and_then(Option::as_ref)
    }

    /// False while the Redis state backend is unreachable (`/readyz` answers 503).
    pub fn state_ready(&self) -> bool {
        self.redis().is_none_or(|r| r.is_up())
    }

    /// Applies `[state] startup`: with `"refuse"`, an error when Redis does not answer within
    /// `connect_timeout`; with `"retry"` (or the embedded backend), `Ok` at once.
    pub async fn check_startup(&self) -> Result<(), String> {
        let Some(r) = self.redis() else {
            return Ok(());
        };
        let s = r.settings();
        if s.startup == crate::state::Startup::Retry || r.wait_up(s.connect_timeout).await {
            return Ok(());
        }
        Err(format!(
            "Redis at {} did not answer within {:?} and [state] startup = \"refuse\"",
            s.url, s.connect_timeout
        ))
    }

    /// Marks the gateway as shutting down (`/readyz` answers 503).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The open client connections (counted and capped at accept).
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Wraps a snapshot loaded from `path`, so `reload` re-reads that file (tests).
    pub fn from_file_snapshot(snap: Snapshot, shared: Shared, path: &Path) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: Some(path.to_path_buf()),
            draining: AtomicBool::new(false),
            connections: Arc::default(),
        })
    }
}
