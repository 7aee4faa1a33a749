//! Rate limiting: rolling-window limits per (client IP, route class), and the headers that report them.
//!
//! Each route class has a [`Limit`] "N requests per window W". [`MemoryLimiter::check`] decides
//! one request for one (class, client) key and returns a [`Decision`], whose
//! [`Decision::write_headers`] adds the IETF `RateLimit-Policy` and `RateLimit` fields. The error
//! layer adds `Retry-After` from [`Decision::retry_after_secs`] on a 429.
//!
//! # Contract (DESIGN section 6)
//! * **Safety**: no interval of length W (closed: timestamps at most W ms apart) ever holds more
//!   than N admitted requests of one key.
//! * **Liveness**: a client sending evenly at 95 % of N/W or less is never refused.
//! * Refused requests are not counted; `retry_after_secs` is the true wait, rounded up to whole
//!   seconds, and never 0.
//! * Check-and-count is atomic per key: 2N concurrent checks on one key admit exactly N.
//!
//! The counter is 20 buckets of W/20 that count the oldest, partly expired bucket in full; the
//! arithmetic and its proof sketch are in `window`. The keyed store, IPv6 grouping, idle-key
//! sweeping and the overflow policy are in `memory`.
//!
//! # Backends
//! `[state] backend = "redis"` moves the counters to Redis (`redis`: the same algorithm as one
//! Lua script, one round trip per check) so the contract holds for the sum of all instances;
//! [`Limiter`] chooses the backend and applies each class's [`OnBackendError`] when Redis fails.
//!
//! # Overflow policy (`max_tracked_clients`)
//! The store never evicts a key whose counts still matter. When it is full and a new client
//! arrives, it first sweeps idle keys (at most once a second, so a flood cannot make every
//! request pay for a sweep); if that frees room the client gets its own counters. Otherwise the
//! new client is counted in **one shared overflow window per class** with the class's limit:
//! all untracked clients of that class together get N per W. A flood of fresh addresses thus
//! cannot push an active (abusive) client's counters out to reset its limit, and the flood
//! itself is held to N per W; the price is that genuinely new clients of that class are throttled
//! together until keys go idle. Tracked clients are unaffected. Decisions made by an overflow
//! window are counted ([`MemoryLimiter::overflowed`]) so operators can raise the cap.
//!
//! # Reload
//! Counters outlive reloads (`Shared` keeps one `MemoryLimiter`; Redis keys are by class name).
//! A reload applies `[rate_limit]` through [`MemoryLimiter::apply`]; a class whose limit did
//! not change keeps counting exactly as before, and one whose limit changed keeps its counts
//! under the new limit (`Window::regeometry` when the window length changed, the same rule in
//! the Redis script).
//!
//! # Memory
//! One tracked key is a 20-byte key (grouped address, class id) and a 52-byte window (21
//! 16-bit counters), 72 bytes plus one control byte per hash-table slot; with the table's load
//! factor (44 % to 87 %) that measures 85 to 170 bytes per key (`benches/ratelimit.rs` prints
//! the figure: 153 at one million keys, 146 MiB). Idle keys (nothing counted in the last
//! W + W/20) are removed by [`MemoryLimiter::sweep`], run periodically by
//! [`MemoryLimiter::spawn_sweeper`].

mod backend;
mod limit;
mod memory;
pub mod redis;
mod window;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

pub use backend::{BackendUnavailable, Limiter, OnBackendError};
pub use limit::{Limit, MAX_REQUESTS, MAX_WINDOW_SECS};
pub use memory::MemoryLimiter;
pub use window::BUCKETS;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11 section 3).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 section 4).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Limiter settings shared by all classes (`[rate_limit]` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// IPv6 clients are grouped by this prefix length (0..=128; larger values act as 128).
    /// IPv4 clients (and IPv4-mapped IPv6) are always keyed by the full address.
    pub ipv6_prefix: u8,
    /// Cap on tracked (class, client) keys; see the overflow policy in the module docs.
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

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit it was checked against.
    pub limit: Limit,
    /// Requests left in the window after this one (0 when refused).
    pub remaining: u32,
    /// Seconds (rounded up, >= 1) until the available quota next grows: when an allowed
    /// request's oldest counted bucket expires, or, when refused, `retry_after_secs`.
    /// This is the `t` of the `RateLimit` field.
    pub reset_secs: u64,
    /// 0 when allowed; when refused, whole seconds (rounded up, >= 1) until one request
    /// would be admitted if the client sends nothing else.
    pub retry_after_secs: u64,
}

