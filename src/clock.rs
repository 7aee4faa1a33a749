//! Clock: the gateway's one source of time, injectable so time-dependent logic is tested without sleeps.
//!
//! Two readings are offered: monotonic milliseconds since the clock's origin (for windows and
//! caches) and Unix seconds (for JWT `exp`/`nbf`/`iat`). `ManualClock` moves only when told to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic milliseconds since an arbitrary origin fixed at construction.
    fn now_millis(&self) -> u64;
    /// Seconds since the Unix epoch.
    fn unix_secs(&self) -> u64;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A shared system clock.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn unix_secs(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock for tests: starts at the given instants and moves only by `advance_*`.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
    unix_base: u64,
}

impl ManualClock {
    /// Monotonic time 0, Unix time `unix_start`.
    pub fn new(unix_start: u64) -> Arc<Self> {
        Arc::new(Self {
            millis: AtomicU64::new(0),
            unix_base: unix_start,
        })
    }

    /// Moves the clock forward.
    pub fn advance_millis(&self, ms: u64) {
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_secs(&self, s: u64) {
        self.advance_millis(s * 1000);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }

    fn unix_secs(&self) -> u64 {
        self.unix_base + self.millis.load(Ordering::SeqCst) / 1000
    }
}
