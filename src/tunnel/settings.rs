//! Tunnel settings: the `[tunnels]` config section (idle timeout, lifetime, caps), owned here.
//!
//! Raw keys, their validation (each bad value reported at its file:line:column with a fix) and
//! the compiled form. Every value looser than its default is reported by `portcullis check`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::config::units::parse_duration;

/// `[tunnels]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTunnels {
    /// A tunnel with no byte in either direction for this long is closed (default `"60s"`).
    pub idle_timeout: Option<SString>,
    /// A tunnel is closed this long after it opened, busy or not (default `"1h"`).
    pub max_lifetime: Option<SString>,
    /// Open tunnels per client IP (default 16); more: `429 too_many_tunnels`.
    pub max_per_ip: Option<Spanned<usize>>,
    /// Open tunnels in total (default 1000); more: `503 service_unavailable`.
    pub max_total: Option<Spanned<usize>>,
}

/// `[tunnels]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelSettings {
    /// Longest time with no byte in either direction.
    pub idle_timeout: Duration,
    /// Longest life of one tunnel.
    pub max_lifetime: Duration,
    /// Open tunnels per client IP.
    pub max_per_ip: usize,
    /// Open tunnels in total.
    pub max_total: usize,
}

impl Default for TunnelSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
            max_per_ip: 16,
            max_total: 1000,
        }
    }
}

impl TunnelSettings {
    /// Validates `[tunnels]`; a bad value is reported and its default kept.
    pub fn validate(raw: &RawTunnels, d: &mut Diagnostics) -> Self {
        let def = Self::default();
        Self {
            idle_timeout: duration(&raw.idle_timeout, "idle_timeout", d)
                .unwrap_or(def.idle_timeout),
            max_lifetime: duration(&raw.max_lifetime, "max_lifetime", d)
                .unwrap_or(def.max_lifetime),
            max_per_ip: cap(&raw.max_per_ip, "max_per_ip", d).unwrap_or(def.max_per_ip),
            max_total: cap(&raw.max_total, "max_total", d).unwrap_or(def.max_total),
        }
    }

    /// One line per value looser than its default, for `portcullis check`.
    pub fn relaxations(&self) -> Vec<String> {
        let def = Self::default();
        let mut out = Vec::new();
        let times = [
            ("idle_timeout", self.idle_timeout, def.idle_timeout),
            ("max_lifetime", self.max_lifetime, def.max_lifetime),
        ];
        for (key, v, d) in times {
            if v > d {
                out.push(format!(
                    "tunnels.{key} = {v:?} is longer than the default {d:?}"
                ));
            }
        }
        let caps = [
            ("max_per_ip", self.max_per_ip, def.max_per_ip),
            ("max_total", self.max_total, def.max_total),
        ];
        for (key, v, d) in caps {
            if v > d {
                out.push(format!(
                    "tunnels.{key} = {v} is higher than the default {d}"
                ));
            }
        }
        out
    }
}

fn duration(s: &Option<SString>, key: &str, d: &mut Diagnostics) -> Option<Duration> {
    let s = s.as_ref()?;
    let problem = match parse_duration(s.get_ref()) {
        Ok(v) if !v.is_zero() => return Some(v),
        Ok(_) => "duration must be greater than zero".to_string(),
        Err(e) => e,
    };
    d.push(
        Some(s.span()),
        format!("tunnels.{key}"),
        problem,
        "write a duration with a unit, e.g. \"60s\" or \"1h\"",
    );
    None
}

fn cap(v: &Option<Spanned<usize>>, key: &str, d: &mut Diagnostics) -> Option<usize> {
    let v = v.as_ref()?;
    if *v.get_ref() == 0 {
        d.push(
            Some(v.span()),
            format!("tunnels.{key}"),
            "a cap of 0 would refuse every WebSocket",
            "write a positive number, or set websocket = false on the routes instead",
        );
        return None;
    }
    Some(*v.get_ref())
}
