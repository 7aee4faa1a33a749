//! Test support for the auth tests: temp dirs, configs from TOML text, keys and tokens minted at test time.
#![allow(dead_code)]

#[path = "../common/temp.rs"]
mod temp;
pub use temp::temp_dir;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::auth::{AuthState, Authenticator};
use portcullis::clock::{ManualClock, SharedClock};
use portcullis::config::diagnostic::{Diagnostics, Source};
use portcullis::config::raw::RawConfig;
use serde_json::{Value, json};

/// Unix time the manual clock starts at.
pub const NOW: u64 = 1_800_000_000;

pub fn init() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn write(dir: &std::path::Path, name: &str, content: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), content).expect("write file");
}

/// The config prefix every test config needs.
pub const SERVER: &str = "[server]\nlisten = \"127.0.0.1:0\"\n\n";

/// Builds an authenticator from `body` (a TOML config without `[server]`), with files in `dir`.
pub fn try_build(
    dir: &std::path::Path,
    body: &str,
    state: &Arc<AuthState>,
) -> Result<Authenticator, Vec<String>> {
    let text = format!("{SERVER}{body}");
    let raw: RawConfig = toml::from_str(&text).map_err(|e| vec![e.to_string()])?;
    let source = Source::new(dir.join("gateway.toml"), text);
    let mut diags = Diagnostics::new(&source);
    let built = Authenticator::build(&raw, &mut diags, state);
    let problems: Vec<String> = diags.into_vec().iter().map(|d| d.to_string()).collect();
    match built {
        Some(a) if problems.is_empty() => Ok(a),
        _ => Err(problems),
    }
}

pub fn build(dir: &std::path::Path, body: &str, state: &Arc<AuthState>) -> Authenticator {
    match try_build(dir, body, state) {
        Ok(a) => a,
        Err(p) => panic!("config refused:\n{}", p.join("\n")),
    }
}

/// A manual clock at `NOW` and state on it.
pub fn state() -> (Arc<ManualClock>, Arc<AuthState>) {
    init();
    let clock = ManualClock::new(NOW);
    let shared: SharedClock = clock.clone();
    (clock, AuthState::new(shared))
}

pub fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

pub fn claims() -> Value {
    json!({
        "sub": "user-1",
        "client_id": "app-1",
        "iss": "https://issuer.test",
        "aud": "api://gateway",
        "exp": NOW + 600,
        "iat": NOW,
        "scope": "meetings:read meetings:write",
    })
}

pub fn mint(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("encode")
}

/// A compact token from a raw header and claims, signed with HS256 over `secret`.
pub fn mint_raw_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{h}.{p}");
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{input}.{sig}")
}

/// A generated asymmetric key: private key for minting, public PEM for config, JWK parts.
pub struct TestKey {
    pub encoding: EncodingKey,
    pub public_pem: String,
    pub private_pem: String,
    pub raw_public: Vec<u8>,
    pub pair: rcgen::KeyPair,
}

pub fn ec_key(alg: &'static rcgen::SignatureAlgorithm) -> TestKey {
    let pair = rcgen::KeyPair::generate_for(alg).expect("ec key");
    let private_pem = pair.serialize_pem();
    TestKey {
        encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("ec enc"),
        public_pem: pair.public_key_pem(),
        raw_public: pair.public_key_raw().to_vec(),
        private_pem,
        pair,
    }
}

pub fn ed_key() -> TestKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed key");
    let private_pem = pair.serialize_pem();
    TestKey {
        encoding: EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("ed enc"),
        public_pem: pair.public_key_pem(),
        raw_public: pair.public_key_raw().to_vec(),
        private_pem,
        pair,
    }
}

/// One RSA-2048 key per test binary (generation is slow in debug builds).
pub fn rsa_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let pair =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("rsa key");
        let private_pem = pair.serialize_pem();
        TestKey {
            encoding: EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("rsa enc"),
            public_pem: pair.public_key_pem(),
            raw_public: pair.public_key_raw().to_vec(),
            private_pem,
            pair,
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of an EC key (`raw_public` = 0x04 || x || y).
pub fn ec_jwk(key: &TestKey, kid: &str, alg: &str, crv: &str) -> Value {
    let n = (key.raw_public.len() - 1) / 2;
    json!({
        "kty": "EC", "crv": crv, "kid": kid, "alg": alg, "use": "sig",
        "x": b64(&key.raw_public[1..1 + n]), "y": b64(&key.raw_public[1 + n..]),
    })
}

pub fn ed_jwk(key: &TestKey, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64(&key.raw_public)})
}

/// The public JWK of the RSA key (`raw_public` is the PKCS#1 RSAPublicKey DER).
pub fn rsa_jwk(kid: &str, alg: &str) -> Value {
    let (n, e) = rsa_components(&rsa_key().raw_public);
    json!({"kty": "RSA", "kid": kid, "alg": alg, "n": b64(&n), "e": b64(&e)})
}

/// Minimal DER walk of RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }.
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read_len(d: &[u8], i: &mut usize) -> usize {
        let first = d[*i];
        *i += 1;
        if first < 0x80 {
            return first as usize;
        }
        let n = (first & 0x7f) as usize;
        let mut len = 0;
        for _ in 0..n {
            len = (len << 8) | d[*i] as usize;
            *i += 1;
        }
        len
    }
    let mut i = 1;
    read_len(der, &mut i);
    let mut ints = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        i += 1;
        let len = read_len(der, &mut i);
        let mut v = der[i..i + len].to_vec();
        while v.len() > 1 && v[0] == 0 {
            v.remove(0);
        }
        ints.push(v);
        i += len;
    }
    (ints.remove(0), ints.remove(0))
}

/// The error description of an `InvalidToken`, or a panic.
pub fn invalid_why(
    r: Result<Option<std::sync::Arc<portcullis::auth::Principal>>, portcullis::auth::AuthError>,
) -> String {
    match r {
        Err(portcullis::auth::AuthError::InvalidToken(why)) => why,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

/// An HS256 secret for bearer tests.
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs-test-secret";

pub fn hs_config(dir: &std::path::Path) -> String {
    write(dir, "hs.secret", SECRET);
    r#"
[jwt]
issuers = ["https://issuer.test"]
audiences = ["api://gateway"]

[[jwt.keys]]
kid = "hs"
alg = "HS256"
secret = "file:hs.secret"
"#
    .to_string()
}

pub fn hs_setup() -> (Arc<ManualClock>, portcullis::auth::Authenticator) {
    let (clock, state) = state();
    let dir = temp_dir("jwt-hs");
    let auth = build(&dir, &hs_config(&dir), &state);
    (clock, auth)
}

pub fn hs(claims: &serde_json::Value) -> String {
    mint(
        Algorithm::HS256,
        Some("hs"),
        &EncodingKey::from_secret(SECRET),
        claims,
    )
}
