//! Rate limiter micro-benches: check cost on existing and new keys, with 1 million tracked keys, and measured bytes per key.
//!
//! Memory is measured with a counting global allocator: live heap bytes after tracking K keys
//! minus before, divided by K. It includes the hash table's slack at its current load factor,
//! which is why it is printed for several K.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use portcullis::clock::{Clock, SystemClock};
use portcullis::ratelimit::{Limit, MemoryLimiter, Settings};

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates counters; the GlobalAlloc contract is upheld by `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Never refuses in a bench run (at most 65,535 checks per key per 3 minutes), so every check
/// takes the admit path.
const OPEN: Limit = Limit {
    max: u32::MAX,
    window: Duration::from_secs(3600),
};

/// A day window that the skewed clock never leaves during a run.
const DAY: Limit = Limit {
    max: u32::MAX,
    window: Duration::from_secs(86_400),
};

/// Never refuses; idle 1.05 s after its last admission.
const OPEN_1S: Limit = Limit {
    max: u32::MAX,
    window: Duration::from_secs(1),
};

/// The system clock plus an offset the bench moves forward between timed chunks.
#[derive(Default)]
struct Skewed {
    sys: SystemClock,
    extra: AtomicU64,
}

impl Clock for Skewed {
    fn now_millis(&self) -> u64 {
        self.sys.now_millis() + self.extra.load(Ordering::Relaxed)
    }

    fn unix_secs(&self) -> u64 {
        self.sys.unix_secs()
    }
}

fn ip(i: u32) -> IpAddr {
    // Spread the addresses; the map hashes them anyway.
    IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761)))
}

fn limiter(cap: usize) -> Arc<MemoryLimiter> {
    Arc::new(MemoryLimiter::new(
        Settings {
            max_tracked_clients: cap,
            ..Settings::default()
        },
        SystemClock::shared(),
    ))
}

fn populated(keys: u32) -> Arc<MemoryLimiter> {
    let l = limiter(usize::MAX);
    for i in 0..keys {
        l.check("user", ip(i), OPEN);
    }
    l
}

fn report_memory() {
    println!("ratelimit memory (counting allocator, live heap bytes per tracked key):");
    for keys in [10_000u32, 100_000, 300_000, 1_000_000] {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let l = populated(keys);
        let after = LIVE_BYTES.load(Ordering::Relaxed);
        assert_eq!(l.tracked(), keys as usize);
        let per_key = (after - before) as f64 / f64::from(keys);
        println!(
            "  {keys:>9} keys: {:>7.1} MiB, {per_key:.1} bytes/key",
            (after - before) as f64 / (1024.0 * 1024.0)
        );
        drop(l);
    }
    let l = populated(1000);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    for i in 0..100_000u32 {
        black_box(l.check("user", ip(i % 1000), OPEN));
    }
    println!(
        "  allocations in 100,000 checks on existing keys: {}",
        ALLOCS.load(Ordering::Relaxed) - allocs
    );
}

fn bench_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit_check");

    // Calibration: the same call measured 28 ns on a quiet box (notes/perf.md 5.4); the ratio
    // says how loaded this run's machine was.
    g.bench_function("calibration_instant_now", |b| {
        b.iter(|| black_box(Instant::now()))
    });

    // A hot set of 1024 keys (one key alone would fill its 16-bit bucket counter and bench
    // the refusal path instead).
    let hot = populated(1024);
    let mut h = 0u32;
    g.bench_function("existing_key_1k_tracked", |b| {
        b.iter(|| {
            h = h.wrapping_add(1);
            black_box(hot.check(black_box("user"), ip(h & 1023), OPEN))
        })
    });

    let refused = limiter(1_000_000);
    let tight = Limit {
        max: 10,
        window: Duration::from_secs(3600),
    };
    for _ in 0..10 {
        refused.check("user", ip(7), tight);
    }
    g.bench_function("existing_key_refused", |b| {
        b.iter(|| black_box(refused.check(black_box("user"), black_box(ip(7)), tight)))
    });

    const MILLION: u32 = 1_000_000;
    let big = populated(MILLION);
    let mut i = 0u32;
    g.bench_function("existing_key_1m_tracked", |b| {
        b.iter(|| {
            // A pseudo-random walk over the million keys, so most lookups miss the cache.
            i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            black_box(big.check("user", ip(i % MILLION), OPEN))
        })
    });

    // New keys on top of a million: they use a 1 s window and, after each timed chunk, the
    // clock is moved 2 s on and they are swept (untimed), so the table stays near a million.
    let skew = Arc::new(Skewed::default());
    let big_new = Arc::new(MemoryLimiter::new(
        Settings {
            max_tracked_clients: usize::MAX,
            ..Settings::default()
        },
        skew.clone(),
    ));
    for i in 0..MILLION {
        big_new.check("user", ip(i), DAY);
    }
    let mut next = MILLION;
    g.bench_function("new_key_1m_tracked", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(100_000);
                let start = Instant::now();
                for _ in 0..chunk {
                    next = next.wrapping_add(1);
                    black_box(big_new.check("user", ip(next), OPEN_1S));
                }
                total += start.elapsed();
                left -= chunk;
                skew.extra.fetch_add(2000, Ordering::Relaxed);
                big_new.sweep();
            }
            total
        })
    });
    assert!(big_new.tracked() >= MILLION as usize);
    drop(big_new);
    drop(big);

    let mut fresh = limiter(usize::MAX);
    let mut n = 0u32;
    g.bench_function("new_key_empty_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(200_000);
                let start = Instant::now();
                for _ in 0..chunk {
                    n = n.wrapping_add(1);
                    black_box(fresh.check("user", ip(n), OPEN));
                }
                total += start.elapsed();
                left -= chunk;
                fresh = limiter(usize::MAX); // untimed reset
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_check);

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
