//! Rate limiter properties: arbitrary arrival sequences on a manual clock against brute-force models.
//!
//! Times are integer milliseconds on `ManualClock`. "Within W" means closed: two admissions at
//! `s <= t` are in one window when `t - s <= W` (in ms). The limiter's bucket width is g = W/20.
//!
//! * (a) Safety: for every admitted request at t, admissions in `[t - W, t]` (itself included)
//!   number at most N: any N + 1 admissions span more than W ms.
//! * (a') Exact model: a request at t is admitted iff fewer than N admissions happened at or
//!   after `floor(t/g)*g - W` (the oldest bucket counted in full). This pins the behaviour down
//!   completely, so Safety is not met by being needlessly strict.
//! * (b) Liveness: evenly spaced arrivals at any rate <= 95 % of N/W, any phase, are all admitted.
//! * (c) Refused requests don't count: replaying only the admitted requests on a fresh limiter
//!   admits every one of them with the same `remaining`, and a refusal never changes what a
//!   later request sees.
//! * (d) Retry-After is exact to the second: after a refusal at t with `retry_after_secs = R`,
//!   a request at `t + R s` is admitted and one at `t + (R - 1) s` is refused.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use portcullis::clock::ManualClock;
use portcullis::ratelimit::{BUCKETS, Decision, Limit, MemoryLimiter, Settings};
use proptest::prelude::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

struct Run {
    clock: Arc<ManualClock>,
    limiter: MemoryLimiter,
    now: u64,
}

impl Run {
    fn new() -> Self {
        let clock = ManualClock::new(1_700_000_000);
        let limiter = MemoryLimiter::new(Settings::default(), clock.clone());
        Run {
            clock,
            limiter,
            now: 0,
        }
    }

    fn at(&mut self, t: u64, limit: Limit) -> Decision {
        assert!(t >= self.now);
        self.clock.advance_millis(t - self.now);
        self.now = t;
        self.limiter.check("user", CLIENT, limit)
    }
}

fn limit(max: u32, secs: u64) -> Limit {
    Limit {
        max,
        window: Duration::from_secs(secs),
    }
}

/// Arrival times from gaps: bursts (gap 0), dense and sparse traffic.
fn arrivals() -> impl Strategy<Value = Vec<u64>> {
    let gap = prop_oneof![Just(0u64), 0..40u64, 0..400u64, 0..4000u64];
    prop::collection::vec(gap, 1..250).prop_map(|gaps| {
        let mut t = 0;
        gaps.into_iter()
            .map(|g| {
                t += g;
                t
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn safety_exact_model_refusals_and_retry_after(
        max in 1u32..12,
        secs in 1u64..4,
        times in arrivals(),
    ) {
        let l = limit(max, secs);
        let w = secs * 1000;
        let g = w / BUCKETS as u64;
        let mut run = Run::new();
        let mut admitted: Vec<u64> = Vec::new();
        let mut remaining = Vec::new();
        let mut refused: Vec<(usize, u64)> = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            let d = run.at(t, l);
            // (a') the exact model.
            let start = (t / g * g).saturating_sub(w);
            let counted = admitted.iter().filter(|&&s| s >= start).count();
            prop_assert_eq!(d.allowed, counted < max as usize, "t={} counted={}", t, counted);
            if d.allowed {
                admitted.push(t);
                remaining.push(d.remaining);
                prop_assert_eq!(d.retry_after_secs, 0);
                prop_assert_eq!(d.remaining as usize, max as usize - counted - 1);
            } else {
                prop_assert_eq!(d.remaining, 0);
                prop_assert!(d.retry_after_secs >= 1);
                prop_assert_eq!(d.reset_secs, d.retry_after_secs);
                refused.push((i, d.retry_after_secs));
            }
            prop_assert!(d.reset_secs >= 1);
            prop_assert!(d.reset_secs <= secs + 1, "t never exceeds W + g, rounded up");
        }
        // (a) Safety against the brute-force sliding log, closed intervals.
        for (i, &t) in admitted.iter().enumerate() {
            let in_window = admitted[..=i].iter().filter(|&&s| t - s <= w).count();
            prop_assert!(in_window <= max as usize, "{} admissions in [{}, {}]", in_window, t - w, t);
        }
        // (c) Replaying only the admitted requests: all admitted, same remaining.
        let mut replay = Run::new();
        for (&t, &r) in admitted.iter().zip(&remaining) {
            let d = replay.at(t, l);
            prop_assert!(d.allowed);
            prop_assert_eq!(d.remaining, r);
        }
        // (d) Retry-After, for the first and the last refusal.
        let probes = [refused.first(), refused.last()];
        for &(i, r) in probes.into_iter().flatten() {
            let mut run = Run::new();
            for &t in &times[..=i] {
                run.at(t, l);
            }
            let t = times[i];
            let early = run.at(t + (r - 1) * 1000, l);
            prop_assert!(!early.allowed, "admitted at t + {}s, before Retry-After {}s", r - 1, r);
            // The early probe was refused, so it must not have moved the goal.
            prop_assert!(early.retry_after_secs <= 1);
            let on_time = run.at(t + r * 1000, l);
            prop_assert!(on_time.allowed, "refused at t + Retry-After ({}s)", r);
        }
    }

    #[test]
    fn liveness_at_95_percent_or_less(
        max in 1u32..300,
        secs in prop_oneof![1u64..10, 10u64..400, Just(3600u64)],
        percent in prop_oneof![Just(95u32), 1u32..96],
        phase_frac in 0.0f64..1.0,
    ) {
        let l = limit(max, secs);
        let w = (secs * 1000) as f64;
        let period = w / (f64::from(max) * f64::from(percent) / 100.0);
        let phase = (phase_frac * w) as u64;
        let mut run = Run::new();
        // Three windows' worth, at least a few requests.
        let n = (3.0 * w / period).ceil() as u64 + 3;
        for k in 0..n {
            let t = phase + (k as f64 * period).floor() as u64;
            let d = run.at(t, l);
            prop_assert!(d.allowed, "request {} at {} ms refused (period {:.1} ms)", k, t, period);
        }
    }
}

#[test]
fn hundreds_of_refusals_do_not_delay_recovery() {
    let l = limit(5, 10);
    let mut run = Run::new();
    for _ in 0..5 {
        assert!(run.at(0, l).allowed);
    }
    let first = run.at(1, l);
    assert_eq!(first.retry_after_secs, 11); // bucket [0, 500) expires at 10.5 s
    for t in 2..2000 {
        let d = run.at(t * 5, l);
        assert!(!d.allowed);
    }
    assert!(!run.at(10_499, l).allowed);
    let d = run.at(10_500, l);
    assert!(d.allowed);
    assert_eq!(d.remaining, 4);
}

#[test]
fn just_above_the_bucket_margin_is_refused_eventually() {
    // 100 % of N/W evenly is more than the limiter promises and, with the oldest bucket counted
    // in full, gets refused at some point: the 95 % promise is not vacuous.
    let l = limit(100, 1);
    let mut run = Run::new();
    let refused = (0..1000u64).filter(|k| !run.at(k * 10, l).allowed).count();
    assert!(refused > 0);
}
