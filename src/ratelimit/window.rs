//! Window: the bucketed rolling-window counter for one key, and the arithmetic behind a decision.
//!
//! The window W is cut into [`BUCKETS`] = 20 buckets of width g = W/20, numbered from the clock's
//! origin (bucket b covers `[b·g, (b+1)·g)` ms). A ring of 21 counters holds the admitted counts of
//! the current bucket and the 20 before it. A check at time t in bucket b sums all 21, i.e. every
//! admission in `[b·g − W, t]`, and admits when the sum is below N.
//!
//! * **Safety.** `b·g − W <= t − W`, so the sum covers the closed interval `[t − W, t]`: every
//!   admission at t sees at most N − 1 earlier admissions at times `>= t − W`. Hence any N + 1
//!   admitted requests are spread over more than W (timestamps differ by more than W ms), which
//!   is "no interval of length W contains more than N", for closed intervals too.
//! * **Liveness.** The oldest bucket is counted in full, so the sum looks back at most W + g − 1
//!   ms. A client sending evenly at rate f·N/W has its N-th previous request `N·W/(f·N) = W/f`
//!   ms earlier; it has left the sum when `W/f > W + g`, i.e. `g < W(1/f − 1)`. At f = 0.95 that
//!   is `g < 0.0526·W`: 19 buckets is exactly on the edge, 20 (g = 0.05·W) leaves 0.26 % of W
//!   spare, which also absorbs 1 ms rounding of arrival times for any W >= 1 s.
//! * **Retry-After.** Bucket k's count stops counting at the start of bucket k + 21. Walking from
//!   the oldest bucket, the first k whose expiry brings the sum below N gives the exact instant
//!   one request would be admitted (refused requests are not counted, so waiting is enough).
//!
//! * **Counter width.** Counters are `u16` to halve the memory of a key. A bucket that has
//!   admitted 65,535 requests refuses more until the next bucket starts (`Retry-After` is then
//!   the time to that boundary). This only ever refuses, so Safety is untouched; Liveness at
//!   95 % puts 0.95·N/20 requests in a bucket, under 65,535 for every N up to 1,379,000, and
//!   `Limit::parse` accepts N up to 1,000,000.
//!
//! Memory: 21 × `u16` + head, geometry and ring position = 52 bytes.

use super::limit::Limit;

/// Buckets per window. 20 is the least count that meets Liveness at 95 % of N/W (see above).
pub const BUCKETS: usize = 20;
/// Counters kept: the current bucket plus the `BUCKETS` before it.
const SLOTS: usize = BUCKETS + 1;

/// What one check decided, before it is dressed as a public `Decision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    /// Quota left after this request.
    pub remaining: u32,
    /// ms until the available quota next grows (allowed) or until one request fits (refused).
    pub wait_ms: u64,
}

