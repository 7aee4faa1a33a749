//! Log limit: at most one log line per interval for a warning a client can trigger per request.
//!
//! An attacker who can make the gateway log on every request (an unknown `kid`, a refused
//! credential, an accept error under a flood) could otherwise fill the disk or drown the lines an
//! operator needs. Each such call site owns a `static` [`LogLimit`]; the first event of an interval
//! is logged with the number suppressed since the last logged one, the rest are only counted.
//!
//! ```
//! use portcullis::log_limit::LogLimit;
//! static UNKNOWN_KID: LogLimit = LogLimit::per_secs(10);
//! if let Some(suppressed) = UNKNOWN_KID.admit() {
//!     tracing::warn!(suppressed, "token refused: unknown kid");
//! }
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One call site's budget: one event per `interval_ms`, the others counted.
pub struct LogLimit {
    interval_ms: u64,
    /// Milliseconds since [`epoch`] at which the next event may be logged.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// The process's monotonic zero for every limiter.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl LogLimit {
    /// At most one event every `secs` seconds.
    pub const fn per_secs(secs: u64) -> Self {
        Self::per_millis(secs * 1000)
    }

    /// At most one event every `ms` milliseconds.
    pub const fn per_millis(ms: u64) -> Self {
        Self {
            interval_ms: ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event should be logged (`n` events were suppressed since the last
    /// logged one); `None` when it falls inside the interval and was only counted.
    pub fn admit(&self) -> Option<u64> {
        let now = epoch().elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_counted() {
        let l = LogLimit::per_secs(3600);
        assert_eq!(l.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(l.admit(), None);
        }
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn next_interval_reports_the_suppressed_count() {
        let l = LogLimit::per_millis(20);
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(l.admit(), Some(2));
    }
}
