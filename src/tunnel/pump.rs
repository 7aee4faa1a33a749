//! Pump: the bidirectional byte copy of an open tunnel, bounded by idle time, lifetime and shutdown.
//!
//! Each direction copies chunk by chunk; the end of one direction (EOF or an error) is passed on
//! as a write shutdown and ends the tunnel (WebSocket closes in-band, so no half-open state is
//! kept). A watchdog closes the
//! tunnel when no chunk has crossed in either direction for `idle_timeout` (a write blocked on
//! a peer that does not read counts as no traffic), when `max_lifetime` has passed, or when the
//! gateway's close signal fires. Dropping both sides closes both connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::settings::TunnelSettings;

const CHUNK: usize = 16 * 1024;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A side closed (or failed).
    Closed,
    /// No byte in either direction for `idle_timeout`.
    IdleTimeout,
    /// `max_lifetime` passed.
    MaxLifetime,
    /// The gateway shut down (after its grace period).
    Shutdown,
    /// The answer was sent but an upgrade never completed (a side vanished): no tunnel.
    NotOpened,
}

impl End {
    /// The name in the access log and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::IdleTimeout => "idle_timeout",
            End::MaxLifetime => "max_lifetime",
            End::Shutdown => "shutdown",
            End::NotOpened => "not_opened",
        }
    }
}

/// What crossed a tunnel.
#[derive(Debug)]
pub struct Traffic {
    started: Instant,
    /// Bytes from the client to the upstream.
    pub up: AtomicU64,
    /// Bytes from the upstream to the client.
    pub down: AtomicU64,
    /// Milliseconds after `started` of the last chunk in either direction.
    last_ms: AtomicU64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self::new()
    }
}

impl Traffic {
    /// Nothing crossed yet; the clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn moved(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// How long the tunnel has been open.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Copies between `client` and `upstream` until both end or a limit closes the tunnel.
pub async fn pump<C, U>(
    client: C,
    upstream: U,
    limits: TunnelSettings,
    mut closing: watch::Receiver<bool>,
) -> (End, Traffic)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let traffic = Traffic::new();
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let end = {
        let up = copy(&mut cr, &mut uw, &traffic, &traffic.up);
        let down = copy(&mut ur, &mut cw, &traffic, &traffic.down);
        // WebSocket has no half-close: the end of either direction (passed on as a write
        // shutdown, after everything read was written) ends the tunnel, as in nginx.
        tokio::select! {
            () = up => End::Closed,
            () = down => End::Closed,
            end = watchdog(&traffic, limits) => end,
            _ = closing.wait_for(|c| *c) => End::Shutdown,
        }
    };
    (end, traffic)
}

/// One direction: chunks until EOF (then the write side is shut down) or an error.
async fn copy<R, W>(r: &mut R, w: &mut W, traffic: &Traffic, counter: &AtomicU64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            return;
        }
        traffic.moved(counter, n);
    }
    let _ = w.shutdown().await;
}

/// Resolves when the tunnel has been idle too long or lived too long.
async fn watchdog(traffic: &Traffic, limits: TunnelSettings) -> End {
    loop {
        let idle_left = limits.idle_timeout.saturating_sub(traffic.idle_for());
        let life_left = limits.max_lifetime.saturating_sub(traffic.age());
        if life_left.is_zero() {
            return End::MaxLifetime;
        }
        if idle_left.is_zero() {
            return End::IdleTimeout;
        }
        tokio::time::sleep(idle_left.min(life_left)).await;
    }
}