/// Admission counts of the last W + g for one key.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    /// Index of the newest bucket, truncated to 32 bits (compared with wrapping arithmetic;
    /// at g >= 50 ms that is over three years between touches, and the sweeper evicts a key
    /// idle for W + g).
    head: u32,
    /// g in ms for the limit the counts were taken under; 0 for a fresh window.
    bucket_ms: u32,
    counts: [u16; SLOTS],
    /// Ring position of `head`.
    pos: u8,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    /// An empty window.
    pub(crate) const fn new() -> Self {
        Self {
            head: 0,
            bucket_ms: 0,
            counts: [0; SLOTS],
            pos: 0,
        }
    }

    /// Checks one request at `now_ms` against `limit`, counting it when admitted.
    pub(crate) fn check(&mut self, now_ms: u64, limit: Limit) -> Verdict {
        let g = limit.bucket_ms();
        let now_b = (now_ms / u64::from(g)) as u32;
        if self.bucket_ms != g {
            self.regeometry(g, now_b);
        }
        // A caller that read the clock just before another caller updated this window may be a
        // bucket behind `head`; it is then treated as being in `head` (never rewinds the ring).
        let lead = self.advance(now_b);
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let max = u64::from(limit.max);
        // Absolute start of the bucket after head, in ms.
        let next_start = (now_ms / u64::from(g) + u64::from(lead) + 1) * u64::from(g);
        let current = usize::from(self.pos);
        if total < max && self.counts[current] < u16::MAX {
            self.counts[current] += 1;
            // Quota next grows when the oldest non-empty bucket expires.
            let k = (0..SLOTS)
                .find(|&k| self.counts[self.slot_of(k)] != 0)
                .unwrap_or(BUCKETS);
            Verdict {
                allowed: true,
                remaining: (max - total - 1) as u32,
                wait_ms: next_start + k as u64 * u64::from(g) - now_ms,
            }
        } else if total < max {
            // The current bucket is saturated: the next one is empty and the sum only shrinks.
            Verdict {
                allowed: false,
                remaining: 0,
                wait_ms: next_start - now_ms,
            }
        } else {
            let need = total - max + 1;
            let mut dropped = 0u64;
            let mut k = BUCKETS;
            for i in 0..SLOTS {
                dropped += u64::from(self.counts[self.slot_of(i)]);
                if dropped >= need {
                    k = i;
                    break;
                }
            }
            Verdict {
                allowed: false,
                remaining: 0,
                wait_ms: next_start + k as u64 * u64::from(g) - now_ms,
            }
        }
    }

    /// True when nothing this window holds still counts at `now_ms`: dropping it changes no
    /// future decision.
    pub(crate) fn is_idle(&self, now_ms: u64) -> bool {
        if self.bucket_ms == 0 {
            return true;
        }
        let now_b = (now_ms / u64::from(self.bucket_ms)) as u32;
        // Buckets that leave the window once head reaches now_b are the oldest `d`; only the
        // later ones (k >= d, oldest-first) still count. A refused request moves head without
        // counting, so head alone does not say whether a key is idle.
        let d = (now_b.wrapping_sub(self.head) as i32).max(0) as usize;
        (d.min(SLOTS)..SLOTS).all(|k| self.counts[self.slot_of(k)] == 0)
    }

    /// Ring slot of the k-th counted bucket, oldest first (k = 0 is head − 20, k = 20 is head).
    fn slot_of(&self, k: usize) -> usize {
        (usize::from(self.pos) + 1 + k) % SLOTS
    }

    /// Moves head to `now_b`, zeroing the buckets that left the window. Returns how many
    /// buckets head is ahead of `now_b` (0 unless the caller's clock reading is stale).
    fn advance(&mut self, now_b: u32) -> u32 {
        let d = now_b.wrapping_sub(self.head) as i32;
        if d <= 0 {
            return d.unsigned_abs();
        }
        if d as usize >= SLOTS {
            self.counts = [0; SLOTS];
            self.pos = ((usize::from(self.pos) + d as usize % SLOTS) % SLOTS) as u8;
        } else {
            for _ in 0..d {
                self.pos = ((usize::from(self.pos) + 1) % SLOTS) as u8;
                self.counts[usize::from(self.pos)] = 0;
            }
        }
        self.head = now_b;
        0
    }

    /// The limit's window changed (config reload): the old buckets do not map onto the new
    /// ones, so every admission still held is kept, in full, in the new current bucket. It then
    /// counts for a whole new window: stricter for a while, never looser. (Over 65,535 held, the
    /// bucket saturates, which refuses the rest of that bucket; the limit then applies as usual.)
    fn regeometry(&mut self, g: u32, now_b: u32) {
        let held: u16 = if self.bucket_ms == 0 {
            0
        } else {
            self.counts.iter().fold(0u16, |a, &c| a.saturating_add(c))
        };
        self.counts = [0; SLOTS];
        self.pos = 0;
        self.counts[0] = held;
        self.head = now_b;
        self.bucket_ms = g;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(s: &str) -> Limit {
        Limit::parse(s).unwrap()
    }

    #[test]
    fn window_is_52_bytes() {
        assert_eq!(std::mem::size_of::<Window>(), 52);
    }

    #[test]
    fn a_saturated_bucket_refuses_until_the_next_bucket() {
        let l = lim("1000000/1h"); // g = 180 s
        let mut w = Window::new();
        for _ in 0..u16::MAX {
            assert!(w.check(1000, l).allowed);
        }
        let v = w.check(1000, l);
        assert_eq!((v.allowed, v.remaining, v.wait_ms), (false, 0, 179_000));
        assert!(!w.check(179_999, l).allowed);
        let v = w.check(180_000, l);
        assert!(v.allowed);
        assert_eq!(v.remaining, 1_000_000 - u32::from(u16::MAX) - 1);
    }

    #[test]
    fn admits_n_then_refuses_and_refusals_do_not_count() {
        let l = lim("3/1s"); // g = 50 ms
        let mut w = Window::new();
        let r: Vec<_> = (0..3).map(|_| w.check(10, l)).collect();
        assert!(r.iter().all(|v| v.allowed));
        assert_eq!(r.iter().map(|v| v.remaining).collect::<Vec<_>>(), [2, 1, 0]);
        for _ in 0..1000 {
            let v = w.check(20, l);
            assert!(!v.allowed);
            assert_eq!(v.remaining, 0);
        }
        // All three sit in bucket 0 [0, 50): it counts through bucket 20 and expires at 1050.
        assert_eq!(w.check(20, l).wait_ms, 1030);
        assert!(!w.check(1049, l).allowed);
        let v = w.check(1050, l);
        assert!(v.allowed, "refusals must not have been counted");
        assert_eq!(v.remaining, 2);
    }

    #[test]
    fn oldest_partial_bucket_counts_in_full() {
        let l = lim("2/1s");
        let mut w = Window::new();
        assert!(w.check(49, l).allowed); // bucket 0, expires at 1050
        assert!(w.check(1000, l).allowed); // bucket 20, expires at 2050
        // At 1040 the first request is 991 ms old, inside W: refused.
        assert!(!w.check(1040, l).allowed);
        // At 1049 it is exactly W old: still inside the closed interval [t − W, t].
        assert!(!w.check(1049, l).allowed);
        // From 1050 it no longer counts, although it is only 1001 ms old.
        assert!(w.check(1050, l).allowed);
    }

    #[test]
    fn retry_after_is_the_exact_instant_one_fits() {
        let l = lim("4/1s");
        let mut w = Window::new();
        for t in [0, 120, 130, 700] {
            assert!(w.check(t, l).allowed);
        }
        // Buckets: 0 -> 1, 2 -> 2, 14 -> 1. One must expire: bucket 0 at 21·50 = 1050.
        let v = w.check(800, l);
        assert_eq!((v.allowed, v.wait_ms), (false, 250));
        assert!(!w.check(1049, l).allowed);
        assert!(w.check(1050, l).allowed);
        // Now buckets 2 (2), 14 (1), 21 (1): full again; next expiry is bucket 2 at 1150.
        let v = w.check(1060, l);
        assert_eq!((v.allowed, v.wait_ms), (false, 90));
    }

    #[test]
    fn retry_after_when_over_limit_after_a_lower_limit() {
        let mut w = Window::new();
        let big = lim("10/1s");
        for t in 0..10u64 {
            assert!(w.check(t * 100, big).allowed); // buckets 0,2,4,..,18
        }
        // Same window, N lowered to 3 (a reload): 10 held, need 8 to expire -> bucket 14.
        let small = lim("3/1s");
        let v = w.check(950, small);
        assert!(!v.allowed);
        assert_eq!(v.wait_ms, (14 + 21) * 50 - 950);
        assert!(!w.check(1749, small).allowed);
        assert!(w.check(1750, small).allowed);
    }

    #[test]
    fn allowed_wait_is_when_quota_next_grows() {
        let l = lim("10/1m"); // g = 3000 ms
        let mut w = Window::new();
        let v = w.check(4000, l); // bucket 1, expires at 22·3000 = 66000
        assert_eq!((v.allowed, v.remaining, v.wait_ms), (true, 9, 62_000));
        let v = w.check(10_000, l);
        assert_eq!(v.wait_ms, 56_000);
    }

    #[test]
    fn a_long_pause_clears_everything() {
        let l = lim("2/1s");
        let mut w = Window::new();
        assert!(w.check(0, l).allowed);
        assert!(w.check(0, l).allowed);
        assert!(!w.check(500, l).allowed);
        assert!(!w.is_idle(1049));
        assert!(w.is_idle(1050));
        let v = w.check(1_000_000, l);
        assert_eq!((v.allowed, v.remaining), (true, 1));
    }

    #[test]
    fn stale_clock_reading_never_rewinds() {
        let l = lim("2/1s");
        let mut w = Window::new();
        assert!(w.check(2000, l).allowed); // bucket 40
        assert!(w.check(2000, l).allowed);
        // A caller whose reading is 3 buckets old is counted in head's bucket.
        let v = w.check(1850, l);
        assert!(!v.allowed);
        assert_eq!(v.wait_ms, (40 + 21) * 50 - 1850);
    }

    #[test]
    fn window_change_keeps_every_admission() {
        let mut w = Window::new();
        for _ in 0..5 {
            assert!(w.check(0, lim("5/1s")).allowed);
        }
        // Reload to 5/1m: the 5 admissions count for a full new minute.
        let l = lim("5/1m");
        assert!(!w.check(100, l).allowed);
        assert!(!w.check(62_999, l).allowed);
        assert!(w.check(63_000, l).allowed);
    }

    #[test]
    fn ring_wraps_across_many_windows() {
        let l = lim("1/1s");
        let mut w = Window::new();
        let mut t = 0;
        // One request every 1050 ms (one window plus one bucket) is always admitted.
        for _ in 0..200 {
            assert!(w.check(t, l).allowed, "at {t}");
            assert!(!w.check(t + 1000, l).allowed);
            t += 1050;
        }
    }
}
