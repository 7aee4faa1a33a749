//! Tests of the in-memory limiter: windows, keys, sweeping, the cap and its overflow windows.

use super::*;
use crate::clock::ManualClock;
use std::net::{Ipv4Addr, Ipv6Addr};

fn limiter(settings: Settings) -> (MemoryLimiter, Arc<ManualClock>) {
    let clock = ManualClock::new(1_700_000_000);
    (MemoryLimiter::new(settings, clock.clone()), clock)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lim(s: &str) -> Limit {
    Limit::parse(s).unwrap()
}

#[test]
fn limiter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MemoryLimiter>();
}

#[test]
fn key_is_20_bytes() {
    assert_eq!(std::mem::size_of::<Key>(), 20);
    assert_eq!(std::mem::size_of::<(Key, Window)>(), 72);
}

#[test]
fn decision_fields_and_retry_after() {
    let (l, clock) = limiter(Settings::default());
    let limit = lim("2/1m"); // g = 3 s
    let a = ip("192.0.2.1");
    let d = l.check("user", a, limit);
    assert_eq!(
        d,
        Decision {
            allowed: true,
            limit,
            remaining: 1,
            reset_secs: 63,
            retry_after_secs: 0
        }
    );
    clock.advance_millis(10_500);
    assert!(l.check("user", a, limit).allowed);
    clock.advance_millis(1_000); // t = 11.5 s
    let d = l.check("user", a, limit);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    // The first request's bucket [0, 3 s) expires at 63 s: 51.5 s from now -> 52.
    assert_eq!((d.retry_after_secs, d.reset_secs), (52, 52));
    clock.advance_millis(51_000); // 51 s later: still 0.5 s short
    assert!(!l.check("user", a, limit).allowed);
    clock.advance_millis(500);
    assert!(l.check("user", a, limit).allowed);
}

#[test]
fn classes_and_clients_are_separate_keys() {
    let (l, _) = limiter(Settings::default());
    let limit = lim("1/1m");
    assert!(l.check("user", ip("192.0.2.1"), limit).allowed);
    assert!(!l.check("user", ip("192.0.2.1"), limit).allowed);
    assert!(l.check("admin", ip("192.0.2.1"), limit).allowed);
    assert!(l.check("user", ip("192.0.2.2"), limit).allowed);
    assert_eq!(l.tracked(), 3);
}

#[test]
fn ipv6_grouped_by_prefix() {
    let (l, _) = limiter(Settings::default());
    let limit = lim("2/1m");
    assert!(l.check("c", ip("2001:db8:1:2::1"), limit).allowed);
    // Same /64, different interface id: same key.
    assert!(
        l.check("c", ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), limit)
            .allowed
    );
    assert!(!l.check("c", ip("2001:db8:1:2::99"), limit).allowed);
    // Next /64: its own key.
    assert!(l.check("c", ip("2001:db8:1:3::1"), limit).allowed);
    assert_eq!(l.tracked(), 2);
}

#[test]
fn ipv6_prefix_is_configurable() {
    for (prefix, other, same) in [
        (48, "2001:db8:1:ffff::1", true),
        (48, "2001:db8:2::1", false),
        (128, "2001:db8:1::2", false),
        (0, "fe80::1", true),
        (200, "2001:db8:1::2", false),
    ] {
        let (l, _) = limiter(Settings {
            ipv6_prefix: prefix,
            ..Settings::default()
        });
        assert!(l.check("c", ip("2001:db8:1::1"), lim("1/1m")).allowed);
        let second = l.check("c", ip(other), lim("1/1m")).allowed;
        assert_eq!(second, !same, "/{prefix} {other}");
    }
}

#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_client_and_never_an_ipv6_group() {
    let (l, _) = limiter(Settings {
        ipv6_prefix: 0, // every native IPv6 client in one group
        ..Settings::default()
    });
    let limit = lim("1/1m");
    assert!(
        l.check("c", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), limit)
            .allowed
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(!l.check("c", mapped, limit).allowed);
    assert!(l.check("c", IpAddr::V6(Ipv6Addr::LOCALHOST), limit).allowed);
    assert!(l.check("c", ip("0.0.0.0"), limit).allowed);
}

#[test]
fn sweep_evicts_only_idle_keys() {
    let (l, clock) = limiter(Settings::default());
    let short = lim("5/1s"); // idle 1050 ms after its last admission's bucket
    let long = lim("5/1m");
    l.check("s", ip("192.0.2.1"), short);
    l.check("l", ip("192.0.2.2"), long);
    assert_eq!(l.sweep(), 0);
    clock.advance_millis(1049);
    assert_eq!(l.sweep(), 0);
    clock.advance_millis(1);
    assert_eq!(l.sweep(), 1);
    assert_eq!(l.tracked(), 1);
    clock.advance_millis(62_000);
    assert_eq!(l.sweep(), 1);
    assert_eq!(l.tracked(), 0);
    // A swept client starts afresh, exactly as if its window had been kept.
    assert_eq!(l.check("s", ip("192.0.2.1"), short).remaining, 4);
}

