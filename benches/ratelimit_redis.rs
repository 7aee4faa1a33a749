//! Redis-backed limiter bench: one check (one EVALSHA round trip on loopback) beside the in-memory check, with p50/p99.
//!
//! Spawns its own redis-server (`--save "" --appendonly no`) on a free loopback port and skips
//! with a note when redis-server is not installed. Besides criterion's mean, a bounded loop
//! (at most 20,000 checks or 10 s) prints p50 and p99 per check for both backends, i.e. the
//! microseconds a Redis-limited request adds over an in-memory-limited one.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use portcullis::clock::SystemClock;
use portcullis::ratelimit::redis::RedisLimiter;
use portcullis::ratelimit::{Limit, Limiter, MemoryLimiter, OnBackendError, Settings};
use portcullis::state::{RedisSettings, RedisState, Startup};
use redis::IntoConnectionInfo;

/// Never refuses during a run.
const OPEN: Limit = Limit {
    max: 1_000_000,
    window: Duration::from_secs(3600),
};
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_redis() -> Option<(Server, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((Server(child), port))
}

fn limiters(rt: &tokio::runtime::Runtime, port: u16) -> (Limiter, Limiter) {
    let url = format!("redis://127.0.0.1:{port}/0");
    let settings = RedisSettings {
        info: url.as_str().into_connection_info().expect("redis url"),
        url,
        prefix: "bench:".into(),
        timeout: Duration::from_millis(200),
        store_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        startup: Startup::Retry,
        ca_pem: None,
    };
    let local = Arc::new(MemoryLimiter::new(
        Settings::default(),
        SystemClock::shared(),
    ));
    let state = rt.block_on(async { RedisState::start(settings).expect("redis state") });
    let up = rt.block_on(state.wait_up(Duration::from_secs(10)));
    assert!(up, "redis-server did not answer within 10 s");
    (
        Limiter::memory(local.clone()),
        Limiter::redis(local, RedisLimiter::new(state)),
    )
}

/// One decided check (admitted or refused: the in-memory bucket saturates at 65,535 per
/// bucket, so a long run also times the refuse path, which costs the same).
fn check(rt: &tokio::runtime::Runtime, l: &Limiter) {
    let d = rt
        .block_on(l.check("user", CLIENT, OPEN, OnBackendError::Closed))
        .expect("backend up");
    black_box(d.expect("decided"));
}

/// p50 and p99 in µs over at most 20,000 checks or 10 s.
fn percentiles(rt: &tokio::runtime::Runtime, l: &Limiter) -> (f64, f64, usize) {
    let mut lat = Vec::with_capacity(20_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lat.len() < 20_000 && Instant::now() < deadline {
        let t = Instant::now();
        check(rt, l);
        lat.push(t.elapsed());
    }
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99), lat.len())
}

fn bench(c: &mut Criterion) {
    let Some((_server, port)) = spawn_redis() else {
        println!(
            "ratelimit_redis: redis-server is not installed; skipped (apt-get install redis-server)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (memory, redis) = limiters(&rt, port);
    let mut g = c.benchmark_group("ratelimit_backend");
    g.bench_function("memory_check", |b| {
        b.iter(|| check(&rt, black_box(&memory)))
    });
    g.bench_function("redis_check_loopback", |b| {
        b.iter(|| check(&rt, black_box(&redis)))
    });
    g.finish();
    let (m50, m99, mn) = percentiles(&rt, &memory);
    let (r50, r99, rn) = percentiles(&rt, &redis);
    println!("ratelimit_backend memory: p50 {m50:.2} us, p99 {m99:.2} us ({mn} checks)");
    println!(
        "ratelimit_backend redis (loopback, 1 EVALSHA): p50 {r50:.1} us, p99 {r99:.1} us ({rn} checks)"
    );
    println!(
        "ratelimit_backend added by redis: p50 +{:.1} us, p99 +{:.1} us",
        r50 - m50,
        r99 - m99
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
