//! JWKS-backed bearer authentication against a real JWKS server on 127.0.0.1:0 that counts its hits.

mod auth_support;
mod pki;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_support::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use portcullis::auth::{AuthPolicy, Authenticator};
use serde_json::{Value, json};

/// What the JWKS server serves, and how often it was asked.
#[derive(Default)]
struct Jwks {
    keys: Mutex<Vec<Value>>,
    max_age: Mutex<Option<u64>>,
    hits: AtomicUsize,
    delay_ms: AtomicU64,
}

impl Jwks {
    fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve(jwks: Arc<Jwks>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    serve_on(jwks, None).await
}

/// The JWKS server, over TLS when `tls` is given.
async fn serve_on(
    jwks: Arc<Jwks>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let jwks = jwks.clone();
            let tls = tls.clone();
            conns.spawn(async move {
                let svc = service_fn(move |_req| {
                    let jwks = jwks.clone();
                    async move {
                        jwks.hits.fetch_add(1, Ordering::SeqCst);
                        let delay = jwks.delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        let body = json!({"keys": *jwks.keys.lock().unwrap()}).to_string();
                        let mut resp = http::Response::builder()
                            .header("content-type", "application/jwk-set+json");
                        if let Some(age) = *jwks.max_age.lock().unwrap() {
                            resp = resp.header("cache-control", format!("public, max-age={age}"));
                        }
                        Ok::<_, std::convert::Infallible>(
                            resp.body(Full::new(Bytes::from(body))).unwrap(),
                        )
                    }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => drop(builder.serve_connection(TokioIo::new(stream), svc).await),
                    // ALPN offers h2 and http/1.1, as an IdP would: serve whichever was chosen.
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let auto = hyper_util::server::conn::auto::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            );
                            drop(auto.serve_connection(TokioIo::new(tls), svc).await);
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

fn config(addr: SocketAddr) -> String {
    format!(
        r#"
[jwt]
issuers = ["https://issuer.test"]
[[jwt.jwks]]
url = "http://{addr}/jwks.json"
refresh = "5m"
min_refresh = "30s"
max_refresh = "1h"
unknown_kid_cooldown = "30s"
"#
    )
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/jwks.json")
}

async fn ok(auth: &Authenticator, token: &str) -> bool {
    auth.authenticate(AuthPolicy::Bearer, &bearer(token))
        .await
        .is_ok()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..60 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kid_one_fetch_for_twenty_concurrent_requests_then_cooldown() {
    let (clock, state) = state();
    let k1 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let k2 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let k3 = ed_key();
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES256", "P-256")]);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-kid");
    let auth = Arc::new(build(&dir, &config(addr), &state));
    auth.start().await;
    assert_eq!(jwks.hits(), 1, "fetched once at start");
    let t1 = mint(Algorithm::ES256, Some("k1"), &k1.encoding, &claims());
    assert!(ok(&auth, &t1).await);

    // The issuer rotates in k2; 20 requests with k2 arrive together: one refetch serves all.
    jwks.set_keys(vec![
        ec_jwk(&k1, "k1", "ES256", "P-256"),
        ec_jwk(&k2, "k2", "ES256", "P-256"),
    ]);
    jwks.delay_ms.store(200, Ordering::SeqCst);
    let t2 = mint(Algorithm::ES256, Some("k2"), &k2.encoding, &claims());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let auth = auth.clone();
            let t2 = t2.clone();
            tokio::spawn(async move { ok(&auth, &t2).await })
        })
        .collect();
    for r in futures_util::future::join_all(tasks).await {
        assert!(r.unwrap(), "k2 token refused");
    }
    assert_eq!(
        jwks.hits(),
        2,
        "exactly one refetch for 20 concurrent unknown-kid requests"
    );
    jwks.delay_ms.store(0, Ordering::SeqCst);

    // Another unknown kid within the cooldown: refused without a fetch.
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES256", "P-256"), ed_jwk(&k3, "k3")]);
    let t3 = mint(Algorithm::EdDSA, Some("k3"), &k3.encoding, &claims());
    clock.advance_secs(10);
    assert_eq!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&t3)).await),
        "unknown signing key (kid)"
    );
    assert_eq!(jwks.hits(), 2, "no fetch within the cooldown");
    let stats = state.jwks_stats(&url(addr)).unwrap();
    assert_eq!(stats.unknown_kid_refetches, 1);
    assert!(stats.unknown_kid_refusals >= 1);

    // After the cooldown the unknown kid triggers a fetch again; k2 left the set.
    clock.advance_secs(21);
    assert!(ok(&auth, &t3).await);
    assert_eq!(jwks.hits(), 3);
    // k2 tokens were cached while k2 was served; a fresh k2 token is now unknown (cooldown).
    let mut c = claims();
    c["jti"] = json!("fresh");
    let t2_fresh = mint(Algorithm::ES256, Some("k2"), &k2.encoding, &c);
    assert!(!ok(&auth, &t2_fresh).await);
    assert_eq!(jwks.hits(), 3);
}

