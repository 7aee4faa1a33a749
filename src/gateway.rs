//! Gateway: the running gateway's state: the current config snapshot and what outlives reloads.
//!
//! Each request takes one `Arc<Snapshot>` and keeps it to the end, so a reload (one atomic swap)
//! never changes the rules under a request in flight. A config that fails to load changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::{self, Diagnostic, Shared, Snapshot};

/// The gateway: snapshot + shared state.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    shared: Shared,
    path: Option<PathBuf>,
    draining: AtomicBool,
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
        }))
    }

    /// Wraps an already compiled snapshot (tests, benches).
    pub fn from_snapshot(snap: Snapshot, shared: Shared) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: None,
            draining: AtomicBool::new(false),
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

    /// Re-reads the config file and swaps it in; on failure the running config stays.
    pub fn reload(&self) -> Result<(), Vec<Diagnostic>> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let result =
            config::load(path, &self.shared).map(|snap| self.snapshot.store(Arc::new(snap)));
        crate::metrics::reload(result.is_ok());
        result
    }

    /// Marks the gateway as shutting down (`/readyz` answers 503).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
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
        })
    }
}
