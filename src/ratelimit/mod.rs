//! Rate limiting: rolling-window limits per (client IP, route class).
//! (Placeholder until the limiter lands: only the `Limit` type is here.)

use std::time::Duration;

/// "N/W".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per window.
    pub max: u32,
    /// Window length.
    pub window: Duration,
}

impl Limit {
    /// Parses "N/W".
    pub fn parse(s: &str) -> Result<Limit, String> {
        let (n, w) = s
            .split_once('/')
            .ok_or("expected \"N/W\" like \"1000/5m\"")?;
        let max = n.trim().parse().map_err(|_| "bad N")?;
        let window = crate::config::units::parse_duration(w)?;
        Ok(Limit { max, window })
    }
}

/// Limiter settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// IPv6 grouping prefix.
    pub ipv6_prefix: u8,
    /// Cap on tracked clients.
    pub max_tracked_clients: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ipv6_prefix: 64,
            max_tracked_clients: 1_000_000,
        }
    }
}
