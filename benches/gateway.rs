//! Criterion micro-benches of the request path's cheap steps: route match, client IP, errors.
//!
//! Groups:
//! - `route_match/{10,100,1000}`: `normalize_path` + `RouteTable::find` on a table of N routes
//!   (hit at depth 3 below a prefix, and a miss), the lookup the pipeline runs per request;
//!   `find_only` is the table lookup without normalization.
//! - `client_ip`: `TrustedProxies::client_ip` with no trusted proxies, and with a trusted peer
//!   and a 3-hop `X-Forwarded-For`.
//! - `error_render`: `Reject::problem` + `error::render` in the partner and OAuth styles.
//!
//! JWT verification and rate-limit checks live in `benches/jwt.rs` and `benches/ratelimit.rs`.
//! Run: `cargo bench --bench gateway` (add `-- route_match` to pick a group).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use portcullis::client_ip::TrustedProxies;
use portcullis::error::{ErrorStyle, Reject, render};
use portcullis::route::{Found, RouteTable, normalize_path, normalize_prefix};

/// A table of `n` routes shaped like a real API: `/v1/<area>/<resource-i>/`, some with methods.
fn table(n: usize) -> RouteTable<usize> {
    let mut t = RouteTable::default();
    let areas = ["partner", "admin", "billing", "users", "reports"];
    for i in 0..n {
        let prefix = format!("/v1/{}/resource-{i}/", areas[i % areas.len()]);
        let prefix = normalize_prefix(&prefix).expect("valid prefix");
        let methods = (i % 3 == 0).then(|| vec![Method::GET, Method::POST]);
        t.insert(prefix, None, methods, i);
    }
    t
}

fn route_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_match");
    for n in [10usize, 100, 1000] {
        let t = table(n);
        let last = n - 1;
        let area = ["partner", "admin", "billing", "users", "reports"][last % 5];
        let hit = format!("/v1/{area}/resource-{last}/items/42/details");
        let miss = "/v2/unknown/path/with/segments".to_string();
        g.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, p| {
            b.iter(|| {
                let path = normalize_path(black_box(p)).expect("valid path");
                match t.find(&Method::GET, None, &path) {
                    Found::Route(r) => *r,
                    _ => usize::MAX,
                }
            })
        });
        // The table lookup alone, on an already normalized path.
        let normalized = normalize_path(&hit).expect("valid path");
        g.bench_with_input(BenchmarkId::new("find_only", n), &normalized, |b, p| {
            b.iter(|| match t.find(&Method::GET, None, black_box(p)) {
                Found::Route(r) => *r,
                _ => usize::MAX,
            })
        });
        g.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, p| {
            b.iter(|| {
                let path = normalize_path(black_box(p)).expect("valid path");
                matches!(t.find(&Method::GET, None, &path), Found::NotFound)
            })
        });
    }
    // Normalization alone, on a path that needs work (dot segments, escapes, `//`).
    g.bench_function("normalize_messy", |b| {
        b.iter(|| normalize_path(black_box("/v1/partner//user/./%7Esmith/../items/%2f42")))
    });
    g.finish();
}

fn client_ip(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_ip");
    let none = TrustedProxies::default();
    let trusted = TrustedProxies::new(vec![
        "10.0.0.0/8".parse().expect("cidr"),
        "192.168.0.0/16".parse().expect("cidr"),
        "127.0.0.1/32".parse().expect("cidr"),
    ]);
    let public: IpAddr = "203.0.113.9".parse().expect("ip");
    let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
    let empty = HeaderMap::new();
    let mut xff = HeaderMap::new();
    xff.append(
        "x-forwarded-for",
        "198.51.100.7, 192.168.1.4".parse().expect("header"),
    );
    xff.append("x-forwarded-for", "10.1.2.3".parse().expect("header"));

    g.bench_function("no_trusted_proxies", |b| {
        b.iter(|| none.client_ip(black_box(public), black_box(&xff)))
    });
    g.bench_function("untrusted_peer", |b| {
        b.iter(|| trusted.client_ip(black_box(public), black_box(&xff)))
    });
    g.bench_function("trusted_peer_no_xff", |b| {
        b.iter(|| trusted.client_ip(black_box(proxy), black_box(&empty)))
    });
    g.bench_function("trusted_peer_xff_3_hops", |b| {
        b.iter(|| trusted.client_ip(black_box(proxy), black_box(&xff)))
    });
    g.finish();
}

fn error_render(c: &mut Criterion) {
    let mut g = c.benchmark_group("error_render");
    let rejects = [
        ("not_found", Reject::NotFound),
        (
            "method_not_allowed",
            Reject::MethodNotAllowed {
                allow: "GET, POST, HEAD".into(),
            },
        ),
        (
            "rate_limited",
            Reject::RateLimited {
                retry_after_secs: 17,
            },
        ),
    ];
    let rid = "req_01HZX3Q9V6K4M2N8P0R5T7W9Y1";
    for (name, reject) in &rejects {
        for (style_name, style) in [
            ("partner", ErrorStyle::Partner),
            ("oauth", ErrorStyle::OAuth),
        ] {
            g.bench_function(format!("{name}/{style_name}"), |b| {
                b.iter(|| {
                    let p = black_box(reject).problem();
                    render(&p, style, black_box(rid))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, route_match, client_ip, error_render);
criterion_main!(benches);
