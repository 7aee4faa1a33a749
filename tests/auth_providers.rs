//! JWT providers over the wire: keys belong to their issuer (RFC 8725 section 3.8), routes name
//! the providers they trust, the verified-token cache respects that, kid-less tokens, `typ`, the
//! migration path, and config errors. Two providers (one static HS256, one ES256 JWKS served by a
//! real server on 127.0.0.1:0) and the built-in token service, behind a real gateway.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::Digest;

const CORP_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-corp-provider-secret";
const CORP: &str = "https://corp.test";
const IDP: &str = "https://idp.test";
const GATEWAY: &str = "https://gateway.test";
const CLIENT: &str = "partner-1";
const CLIENT_SECRET: &str = "s3cret-partner-one-with-enough-entropy";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(iss: &str, aud: &str) -> Value {
    json!({
        "sub": "user-1", "iss": iss, "aud": aud, "iat": now(), "exp": now() + 600,
        "scope": "meetings:read", "jti": uuid_like(),
    })
}

/// A distinct `jti` per token, so every token is a cache miss until used.
fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("t{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    typ: Option<&str>,
    key: &EncodingKey,
    c: &Value,
) -> String {
    portcullis::install_crypto();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    header.typ = typ.map(str::to_string);
    jsonwebtoken::encode(&header, c, key).unwrap()
}

fn corp_token(iss: &str) -> String {
    let key = EncodingKey::from_secret(CORP_SECRET);
    sign(
        Algorithm::HS256,
        Some("shared"),
        Some("JWT"),
        &key,
        &claims(iss, "partner-api"),
    )
}

/// An ES256 key pair: the private key for minting, the public JWK for the JWKS server.
struct EcKey {
    encoding: EncodingKey,
    raw_public: Vec<u8>,
}

fn ec_key() -> EcKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    EcKey {
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        raw_public: pair.public_key_raw().to_vec(),
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(key: &EcKey, kid: &str) -> Value {
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&key.raw_public[1..33]), "y": b64(&key.raw_public[33..]),
    })
}

