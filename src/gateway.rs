//! Gateway: the running gateway's state: the current config snapshot and what outlives reloads.
//!
//! Each request takes one `Arc<Snapshot>` and keeps it to the end, so a reload (one atomic swap)
//! never changes the rules under a request in flight. A config that fails to load changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{self, Diagnostic, Shared, Snapshot};

/// The gateway: snapshot + shared state.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    shared: Shared,
    path: Option<PathBuf>,
}

impl Gateway {
    /// Loads the config at `path`.
    pub fn load(path: &Path, shared: Shared) -> Result<Arc<Self>, Vec<Diagnostic>> {
        let snap = config::load(path, &shared)?;
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: Some(path.to_path_buf()),
        }))
    }

    /// Wraps an already compiled snapshot (tests, benches).
    pub fn from_snapshot(snap: Snapshot, shared: Shared) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snap),
            shared,
            path: None,
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
        let snap = config::load(path, &self.shared)?;
        self.snapshot.store(Arc::new(snap));
        Ok(())
    }
}
