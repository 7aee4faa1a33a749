//! Export: finished spans go into a bounded queue; one background task posts them in batches
//! to the OTLP/HTTP endpoint.
//!
//! The request path only does a `try_send`: when the queue (`[tracing] otlp_queue`, 2,048
//! spans by default) is full the span is
//! dropped and counted (`portcullis_trace_spans_dropped_total`), so a slow or dead collector
//! never slows a request. The task takes whatever is queued (up to 512 spans) per POST, bounded
//! by `[tracing] otlp_timeout`, and retries nothing: a failed batch is logged (rate-limited) and
//! counted (`portcullis_trace_export_failures_total`). The task starts with the first span
//! (so compiling a config needs no runtime) and ends when the snapshot that owns the exporter
//! is gone and its queue drained.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{CONTENT_TYPE, HOST};
use http::{Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::otlp;
use super::span::FinishedSpan;
use crate::log_limit::LogLimit;
use crate::proxy::Upstream;
use crate::proxy::body::full;

/// Spans per POST, at most.
pub const BATCH: usize = 512;

static EXPORT_FAILED: LogLimit = LogLimit::per_secs(10);

/// The OTLP exporter of one snapshot.
pub struct Exporter {
    tx: mpsc::Sender<FinishedSpan>,
    task: Mutex<Option<Task>>,
    started: AtomicBool,
    stats: Arc<Stats>,
}

/// What the background task needs.
struct Task {
    rx: mpsc::Receiver<FinishedSpan>,
    target: Upstream,
    path: Uri,
    service_name: String,
    timeout: Duration,
    stats: Arc<Stats>,
}

/// Counters of the exporter.
#[derive(Debug, Default)]
struct Stats {
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter posting to `endpoint` through `target` (a pooled client for its origin),
    /// holding at most `queue` spans.
    pub fn new(
        target: Upstream,
        endpoint: &Uri,
        service_name: &str,
        timeout: Duration,
        queue: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let path = endpoint
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        let stats = Arc::new(Stats::default());
        let task = Task {
            rx,
            target,
            path,
            service_name: service_name.to_string(),
            timeout,
            stats: stats.clone(),
        };
        Self {
            tx,
            task: Mutex::new(Some(task)),
            started: AtomicBool::new(false),
            stats,
        }
    }

    /// Queues a span; drops (and counts) it when the queue is full. Never waits.
    pub fn push(&self, span: FinishedSpan) {
        self.start();
        if self.tx.try_send(span).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("portcullis_trace_spans_dropped_total").increment(1);
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Spans the receiver accepted.
    pub fn exported(&self) -> u64 {
        self.stats.exported.load(Ordering::Relaxed)
    }

    /// Batches that failed.
    pub fn failed(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    fn start(&self) {
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            tokio::spawn(task.run());
        }
    }
}

impl Task {
    async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        while self.rx.recv_many(&mut batch, BATCH).await > 0 {
            let n = batch.len() as u64;
            match self.post(&batch).await {
                Ok(()) => {
                    self.stats.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("portcullis_trace_export_failures_total").increment(1);
                    if let Some(suppressed) = EXPORT_FAILED.admit() {
                        tracing::warn!(suppressed, spans = n, error = %e, "OTLP export failed; the batch is dropped");
                    }
                }
            }
            batch.clear();
        }
    }

    async fn post(&self, spans: &[FinishedSpan]) -> Result<(), String> {
        let body = otlp::encode(&self.service_name, spans);
        let req = Request::post(self.path.clone())
            .header(HOST, self.target.host())
            .header(CONTENT_TYPE, "application/json")
            .body(full(body))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self
                .target
                .send(req, self.timeout, self.timeout)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read to the end so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the collector answered {status}"))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}
