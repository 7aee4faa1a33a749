//! Rate limiter concurrency: racing checks on one key admit exactly N; racing inserts respect the cap.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use portcullis::clock::{ManualClock, SystemClock};
use portcullis::ratelimit::{Limit, MemoryLimiter, Settings};

fn limit(max: u32) -> Limit {
    Limit {
        max,
        window: Duration::from_secs(60),
    }
}

#[test]
fn two_n_threads_on_one_new_key_admit_exactly_n() {
    const N: u32 = 64;
    for round in 0..10 {
        let limiter = Arc::new(MemoryLimiter::new(Settings::default(), ManualClock::new(0)));
        let barrier = Arc::new(Barrier::new(2 * N as usize));
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, round));
        let handles: Vec<_> = (0..2 * N)
            .map(|_| {
                let (limiter, barrier) = (Arc::clone(&limiter), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    limiter.check("user", ip, limit(N))
                })
            })
            .collect();
        let decisions: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let allowed = decisions.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, N as usize, "round {round}");
        // Each admitted request saw a distinct remaining value: N-1 down to 0.
        let mut rem: Vec<u32> = decisions
            .iter()
            .filter(|d| d.allowed)
            .map(|d| d.remaining)
            .collect();
        rem.sort_unstable();
        assert_eq!(rem, (0..N).collect::<Vec<_>>());
        assert!(
            decisions
                .iter()
                .filter(|d| !d.allowed)
                .all(|d| d.retry_after_secs >= 1)
        );
        assert_eq!(limiter.tracked(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_n_tasks_on_one_key_admit_exactly_n() {
    const N: u32 = 500;
    let limiter = Arc::new(MemoryLimiter::new(
        Settings::default(),
        SystemClock::shared(),
    ));
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200));
    let tasks: Vec<_> = (0..2 * N)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.check("user", ip, limit(N)).allowed })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, N as usize);
}

#[test]
fn racing_new_clients_never_exceed_the_cap() {
    const CAP: usize = 50;
    const THREADS: usize = 8;
    let limiter = Arc::new(MemoryLimiter::new(
        Settings {
            max_tracked_clients: CAP,
            ..Settings::default()
        },
        ManualClock::new(0),
    ));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS as u32)
        .map(|t| {
            let (limiter, barrier) = (Arc::clone(&limiter), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                for i in 0..100u32 {
                    let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + t * 1000 + i));
                    limiter.check("user", ip, limit(1000));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(limiter.tracked(), CAP);
    assert_eq!(limiter.overflowed(), (THREADS * 100 - CAP) as u64);
}
