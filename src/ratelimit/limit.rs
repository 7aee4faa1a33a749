//! Limit: a class's quota, "N requests per window W", parsed from config text like `"1000/5m"`.
//!
//! The accepted grammar is `N "/" [COUNT] UNIT`, with `UNIT` one of `s`, `m`, `h` and `COUNT`
//! defaulting to 1 (`"10/s"` is `"10/1s"`). Spaces around the parts are allowed. Values outside
//! the ranges below are refused as mistakes rather than silently clamped.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::window::BUCKETS;

/// Largest accepted N. Beyond this a per-client limit is hardly a limit, and the 16-bit bucket
/// counters (at most 65,535 admissions per W/20) would start to bind below 95 % of N/W.
pub const MAX_REQUESTS: u32 = 1_000_000;
/// Longest accepted window, seconds (24 h). Longer quotas belong in a billing system, and a
/// longer window keeps idle clients tracked for longer.
pub const MAX_WINDOW_SECS: u64 = 24 * 3600;

const EXAMPLE: &str = r#"expected "N/W" like "1000/5m" (N requests per window W; W is a number and a unit s, m or h)"#;

/// A rolling-window quota: at most `max` requests in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    /// N: requests admitted per window (1..=1,000,000).
    pub max: u32,
    /// W: the window, a whole number of seconds (1 s..=24 h).
    pub window: Duration,
}

impl Limit {
    /// Parses `"N/W"`, e.g. `"1000/5m"`, `"10/s"`, `"50000/1h"`.
    ///
    /// The error text says what is wrong and shows a valid example.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let text = s.trim();
        let Some((n, w)) = text.split_once('/') else {
            return Err(format!("rate limit {s:?}: missing '/'; {EXAMPLE}"));
        };
        let (n, w) = (n.trim(), w.trim());
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "rate limit {s:?}: the request count {n:?} is not a whole number; {EXAMPLE}"
            ));
        }
        let max: u64 = n.parse().map_err(|_| {
            format!("rate limit {s:?}: the request count {n} is too large (at most {MAX_REQUESTS})")
        })?;
        if max == 0 {
            return Err(format!(
                "rate limit {s:?}: the request count must be at least 1 (to block a route, remove it); {EXAMPLE}"
            ));
        }
        if max > u64::from(MAX_REQUESTS) {
            return Err(format!(
                "rate limit {s:?}: the request count {max} is too large (at most {MAX_REQUESTS})"
            ));
        }
        let Some(unit) = w.chars().last() else {
            return Err(format!(
                "rate limit {s:?}: the window is missing; {EXAMPLE}"
            ));
        };
        let unit_secs: u64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => {
                return Err(format!(
                    "rate limit {s:?}: the window {w:?} must end in a unit s, m or h; {EXAMPLE}"
                ));
            }
        };
        let count = w[..w.len() - unit.len_utf8()].trim();
        let count: u64 = if count.is_empty() {
            1
        } else if count.bytes().all(|b| b.is_ascii_digit()) {
            count.parse().unwrap_or(u64::MAX)
        } else {
            return Err(format!(
                "rate limit {s:?}: the window length {count:?} is not a whole number; {EXAMPLE}"
            ));
        };
        if count == 0 {
            return Err(format!(
                "rate limit {s:?}: the window must be at least 1s; {EXAMPLE}"
            ));
        }
        let secs = count.saturating_mul(unit_secs);
        if secs > MAX_WINDOW_SECS {
            return Err(format!(
                "rate limit {s:?}: the window {w} is longer than 24h; use at most \"24h\""
            ));
        }
        Ok(Limit {
            max: max as u32,
            window: Duration::from_secs(secs),
        })
    }

    /// The window in whole seconds (the `w` of `RateLimit-Policy`).
    pub fn window_secs(&self) -> u64 {
        self.window.as_secs()
    }

    /// Width of one counter bucket, ms: W / 20. Every window `parse` accepts is a whole number
    /// of seconds, so this is exact (a multiple of 50 ms). A hand-built sub-second window is
    /// rounded up to 1 s worth of buckets, which only makes the limit stricter; rounding up
    /// keeps `BUCKETS * bucket_ms >= W`, which Safety needs. Windows beyond `u32::MAX` ms per
    /// bucket (about 2.7 years) are capped there.
    pub(crate) fn bucket_ms(&self) -> u32 {
        let ms = self.window.as_millis().max(1000);
        ms.div_ceil(BUCKETS as u128).min(u128::from(u32::MAX)) as u32
    }
}