#[tokio::test]
async fn jwks_host_down_keeps_last_good_keys() {
    let (clock, state) = state();
    let k1 = ec_key(&rcgen::PKCS_ECDSA_P384_SHA384);
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES384", "P-384")]);
    let (addr, server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-down");
    let auth = build(&dir, &config(addr), &state);
    auth.start().await;
    server.abort();
    let _ = server.await;
    // The background refresh comes due (5 min, no max-age) and fails against the dead host.
    clock.advance_secs(301);
    wait_for("a failed refresh", || {
        state.jwks_stats(&url(addr)).unwrap().failures >= 1
    })
    .await;
    let mut c = claims();
    c["jti"] = json!("after-outage");
    let t = mint(Algorithm::ES384, Some("k1"), &k1.encoding, &c);
    assert!(ok(&auth, &t).await, "last good keys keep serving");
    // An unknown kid while the host is down: one attempt, then refused; old keys still fine.
    let t_unknown = mint(Algorithm::ES384, Some("k9"), &k1.encoding, &claims());
    assert!(!ok(&auth, &t_unknown).await);
    assert!(ok(&auth, &t).await);
    let stats = state.jwks_stats(&url(addr)).unwrap();
    assert_eq!(stats.keys, 1);
    assert!(stats.failures >= 2, "{stats:?}");
}

#[tokio::test]
async fn refresh_honours_max_age_within_bounds() {
    let (clock, state) = state();
    let k1 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES256", "P-256")]);
    *jwks.max_age.lock().unwrap() = Some(120);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-age");
    let auth = build(&dir, &config(addr), &state);
    auth.start().await;
    let stats = || state.jwks_stats(&url(addr)).unwrap();
    assert_eq!(stats().refresh_interval_secs, 120);

    // Not due yet: no fetch.
    clock.advance_secs(100);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(jwks.hits(), 1);

    // Due: refetched; max-age=5 is clamped up to min_refresh (30 s).
    *jwks.max_age.lock().unwrap() = Some(5);
    clock.advance_secs(21);
    wait_for("second fetch", || jwks.hits() == 2).await;
    wait_for("interval update", || stats().refresh_interval_secs == 30).await;

    // max-age above max_refresh is clamped down to 1 h.
    *jwks.max_age.lock().unwrap() = Some(999_999);
    clock.advance_secs(31);
    wait_for("third fetch", || jwks.hits() == 3).await;
    wait_for("interval update", || stats().refresh_interval_secs == 3600).await;

    // No max-age: the configured refresh (5 min).
    *jwks.max_age.lock().unwrap() = None;
    clock.advance_secs(3601);
    wait_for("fourth fetch", || jwks.hits() == 4).await;
    wait_for("interval update", || stats().refresh_interval_secs == 300).await;
    let mut c = claims();
    c["exp"] = json!(NOW + 10_000);
    let t = mint(Algorithm::ES256, Some("k1"), &k1.encoding, &c);
    assert!(ok(&auth, &t).await);
}

#[tokio::test]
async fn jwks_cache_survives_a_reload() {
    let (_clock, state) = state();
    let k1 = ed_key();
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ed_jwk(&k1, "k1")]);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-reload");
    let first = build(&dir, &config(addr), &state);
    first.start().await;
    assert_eq!(jwks.hits(), 1);
    let second = build(&dir, &config(addr), &state);
    second.start().await;
    drop(first);
    assert_eq!(jwks.hits(), 1, "the reload reused the cached key set");
    let t = mint(Algorithm::EdDSA, Some("k1"), &k1.encoding, &claims());
    assert!(ok(&second, &t).await);
}

#[tokio::test]
async fn jwks_keys_are_bound_to_their_algorithm() {
    let (_clock, state) = state();
    let rsa = rsa_key();
    let es = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let jwks = Arc::new(Jwks::default());
    // One key names RS256; one names no alg (the config's algorithms list applies); an HMAC
    // key in a JWKS is never used.
    let mut es_noalg = ec_jwk(&es, "es", "ES256", "P-256");
    es_noalg.as_object_mut().unwrap().remove("alg");
    jwks.set_keys(vec![
        rsa_jwk("r", "RS256"),
        es_noalg,
        json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(b"0123456789abcdef0123456789abcdef")}),
    ]);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-alg");
    let cfg = config(addr).replace(
        "refresh = \"5m\"",
        "refresh = \"5m\"\nalgorithms = [\"ES256\"]",
    );
    let auth = build(&dir, &cfg, &state);
    auth.start().await;
    assert_eq!(state.jwks_stats(&url(addr)).unwrap().keys, 2);
    assert!(
        ok(
            &auth,
            &mint(Algorithm::RS256, Some("r"), &rsa.encoding, &claims())
        )
        .await
    );
    assert!(
        ok(
            &auth,
            &mint(Algorithm::ES256, Some("es"), &es.encoding, &claims())
        )
        .await
    );
    // PS256 with the RS256 key, HS256 with the RSA public key as secret, the oct key: refused.
    assert!(
        !ok(
            &auth,
            &mint(Algorithm::PS256, Some("r"), &rsa.encoding, &claims())
        )
        .await
    );
    let forged = mint(
        Algorithm::HS256,
        Some("r"),
        &jsonwebtoken::EncodingKey::from_secret(rsa.public_pem.as_bytes()),
        &claims(),
    );
    assert!(!ok(&auth, &forged).await);
    let hs = mint(
        Algorithm::HS256,
        Some("h"),
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        &claims(),
    );
    assert!(!ok(&auth, &hs).await);
}