/// A JWKS server on 127.0.0.1:0 serving `keys`.
async fn jwks_server(keys: Arc<Mutex<Vec<Value>>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let keys = keys.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let body = json!({"keys": *keys.lock().unwrap()}).to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The built-in token service's config (issuer `GATEWAY`, audience `partner-api`).
fn oauth_section(dir: &std::path::Path) -> String {
    let pem = dir.join("signing.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&pem, key.serialize_pem()).unwrap();
    let hash: String = sha2::Sha256::digest(CLIENT_SECRET.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        r#"
[oauth]
issuer = "{GATEWAY}"
audience = "partner-api"
store = "{dir}/store.db"
[[oauth.signing_keys]]
kid = "shared"
alg = "ES256"
private_key_file = "{pem}"
active = true
[[oauth.clients]]
client_id = "{CLIENT}"
secret_hash = "sha256:{hash}"
grant_types = ["client_credentials"]
scopes = ["meetings:read"]
"#,
        dir = dir.display(),
        pem = pem.display(),
    )
}

const HEAD: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
[classes.user]
errors = "partner"
[classes.oauth]
errors = "oauth"
[upstreams.app]
url = "http://{UPSTREAM}"
[upstreams.tokens]
kind = "oauth"
[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "tokens"
"#;

fn route(path: &str, providers: Option<&str>) -> String {
    let providers = providers.map_or(String::new(), |p| format!("providers = {p}\n"));
    format!(
        "[[routes]]\npath = \"{path}\"\nclass = \"user\"\nupstream = \"app\"\nauth = \"bearer\"\nscopes = [\"meetings:read\"]\n{providers}"
    )
}

/// `corp` (static HS256, kid `shared`), `idp` (JWKS at `jwks`, ES256, optional `typ`) and the
/// token service, with routes `/any/`, `/corp/`, `/idp/`, `/builtin/`.
fn two_providers(dir: &std::path::Path, jwks: SocketAddr, idp_extra: &str) -> String {
    std::fs::write(dir.join("corp.secret"), CORP_SECRET).unwrap();
    format!(
        r#"{HEAD}
{any}
{corp}
{idp}
{builtin}
[jwt.providers.corp]
issuer = "{CORP}"
audiences = ["partner-api"]
algorithms = ["HS256"]
[[jwt.providers.corp.keys]]
kid = "shared"
alg = "HS256"
secret = "file:{secret}"

[jwt.providers.idp]
issuer = "{IDP}"
audiences = ["partner-api"]
{idp_extra}
[[jwt.providers.idp.jwks]]
url = "http://{jwks}/jwks.json"
{oauth}"#,
        any = route("/any/", None),
        corp = route("/corp/", Some("[\"corp\"]")),
        idp = route("/idp/", Some("[\"idp\"]")),
        builtin = route("/builtin/", Some("[\"oauth\"]")),
        secret = dir.join("corp.secret").display(),
        oauth = oauth_section(dir),
    )
}

struct Setup {
    up: Upstream,
    gw: TestGateway,
    idp_keys: Vec<EcKey>,
}

async fn setup(idp_extra: &str) -> Setup {
    let idp_keys: Vec<EcKey> = (0..3).map(|_| ec_key()).collect();
    let served: Vec<Value> = idp_keys
        .iter()
        .enumerate()
        .map(|(i, k)| jwk(k, if i == 0 { "shared" } else { "idp-rot" }))
        .collect();
    let jwks = jwks_server(Arc::new(Mutex::new(served))).await;
    let up = Upstream::start().await;
    let dir = temp_dir("providers");
    let gw = gateway(&two_providers(&dir, jwks, idp_extra), Some(up.addr)).await;
    gw.gw.snapshot().auth.start().await;
    Setup { up, gw, idp_keys }
}

impl Setup {
    fn idp_token(&self, key: usize, kid: Option<&str>, iss: &str) -> String {
        let k = &self.idp_keys[key].encoding;
        sign(
            Algorithm::ES256,
            kid,
            Some("JWT"),
            k,
            &claims(iss, "partner-api"),
        )
    }

    async fn builtin_token(&self) -> String {
        let body = "grant_type=client_credentials&scope=meetings%3Aread";
        let resp = client()
            .post(self.gw.url("/oauth2/token"))
            .basic_auth(CLIENT, Some(CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        json(resp).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Sends `token` to `path`; returns the status, and checks a 401's challenge.
    async fn call(&self, path: &str, token: &str) -> u16 {
        let resp = client()
            .get(self.gw.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status == 401 {
            let challenge = resp.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\""),
                "{challenge}"
            );
            assert_eq!(json(resp).await["code"], "unauthorized");
        }
        status
    }

    /// `call`, asserting the upstream saw the request exactly when it was admitted.
    async fn expect(&self, path: &str, token: &str, status: u16) {
        let before = self.up.count();
        assert_eq!(self.call(path, token).await, status, "{path}");
        let forwarded = self.up.count() - before;
        assert_eq!(
            forwarded,
            usize::from(status == 200),
            "{path}: upstream count"
        );
    }
}

#[tokio::test]
async fn a_key_of_one_provider_never_verifies_another_providers_token() {
    let s = setup("").await;
    let builtin = s.builtin_token().await;
    // Each provider's own tokens pass on a route accepting every provider.
    s.expect("/any/x", &corp_token(CORP), 200).await;
    s.expect("/any/x", &s.idp_token(0, Some("shared"), IDP), 200)
        .await;
    s.expect("/any/x", &builtin, 200).await;
    // Every key carries kid "shared": signed by corp's key, claiming idp's or the token
    // service's issuer, and the other way round: refused, whatever the kid.
    s.expect("/any/x", &corp_token(IDP), 401).await;
    s.expect("/any/x", &corp_token(GATEWAY), 401).await;
    s.expect("/any/x", &s.idp_token(0, Some("shared"), CORP), 401)
        .await;
    s.expect("/any/x", &s.idp_token(0, Some("shared"), GATEWAY), 401)
        .await;
    // An issuer no provider owns.
    s.expect("/any/x", &corp_token("https://evil.test"), 401)
        .await;
    s.gw.stop().await;
}

#[tokio::test]
async fn routes_accept_only_their_providers_with_the_cache_cold_and_warm() {
    let s = setup("").await;
    let builtin = s.builtin_token().await;
    let corp = corp_token(CORP);
    let idp = s.idp_token(1, Some("idp-rot"), IDP);
    // Cold: the first use of each token is on a route that does not trust its provider.
    s.expect("/builtin/x", &corp, 401).await;
    s.expect("/corp/x", &builtin, 401).await;
    s.expect("/corp/x", &idp, 401).await;
    // Now each is verified (and cached) on its own route...
    s.expect("/corp/x", &corp, 200).await;
    s.expect("/builtin/x", &builtin, 200).await;
    s.expect("/idp/x", &idp, 200).await;
    s.expect("/any/x", &idp, 200).await;
    // ...and warm, the cache entry still does not count on another provider's route.
    s.expect("/builtin/x", &corp, 401).await;
    s.expect("/idp/x", &corp, 401).await;
    s.expect("/corp/x", &builtin, 401).await;
    s.expect("/builtin/x", &idp, 401).await;
    s.expect("/corp/x", &corp, 200).await;
    s.gw.stop().await;
}

#[tokio::test]
async fn tokens_without_kid_try_the_issuers_keys_of_their_algorithm() {
    let s = setup("").await;
    // The JWKS holds three ES256 keys; a kid-less token signed by any of them verifies.
    for key in 0..3 {
        s.expect("/idp/x", &s.idp_token(key, None, IDP), 200).await;
    }
    // Signed by a key the issuer does not have: refused.
    let stranger = ec_key();
    let forged = sign(
        Algorithm::ES256,
        None,
        None,
        &stranger.encoding,
        &claims(IDP, "partner-api"),
    );
    s.expect("/idp/x", &forged, 401).await;
    // corp's only key has a kid; a kid-less corp token still finds it by algorithm.
    let key = EncodingKey::from_secret(CORP_SECRET);
    let kidless = sign(
        Algorithm::HS256,
        None,
        None,
        &key,
        &claims(CORP, "partner-api"),
    );
    s.expect("/corp/x", &kidless, 200).await;
    s.gw.stop().await;
}

#[tokio::test]
async fn a_required_typ_is_matched_case_insensitively_and_must_be_present() {
    let s = setup("typ = \"at+jwt\"").await;
    let with = |typ: Option<&str>| {
        let k = &s.idp_keys[0].encoding;
        sign(
            Algorithm::ES256,
            Some("shared"),
            typ,
            k,
            &claims(IDP, "partner-api"),
        )
    };
    s.expect("/idp/x", &with(Some("at+jwt")), 200).await;
    s.expect("/idp/x", &with(Some("application/AT+JWT")), 200)
        .await;
    s.expect("/idp/x", &with(Some("JWT")), 401).await;
    s.expect("/idp/x", &with(None), 401).await;
    // corp requires no typ.
    let key = EncodingKey::from_secret(CORP_SECRET);
    let untyped = sign(
        Algorithm::HS256,
        Some("shared"),
        None,
        &key,
        &claims(CORP, "partner-api"),
    );
    s.expect("/corp/x", &untyped, 200).await;
    s.gw.stop().await;
}

#[tokio::test]
async fn a_config_without_providers_behaves_as_before() {
    let dir = temp_dir("providers-legacy");
    std::fs::write(dir.join("hs.secret"), CORP_SECRET).unwrap();
    let cfg = format!(
        r#"{HEAD}
{any}
{default_only}
[jwt]
issuers = ["{CORP}", "https://corp-eu.test"]
audiences = ["partner-api"]
[[jwt.keys]]
kid = "shared"
alg = "HS256"
secret = "file:{secret}"
{oauth}"#,
        any = route("/any/", None),
        default_only = route("/legacy/", Some("[\"default\"]")),
        secret = dir.join("hs.secret").display(),
        oauth = oauth_section(&dir),
    );
    let up = Upstream::start().await;
    let gw = gateway(&cfg, Some(up.addr)).await;
    let s = Setup {
        up,
        gw,
        idp_keys: Vec::new(),
    };
    let builtin = s.builtin_token().await;
    // Today's behaviour: both listed issuers with the [jwt] keys, and the token service's tokens.
    s.expect("/any/x", &corp_token(CORP), 200).await;
    s.expect("/any/x", &corp_token("https://corp-eu.test"), 200)
        .await;
    s.expect("/any/x", &builtin, 200).await;
    s.expect("/any/x", &corp_token("https://other.test"), 401)
        .await;
    // The [jwt] keys are the provider "default": they never verify the token service's issuer.
    s.expect("/any/x", &corp_token(GATEWAY), 401).await;
    s.expect("/legacy/x", &corp_token(CORP), 200).await;
    s.expect("/legacy/x", &builtin, 401).await;
    s.gw.stop().await;
}

#[test]
fn config_errors_name_the_line_and_the_fix() {
    let dir = temp_dir("providers-errors");
    std::fs::write(dir.join("short.secret"), [7u8; 32]).unwrap();
    std::fs::write(dir.join("ok.secret"), [8u8; 64]).unwrap();
    let text = r#"[server]
listen = "127.0.0.1:0"
[classes.user]
errors = "partner"
[upstreams.app]
url = "http://127.0.0.1:9"
[[routes]]
path = "/a/"
class = "user"
upstream = "app"
auth = "bearer"
providers = ["corp", "nobody"]
[jwt.providers.corp]
issuer = "https://corp.test"
audiences = ["api"]
[[jwt.providers.corp.keys]]
alg = "HS512"
secret = "file:short.secret"
[jwt.providers.twin]
issuer = "https://corp.test"
audiences = ["api"]
[[jwt.providers.twin.keys]]
alg = "HS512"
secret = "file:ok.secret"
[jwt.providers.empty]
issuer = "https://empty.test"
audiences = ["api"]
"#;
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let shared = portcullis::config::Shared::for_check(portcullis::clock::SystemClock::shared());
    let diags = portcullis::config::load_str(
        portcullis::config::Source::new(&path, text.to_string()),
        &shared,
    )
    .expect_err("the config must be refused");
    let find = |key: &str, line: usize, words: &str| {
        let d = diags
            .iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("no diagnostic for {key}: {diags:#?}"));
        assert_eq!(d.line, line, "{key}: {d}");
        assert!(d.message.contains(words), "{key}: {d}");
        assert!(!d.fix.is_empty(), "{key}: no fix");
        assert!(d.to_string().contains("gateway.toml"), "{d}");
    };
    find("routes[0].providers[1]", 12, "unknown provider \"nobody\"");
    find(
        "jwt.providers.twin.issuer",
        20,
        "also the issuer of provider \"corp\"",
    );
    find(
        "jwt.providers.corp.keys[0].secret",
        18,
        "HS512 needs at least 64",
    );
    find("jwt.providers.empty", 25, "no keys");
}
