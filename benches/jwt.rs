//! Criterion bench: bearer verification per algorithm with and without the verified-token cache, and the API-key check.

#[path = "../tests/auth_support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::auth::{AuthPolicy, Authenticator, generate_api_key};
use support::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-secret";

struct Fixture {
    cached: Authenticator,
    uncached: Authenticator,
    tokens: Vec<(&'static str, String)>,
    api_headers: HeaderMap,
}

fn fixture() -> Fixture {
    let dir = temp_dir("bench");
    let rsa = rsa_key();
    let es = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ed = ed_key();
    write(&dir, "hs.secret", SECRET);
    write(&dir, "rsa.pem", &rsa.public_pem);
    write(&dir, "es.pem", &es.public_pem);
    write(&dir, "ed.pem", &ed.public_pem);
    let (api_key, api_hash) = generate_api_key();
    let body = |cache: usize| {
        format!(
            r#"
[jwt]
issuers = ["https://issuer.test"]
audiences = ["api://gateway"]
cache_entries = {cache}
[[jwt.keys]]
kid = "hs"
alg = "HS256"
secret = "file:hs.secret"
[[jwt.keys]]
kid = "rs"
alg = "RS256"
pem_file = "rsa.pem"
[[jwt.keys]]
kid = "ps"
alg = "PS256"
pem_file = "rsa.pem"
[[jwt.keys]]
kid = "es"
alg = "ES256"
pem_file = "es.pem"
[[jwt.keys]]
kid = "ed"
alg = "EdDSA"
pem_file = "ed.pem"
[[apps]]
client_id = "bench"
key_hash = "{api_hash}"
scopes = ["meetings:read"]
"#
        )
    };
    let (_c1, s1) = state();
    let (_c2, s2) = state();
    let cached = build(&dir, &body(10_000), &s1);
    let uncached = build(&dir, &body(0), &s2);
    let c = claims();
    let tokens = vec![
        (
            "HS256",
            mint(
                Algorithm::HS256,
                Some("hs"),
                &EncodingKey::from_secret(SECRET),
                &c,
            ),
        ),
        (
            "RS256",
            mint(Algorithm::RS256, Some("rs"), &rsa.encoding, &c),
        ),
        (
            "PS256",
            mint(Algorithm::PS256, Some("ps"), &rsa.encoding, &c),
        ),
        (
            "ES256",
            mint(Algorithm::ES256, Some("es"), &es.encoding, &c),
        ),
        (
            "EdDSA",
            mint(Algorithm::EdDSA, Some("ed"), &ed.encoding, &c),
        ),
    ];
    let mut api_headers = HeaderMap::new();
    api_headers.insert("x-client-id", HeaderValue::from_static("bench"));
    api_headers.insert("x-api-key", HeaderValue::from_str(&api_key).expect("key"));
    Fixture {
        cached,
        uncached,
        tokens,
        api_headers,
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("jwt_verify");
    for (alg, token) in &f.tokens {
        let headers = bearer(token);
        for (mode, auth) in [("uncached", &f.uncached), ("cached", &f.cached)] {
            let ok = auth
                .authenticate(AuthPolicy::Bearer, &headers)
                .now_or_never()
                .and_then(Result::ok)
                .flatten();
            assert!(ok.is_some(), "{alg} {mode} refused");
            group.bench_function(format!("{alg}/{mode}"), |b| {
                b.iter(|| {
                    black_box(
                        auth.authenticate(AuthPolicy::Bearer, black_box(&headers))
                            .now_or_never(),
                    )
                })
            });
        }
    }
    group.finish();
    let ok = f
        .cached
        .authenticate(AuthPolicy::ApiKey, &f.api_headers)
        .now_or_never()
        .and_then(Result::ok)
        .flatten();
    assert!(ok.is_some(), "api key refused");
    c.bench_function("api_key/sha256", |b| {
        b.iter(|| {
            black_box(
                f.cached
                    .authenticate(AuthPolicy::ApiKey, black_box(&f.api_headers))
                    .now_or_never(),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