#[tokio::test]
async fn https_jwks_of_a_private_idp_needs_its_ca_file() {
    let dir = temp_dir("jwks-ca");
    let es = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&es, "es", "ES256", "P-256")]);
    let (addr, _server) = serve_on(jwks.clone(), Some(pki::private_ca_acceptor(&dir, "idp"))).await;
    let token = mint(Algorithm::ES256, Some("es"), &es.encoding, &claims());
    let cfg = |ca: &str| {
        format!(
            "[jwt]\nissuers = [\"https://issuer.test\"]\n[[jwt.jwks]]\nurl = \"https://{addr}/jwks.json\"\n{ca}\n"
        )
    };
    // Trusting the IdP's CA: the keys are fetched over TLS and the token verifies.
    let (_clock, state) = state();
    let auth = build(&dir, &cfg("ca_file = \"internal-ca.pem\""), &state);
    auth.start().await;
    assert!(ok(&auth, &token).await);
    assert!(jwks.hits() >= 1);
    // With the public roots only, the TLS handshake fails: no keys, the token is refused.
    let hits = jwks.hits();
    let (_clock, state2) = auth_support::state();
    let auth = build(&dir, &cfg(""), &state2);
    auth.start().await;
    assert!(!ok(&auth, &token).await);
    assert_eq!(jwks.hits(), hits, "no request got past the handshake");
    // A ca_file on a plain-http URL, or one that holds no certificate, is a config error.
    write(&dir, "empty.pem", "");
    let http = cfg("ca_file = \"internal-ca.pem\"").replace("https://", "http://");
    let errs = try_build(&dir, &http, &state2).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("jwt.jwks[0].ca_file") && e.contains("only to an https")),
        "{errs:?}"
    );
    let errs = try_build(&dir, &cfg("ca_file = \"empty.pem\""), &state2).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("no certificate found")),
        "{errs:?}"
    );
}

#[tokio::test]
async fn an_unknown_kid_never_waits_long_on_a_hung_jwks_refresh() {
    let (clock, state) = state();
    let k1 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let k2 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES256", "P-256")]);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-hang");
    let auth = build(&dir, &config(addr), &state);
    auth.start().await;
    // The host hangs from now on (far longer than the 5 s fetch timeout); a refresh comes due
    // and hangs with it, holding the fetch lock.
    jwks.delay_ms.store(60_000, Ordering::SeqCst);
    clock.advance_secs(301);
    wait_for("the hung refresh", || jwks.hits() == 2).await;
    let unknown = mint(Algorithm::ES256, Some("k2"), &k2.encoding, &claims());
    let started = std::time::Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(4),
        auth.authenticate(AuthPolicy::Bearer, &bearer(&unknown)),
    )
    .await
    .expect("the unknown-kid request waited for the hung refresh");
    assert_eq!(invalid_why(refused), "unknown signing key (kid)");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "waited {:?}",
        started.elapsed()
    );
    // Known keys never wait at all.
    let known = mint(Algorithm::ES256, Some("k1"), &k1.encoding, &claims());
    assert!(ok(&auth, &known).await);
}

#[tokio::test]
async fn a_jwks_without_usable_keys_never_replaces_the_last_good_set() {
    let (clock, state) = state();
    let k1 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let jwks = Arc::new(Jwks::default());
    jwks.set_keys(vec![ec_jwk(&k1, "k1", "ES256", "P-256")]);
    let (addr, _server) = serve(jwks.clone()).await;
    let dir = temp_dir("jwks-unusable");
    let auth = build(&dir, &config(addr), &state);
    auth.start().await;
    // Next document: an HMAC key, an encryption key and a key of an unknown type; then an empty one.
    let mut enc = ec_jwk(&k1, "k1", "ES256", "P-256");
    enc["use"] = json!("enc");
    jwks.set_keys(vec![
        json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(b"0123456789abcdef0123456789abcdef")}),
        enc,
        json!({"kty": "XYZ", "kid": "x"}),
    ]);
    for (round, keys) in [(1u64, None), (2, Some(Vec::new()))] {
        if let Some(k) = keys {
            jwks.set_keys(k);
        }
        clock.advance_secs(301);
        wait_for("a refused refresh", || {
            state.jwks_stats(&url(addr)).unwrap().failures >= round
        })
        .await;
        let stats = state.jwks_stats(&url(addr)).unwrap();
        assert_eq!(stats.keys, 1, "round {round}: {stats:?}");
        let mut c = claims();
        c["jti"] = json!(format!("after-bad-document-{round}"));
        let t = mint(Algorithm::ES256, Some("k1"), &k1.encoding, &c);
        assert!(ok(&auth, &t).await, "round {round}: last good key gone");
    }
}