#[test]
fn refused_only_clients_are_not_kept_alive() {
    let (l, clock) = limiter(Settings::default());
    let limit = lim("1/1s");
    let a = ip("192.0.2.1");
    assert!(l.check("c", a, limit).allowed);
    for _ in 0..20 {
        clock.advance_millis(50);
        assert!(!l.check("c", a, limit).allowed);
    }
    clock.advance_millis(50); // t = 1050
    assert_eq!(l.sweep(), 1);
}

#[test]
fn full_store_never_evicts_an_active_client() {
    let (l, clock) = limiter(Settings {
        max_tracked_clients: 3,
        ..Settings::default()
    });
    let limit = lim("3/1m");
    let abuser = ip("198.51.100.7");
    for _ in 0..3 {
        assert!(l.check("c", abuser, limit).allowed);
    }
    assert!(!l.check("c", abuser, limit).allowed);
    // A flood of fresh addresses fills the store and then shares one overflow window.
    let mut admitted = 0;
    for i in 0..1000u32 {
        clock.advance_millis(10);
        let d = l.check("c", IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), limit);
        admitted += u32::from(d.allowed);
    }
    assert_eq!(l.tracked(), 3);
    // 2 got their own windows (1 each), the other 998 shared 3 per minute.
    assert_eq!(admitted, 2 + 3);
    assert_eq!(l.overflowed(), 998);
    // The abuser's counters survived the flood: still refused.
    let d = l.check("c", abuser, limit);
    assert!(!d.allowed);
    assert!(d.retry_after_secs >= 1);
}

#[test]
fn full_store_sweeps_idle_keys_to_make_room() {
    let (l, clock) = limiter(Settings {
        max_tracked_clients: 2,
        ..Settings::default()
    });
    let limit = lim("1/1s");
    assert!(l.check("c", ip("192.0.2.1"), limit).allowed);
    assert!(l.check("c", ip("192.0.2.2"), limit).allowed);
    // Full and nobody idle: the third client goes to the overflow window.
    assert!(l.check("c", ip("192.0.2.3"), limit).allowed);
    assert!(!l.check("c", ip("192.0.2.4"), limit).allowed);
    assert_eq!(l.overflowed(), 2);
    // Once the first two are idle, a new client triggers a sweep and gets its own key.
    clock.advance_millis(2000);
    let d = l.check("c", ip("192.0.2.5"), limit);
    assert!(d.allowed);
    assert_eq!(l.tracked(), 1);
    assert_eq!(l.overflowed(), 2);
}

#[test]
fn a_client_moving_from_overflow_to_its_own_window_keeps_its_count() {
    let (l, clock) = limiter(Settings {
        max_tracked_clients: 1,
        ..Settings::default()
    });
    let limit = lim("3/1m");
    let short = lim("1/1s");
    let abuser = ip("198.51.100.7");
    assert!(l.check("c", ip("192.0.2.1"), short).allowed); // fills the store
    for _ in 0..3 {
        assert!(l.check("c", abuser, limit).allowed); // overflow window
    }
    assert!(!l.check("c", abuser, limit).allowed);
    // The tracked client goes idle; the abuser's next request sweeps it and gets its own
    // window, which must still hold the 3 admissions.
    clock.advance_millis(2000);
    let d = l.check("c", abuser, limit);
    assert!(!d.allowed, "2N in one window after leaving overflow");
    assert_eq!(l.tracked(), 1);
    assert_eq!(d.retry_after_secs, 61); // the overflow bucket [0, 3 s) expires at 63 s
    // Once the overflow window is idle, new clients start empty again.
    clock.advance_millis(62_000);
    assert_eq!(l.sweep(), 1);
    assert_eq!(l.check("c", ip("192.0.2.9"), limit).remaining, 2);
}

#[test]
fn overflow_windows_are_per_class() {
    let (l, _) = limiter(Settings {
        max_tracked_clients: 0,
        ..Settings::default()
    });
    let limit = lim("1/1m");
    assert!(l.check("a", ip("192.0.2.1"), limit).allowed);
    assert!(!l.check("a", ip("192.0.2.2"), limit).allowed);
    assert!(l.check("b", ip("192.0.2.3"), limit).allowed);
    assert_eq!(l.tracked(), 0);
}

#[tokio::test]
async fn sweeper_sweeps_and_stops_when_the_limiter_is_dropped() {
    let clock = ManualClock::new(0);
    let l = Arc::new(MemoryLimiter::new(Settings::default(), clock.clone()));
    l.check("c", ip("192.0.2.1"), lim("1/1s"));
    let task = l.spawn_sweeper(Duration::from_millis(1));
    clock.advance_secs(5);
    for _ in 0..10_000 {
        if l.tracked() == 0 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(l.tracked(), 0);
    drop(l);
    let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(matches!(ended, Ok(Ok(()))));
}
