//! Accept: what a listener does when `accept` fails (EMFILE, ENFILE, ENOBUFS, ...).
//!
//! The loop never ends on an error and never spins: it sleeps, doubling from 10 ms up to 1 s while
//! the errors last, and logs at most one line per 10 s with the count of errors suppressed since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::log_limit::LogLimit;

const FIRST: Duration = Duration::from_millis(10);
const MAX: Duration = Duration::from_secs(1);

static ACCEPT_FAILED: LogLimit = LogLimit::per_secs(10);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// Accept errors seen by every listener of this process so far.
pub fn errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// The growing pause between failed accepts of one listener.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// An accept succeeded: the next error starts from the shortest pause again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// Logs (rate-limited), counts and sleeps after a failed accept on `listener`.
    pub async fn failed(&mut self, listener: &'static str, e: &std::io::Error) {
        ERRORS.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("portcullis_accept_errors_total", "listener" => listener).increment(1);
        let pause = self.next;
        if let Some(suppressed) = ACCEPT_FAILED.admit() {
            tracing::warn!(listener, error = %e, pause_ms = pause.as_millis() as u64, suppressed,
                "accept failed; backing off");
        }
        self.next = (pause * 2).min(MAX);
        tokio::time::sleep(pause).await;
    }
}
