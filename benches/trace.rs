//! Trace-context micro-benches: the per-request cost of starting or continuing a trace and
//! formatting the `traceparent` the upstream receives (the work every request does).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use portcullis::trace::{TRACEPARENT, TRACESTATE, TraceContext};

fn bench_trace(c: &mut Criterion) {
    let mut g = c.benchmark_group("trace");
    let empty = HeaderMap::new();
    g.bench_function("new trace + traceparent", |b| {
        b.iter(|| {
            let ctx = TraceContext::start(black_box(&empty), false, 1.0);
            black_box(ctx.traceparent())
        })
    });
    let mut incoming = HeaderMap::new();
    incoming.insert(
        TRACEPARENT,
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    g.bench_function("continued trace + traceparent", |b| {
        b.iter(|| {
            let ctx = TraceContext::start(black_box(&incoming), true, 1.0);
            black_box(ctx.traceparent())
        })
    });
    incoming.insert(
        TRACESTATE,
        HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
    g.bench_function("continued trace with tracestate", |b| {
        b.iter(|| {
            let ctx = TraceContext::start(black_box(&incoming), true, 1.0);
            black_box(ctx.traceparent())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_trace);
criterion_main!(benches);
