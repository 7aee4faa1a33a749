//! Criterion bench: webhook verification cost per KiB of body (signature header parsed, the
//! HMAC-SHA256 over the signed payload, the constant-time compare), for the Standard Webhooks
//! preset and a custom hex scheme, with one and with two secrets (rotation); and one replay
//! memory insert. Throughput is in bytes, so criterion prints the rate; the cost per KiB is the
//! time of the 1 KiB case (and the slope between sizes).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portcullis::webhook::replay::{self, MemoryReplay};
use portcullis::webhook::scheme::{Encoding, Part, Scheme, SecretFormat};
use portcullis::webhook::signature::{Tag, candidates, encode, matching, tag};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const OLD_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";
const SIZES: [usize; 4] = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];

fn custom() -> Scheme {
    Scheme {
        signature_header: http::HeaderName::from_static("x-contio-signature"),
        timestamp_header: http::HeaderName::from_static("x-contio-timestamp"),
        id_header: None,
        encoding: Encoding::Hex,
        prefix: String::new(),
        multiple: false,
        payload: vec![Part::Timestamp, Part::Text(".".into()), Part::Body],
        secret_format: SecretFormat::Raw,
    }
}

/// What the gateway does per request once the body is buffered.
fn verify(scheme: &Scheme, keys: &[&[u8]], header: &[u8], body: &[u8]) -> Option<Tag> {
    let offered = candidates(scheme, header).ok()?;
    let expected: Vec<Tag> = keys
        .iter()
        .map(|k| tag(k, scheme, b"msg_1", b"1700000000", body))
        .collect();
    matching(&expected, &offered)
}

fn bench_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("webhook/verify");
    for (name, scheme) in [("standard", Scheme::standard()), ("custom_hex", custom())] {
        for size in SIZES {
            let body = vec![b'x'; size];
            let header = encode(&scheme, &tag(KEY, &scheme, b"msg_1", b"1700000000", &body));
            assert!(verify(&scheme, &[KEY], header.as_bytes(), &body).is_some());
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &body, |b, body| {
                b.iter(|| {
                    verify(
                        &scheme,
                        &[KEY],
                        black_box(header.as_bytes()),
                        black_box(body),
                    )
                })
            });
            if name == "standard" {
                g.bench_with_input(
                    BenchmarkId::new("standard_two_secrets", size),
                    &body,
                    |b, body| {
                        b.iter(|| {
                            verify(
                                &scheme,
                                &[OLD_KEY, KEY],
                                black_box(header.as_bytes()),
                                black_box(body),
                            )
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let memory = MemoryReplay::new(10_000_000);
    let mut n: u64 = 0;
    c.bench_function("webhook/replay_memory_remember", |b| {
        b.iter(|| {
            n += 1;
            let key = replay::key("contio", &n.to_le_bytes());
            // Bounded: keys die 300 s after a fixed "now"; the cap keeps memory finite.
            black_box(memory.remember(key, 1_700_000_000, 1_700_000_300))
        })
    });
}

criterion_group!(benches, bench_verify, bench_replay);
criterion_main!(benches);