impl FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Limit::parse(s)
    }
}

impl fmt::Display for Limit {
    /// The canonical text: the largest unit that divides the window, e.g. `1000/5m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.window.as_secs();
        if secs != 0 && secs.is_multiple_of(3600) {
            write!(f, "{}/{}h", self.max, secs / 3600)
        } else if secs != 0 && secs.is_multiple_of(60) {
            write!(f, "{}/{}m", self.max, secs / 60)
        } else {
            write!(f, "{}/{}s", self.max, secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (u32, u64) {
        let l = Limit::parse(s).unwrap();
        (l.max, l.window.as_secs())
    }

    #[test]
    fn parses_good_inputs() {
        assert_eq!(ok("1000/5m"), (1000, 300));
        assert_eq!(ok("500/5m"), (500, 300));
        assert_eq!(ok("100/5m"), (100, 300));
        assert_eq!(ok("10/s"), (10, 1));
        assert_eq!(ok("10/1s"), (10, 1));
        assert_eq!(ok("60/90s"), (60, 90));
        assert_eq!(ok("50000/1h"), (50000, 3600));
        assert_eq!(ok("1/24h"), (1, 86400));
        assert_eq!(ok(" 7 / 2 m "), (7, 120));
        assert_eq!(ok("1000000/1m"), (1_000_000, 60));
        assert_eq!(
            "1000/5m".parse::<Limit>().unwrap(),
            Limit::parse("1000/300s").unwrap()
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["1000/5m", "10/1s", "60/90s", "5/2h", "1/24h"] {
            let l = Limit::parse(s).unwrap();
            assert_eq!(l.to_string(), s);
            assert_eq!(Limit::parse(&l.to_string()).unwrap(), l);
        }
    }

    #[test]
    fn refuses_bad_inputs_with_a_useful_message() {
        let cases = [
            ("", "missing '/'"),
            ("1000", "missing '/'"),
            ("1000 per 5m", "missing '/'"),
            ("0/5m", "at least 1"),
            ("-1/5m", "not a whole number"),
            ("1e3/5m", "not a whole number"),
            ("/5m", "not a whole number"),
            ("1000001/5m", "too large"),
            ("99999999999999999999999/5m", "too large"),
            ("1000/", "window is missing"),
            ("1000/5", "unit s, m or h"),
            ("1000/5d", "unit s, m or h"),
            ("1000/5ms", "unit s, m or h"),
            ("1000/0m", "at least 1s"),
            ("1000/x5m", "not a whole number"),
            ("1000/1.5m", "not a whole number"),
            ("1000/25h", "longer than 24h"),
            ("1000/99999999999999999999h", "longer than 24h"),
            ("1000/5m/2", "unit s, m or h"),
        ];
        for (input, want) in cases {
            let err = Limit::parse(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
            assert!(
                err.contains(&format!("{input:?}")),
                "{input:?}: error does not quote the input: {err}"
            );
        }
        // Shape errors show a valid example.
        assert!(Limit::parse("abc").unwrap_err().contains(r#""1000/5m""#));
    }

    #[test]
    fn bucket_width_is_a_twentieth_of_the_window() {
        assert_eq!(Limit::parse("1/1s").unwrap().bucket_ms(), 50);
        assert_eq!(Limit::parse("1/5m").unwrap().bucket_ms(), 15_000);
        assert_eq!(Limit::parse("1/24h").unwrap().bucket_ms(), 4_320_000);
        let odd = Limit {
            max: 1,
            window: Duration::from_millis(1),
        };
        assert_eq!(odd.bucket_ms(), 50);
        // A hand-built window past 24 h is honoured, not shortened.
        let week = Limit {
            max: 1,
            window: Duration::from_secs(7 * 86_400),
        };
        assert_eq!(week.bucket_ms(), 30_240_000);
    }
}