impl Decision {
    /// Adds `RateLimit-Policy: "<policy>";q=<N>;w=<W secs>` and `RateLimit: "<policy>";r=<remaining>;t=<reset>`
    /// (draft-ietf-httpapi-ratelimit-headers-11), replacing any earlier values. The policy
    /// field and the name come ready-made from `policy` (built once per route); only the two
    /// numbers of `RateLimit` are written per request. `Retry-After` is the error layer's job.
    pub fn write_headers(&self, policy: &PolicyHeaders, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, policy.policy.clone());
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (r, t) = (r.format(self.remaining), t.format(self.reset_secs));
        let mut current = String::with_capacity(policy.name.len() + r.len() + t.len() + 6);
        for part in [&*policy.name, ";r=", r, ";t=", t] {
            current.push_str(part);
        }
        // Printable ASCII by construction, so this never fails.
        if let Ok(v) = HeaderValue::try_from(current) {
            headers.insert(RATELIMIT, v);
        }
    }
}

/// The parts of a route's rate-limit fields that do not change per request: the
/// `RateLimit-Policy` value and the policy name as a structured-field String.
#[derive(Debug, Clone)]
pub struct PolicyHeaders {
    name: Box<str>,
    policy: HeaderValue,
}

impl PolicyHeaders {
    /// The fields of `limit` under `policy_name`. The name is written as a structured-field
    /// String: `"` and `\` are escaped and characters outside printable ASCII become `_`.
    pub fn new(policy_name: &str, limit: Limit) -> Self {
        let name = sf_string(policy_name);
        let policy = format!("{name};q={};w={}", limit.max, limit.window_secs());
        Self {
            policy: HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static("")),
            name: name.into_boxed_str(),
        }
    }
}

/// RFC 9651 section 4.1.6 String serialization, lossy for characters it cannot carry.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

/// Whole seconds for a wait of `ms` milliseconds: rounded up, at least 1.
pub(crate) fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, reset: u64) -> Decision {
        Decision {
            allowed,
            limit: Limit::parse("1000/5m").unwrap(),
            remaining,
            reset_secs: reset,
            retry_after_secs: if allowed { 0 } else { reset },
        }
    }

    #[test]
    fn headers_follow_draft_11_syntax() {
        let mut h = HeaderMap::new();
        let user = PolicyHeaders::new("user", Limit::parse("1000/5m").unwrap());
        decision(true, 999, 12).write_headers(&user, &mut h);
        assert_eq!(h["ratelimit-policy"], r#""user";q=1000;w=300"#);
        assert_eq!(h["ratelimit"], r#""user";r=999;t=12"#);
        // A second write replaces, never appends.
        decision(false, 0, 7).write_headers(&user, &mut h);
        assert_eq!(h.get_all("ratelimit").iter().count(), 1);
        assert_eq!(h["ratelimit"], r#""user";r=0;t=7"#);
        assert!(h.get("retry-after").is_none());
    }

    #[test]
    fn policy_name_is_a_valid_sf_string() {
        let mut h = HeaderMap::new();
        let odd = PolicyHeaders::new("a\"b\\c\u{e9}\n", Limit::parse("1/1s").unwrap());
        decision(true, 1, 1).write_headers(&odd, &mut h);
        assert_eq!(h["ratelimit"], r#""a\"b\\c__";r=1;t=1"#);
    }

    #[test]
    fn settings_default() {
        let s = Settings::default();
        assert_eq!((s.ipv6_prefix, s.max_tracked_clients), (64, 1_000_000));
    }

    #[test]
    fn ceil_secs_rounds_up_and_never_returns_zero() {
        assert_eq!(ceil_secs(0), 1);
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(1000), 1);
        assert_eq!(ceil_secs(1001), 2);
        assert_eq!(ceil_secs(300_050), 301);
    }
}
