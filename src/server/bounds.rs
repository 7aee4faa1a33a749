//! Bounds: the `[limits]` section (sizes, timeouts, connection caps) with its defaults, and the
//! values that relax a safe default, for `portcullis check` to report.
//!
//! A longer timeout or a higher cap than the default is allowed (some deployments need one), but
//! never silently: `check` prints one note per relaxed key with the default it relaxes.

use std::time::Duration;

use crate::config::diagnostic::{Diagnostics, Source};
use crate::config::raw::{self, SString};
use crate::config::validate::{opt_bytes, opt_duration};

/// Size and time limits, defaults applied.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head, bytes (default 32 KiB).
    pub max_header_bytes: usize,
    /// Largest request body, bytes (default 10 MiB).
    pub max_body_bytes: u64,
    /// Time a client has to send the request head (default 10 s).
    pub header_read_timeout: Duration,
    /// Time to connect to an upstream (default 5 s).
    pub upstream_connect_timeout: Duration,
    /// Time to wait for an upstream's response head (default 30 s).
    pub upstream_response_timeout: Duration,
    /// Idle pooled connections per upstream (default 64).
    pub upstream_pool_idle_per_host: usize,
    /// How long an idle pooled connection is kept (default 90 s).
    pub upstream_pool_idle_timeout: Duration,
    /// Time to finish the TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// Client connection with no request in flight (default 60 s).
    pub client_idle_timeout: Duration,
    /// Longest pause inside a request body (default 30 s).
    pub body_idle_timeout: Duration,
    /// Longest blocked response write (default 30 s).
    pub client_write_timeout: Duration,
    /// Longest pause inside an upstream response body (default 60 s).
    pub upstream_body_idle_timeout: Duration,
    /// Open client connections in total (default 10000).
    pub max_connections: usize,
    /// Open client connections per IP (default 256).
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams per connection (default 100).
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 PING + SETTINGS frames per second per connection (default 100).
    pub h2_max_control_frames_per_sec: u32,
}

impl Limits {
    /// The `[limits]` section, defaults applied; problems go to `d`.
    pub fn validate(raw: &raw::Limits, d: &mut Diagnostics) -> Self {
        Limits {
            max_header_bytes: opt_bytes(&raw.max_header_bytes, "limits.max_header_bytes", d)
                .map_or(32 * 1024, |b| b as usize),
            max_body_bytes: opt_bytes(&raw.max_body_bytes, "limits.max_body_bytes", d)
                .unwrap_or(10 * 1024 * 1024),
            header_read_timeout: opt_duration(
                &raw.header_read_timeout,
                "limits.header_read_timeout",
                d,
            )
            .unwrap_or(Duration::from_secs(10)),
            upstream_connect_timeout: opt_duration(
                &raw.upstream_connect_timeout,
                "limits.upstream_connect_timeout",
                d,
            )
            .unwrap_or(Duration::from_secs(5)),
            upstream_response_timeout: opt_duration(
                &raw.upstream_response_timeout,
                "limits.upstream_response_timeout",
                d,
            )
            .unwrap_or(Duration::from_secs(30)),
            upstream_pool_idle_per_host: raw.upstream_pool_idle_per_host.unwrap_or(64),
            upstream_pool_idle_timeout: opt_duration(
                &raw.upstream_pool_idle_timeout,
                "limits.upstream_pool_idle_timeout",
                d,
            )
            .unwrap_or(Duration::from_secs(90)),
            tls_handshake_timeout: secs(&raw.tls_handshake_timeout, "tls_handshake_timeout", 10, d),
            client_idle_timeout: secs(&raw.client_idle_timeout, "client_idle_timeout", 60, d),
            body_idle_timeout: secs(&raw.body_idle_timeout, "body_idle_timeout", 30, d),
            client_write_timeout: secs(&raw.client_write_timeout, "client_write_timeout", 30, d),
            upstream_body_idle_timeout: secs(
                &raw.upstream_body_idle_timeout,
                "upstream_body_idle_timeout",
                60,
                d,
            ),
            max_connections: raw.max_connections.unwrap_or(10_000).max(1),
            max_connections_per_ip: raw.max_connections_per_ip.unwrap_or(256).max(1),
            h2_max_concurrent_streams: raw.h2_max_concurrent_streams.unwrap_or(100).max(1),
            h2_max_control_frames_per_sec: raw.h2_max_control_frames_per_sec.unwrap_or(100).max(1),
        }
    }

    /// Every `[limits]` key at its default.
    pub fn defaults() -> Self {
        let source = Source::new("", "");
        Self::validate(&raw::Limits::default(), &mut Diagnostics::new(&source))
    }
}

/// A `[limits]` duration, `default` seconds when absent.
fn secs(s: &Option<SString>, key: &str, default: u64, d: &mut Diagnostics) -> Duration {
    opt_duration(s, &format!("limits.{key}"), d).unwrap_or(Duration::from_secs(default))
}

/// One line per key whose value is looser than its default.
pub fn relaxations(l: &Limits) -> Vec<String> {
    let d = Limits::defaults();
    let mut out = Vec::new();
    let mut time = |key: &str, v: Duration, def: Duration| {
        if v > def {
            out.push(format!(
                "limits.{key} = {v:?} is longer than the default {def:?}"
            ));
        }
    };
    time(
        "header_read_timeout",
        l.header_read_timeout,
        d.header_read_timeout,
    );
    time(
        "tls_handshake_timeout",
        l.tls_handshake_timeout,
        d.tls_handshake_timeout,
    );
    time(
        "client_idle_timeout",
        l.client_idle_timeout,
        d.client_idle_timeout,
    );
    time(
        "body_idle_timeout",
        l.body_idle_timeout,
        d.body_idle_timeout,
    );
    time(
        "client_write_timeout",
        l.client_write_timeout,
        d.client_write_timeout,
    );
    time(
        "upstream_response_timeout",
        l.upstream_response_timeout,
        d.upstream_response_timeout,
    );
    time(
        "upstream_body_idle_timeout",
        l.upstream_body_idle_timeout,
        d.upstream_body_idle_timeout,
    );
    let mut cap = |key: &str, v: u64, def: u64| {
        if v > def {
            out.push(format!(
                "limits.{key} = {v} is higher than the default {def}"
            ));
        }
    };
    cap(
        "max_connections",
        l.max_connections as u64,
        d.max_connections as u64,
    );
    cap(
        "max_connections_per_ip",
        l.max_connections_per_ip as u64,
        d.max_connections_per_ip as u64,
    );
    cap(
        "h2_max_concurrent_streams",
        l.h2_max_concurrent_streams.into(),
        d.h2_max_concurrent_streams.into(),
    );
    cap(
        "h2_max_control_frames_per_sec",
        l.h2_max_control_frames_per_sec.into(),
        d.h2_max_control_frames_per_sec.into(),
    );
    cap(
        "max_header_bytes",
        l.max_header_bytes as u64,
        d.max_header_bytes as u64,
    );
    out
}
