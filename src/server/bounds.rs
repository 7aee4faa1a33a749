//! Bounds: the `[limits]` values that relax a safe default, for `portcullis check` to report.
//!
//! A longer timeout or a higher cap than the default is allowed (some deployments need one), but
//! never silently: `check` prints one note per relaxed key with the default it relaxes.

use std::time::Duration;

use crate::config::validate::Limits;

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
