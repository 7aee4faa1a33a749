//! Test harness for the token service: a temp dir with a real store file, keys generated at test
//! time, a config written to disk, a ManualClock, and helpers to drive `TokenService::handle`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, Response, header};
use portcullis::clock::{ManualClock, SharedClock};
use portcullis::config::diagnostic::{Diagnostic, Diagnostics, Source};
use portcullis::config::raw::RawConfig;
use portcullis::oauth::{RevocationHook, TokenService};
use sha2::{Digest, Sha256};

/// Unix time the tests start at.
pub const T0: u64 = 1_900_000_000;

pub const SVC_ID: &str = "svc";
pub const SVC_SECRET: &str = "svc-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const CC_ID: &str = "cc-only";
pub const CC_SECRET: &str = "cc-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const WEB_ID: &str = "webapp";
pub const WEB_SECRET: &str = "web-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const LOGIN_ID: &str = "login-backend";
pub const LOGIN_SECRET: &str = "login-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const SUSP_ID: &str = "suspended";
pub const SUSP_SECRET: &str = "susp-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const ARGON_ID: &str = "argon";
pub const ARGON_SECRET: &str = "correct horse battery staple";
pub const REDIRECT: &str = "https://app.example/cb";
pub const ISSUER: &str = "https://auth.example.test";
pub const AUDIENCE: &str = "portcullis-api";

pub fn install_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

pub fn sha256_hash(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn argon2_hash(secret: &str) -> String {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), b"portcullis-test-salt")
        .map(|h| h.to_string())
        .expect("argon2 hash")
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("portcullis-oauth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes an ES256 key (kid `k1`) and an RS256 key (kid `k2`) as PKCS#8 PEM files.
pub fn write_keys(dir: &Path) {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    std::fs::write(dir.join("k1.pem"), ec.serialize_pem()).expect("write k1");
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("rsa key");
    std::fs::write(dir.join("k2.pem"), rsa.serialize_pem()).expect("write k2");
}

/// Options for the generated config.
#[derive(Clone)]
pub struct Opts {
    pub active_kid: &'static str,
    pub suspend_svc: bool,
    pub extra: String,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            active_kid: "k1",
            suspend_svc: false,
            extra: String::new(),
        }
    }
}

pub fn config_text(opts: &Opts) -> String {
    let svc_status = if opts.suspend_svc {
        "suspended"
    } else {
        "active"
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[oauth]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
store = "state/portcullis.db"
access_token_ttl = "1h"
refresh_token_ttl = "30d"
code_ttl = "5m"
login_url = "https://login.example/start?app=portal"
{extra}

[[oauth.signing_keys]]
kid = "k1"
private_key_file = "k1.pem"
active = {k1}

[[oauth.signing_keys]]
kid = "k2"
alg = "RS256"
private_key_file = "k2.pem"
active = {k2}

[[oauth.clients]]
client_id = "{SVC_ID}"
name = "Service"
secret_hash = "{svc_hash}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["read", "write"]
status = "{svc_status}"

[[oauth.clients]]
client_id = "{CC_ID}"
secret_hash = "{cc_hash}"
grant_types = ["client_credentials"]
scopes = ["read"]

[[oauth.clients]]
client_id = "{WEB_ID}"
secret_hash = "{web_hash}"
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read", "write", "profile"]
redirect_uris = ["{REDIRECT}", "https://app.example/other"]

[[oauth.clients]]
client_id = "{LOGIN_ID}"
secret_hash = "{login_hash}"
login_provider = true

[[oauth.clients]]
client_id = "{SUSP_ID}"
secret_hash = "{susp_hash}"
grant_types = ["client_credentials", "refresh_token"]
scopes = ["read"]
status = "suspended"

[[oauth.clients]]
client_id = "{ARGON_ID}"
secret_hash = "{argon_hash}"
grant_types = ["client_credentials"]
scopes = ["read"]
"#,
        extra = opts.extra,
        k1 = opts.active_kid == "k1",
        k2 = opts.active_kid == "k2",
        svc_hash = sha256_hash(SVC_SECRET),
        cc_hash = sha256_hash(CC_SECRET),
        web_hash = sha256_hash(WEB_SECRET),
        login_hash = sha256_hash(LOGIN_SECRET),
        susp_hash = sha256_hash(SUSP_SECRET),
        argon_hash = argon2_hash(ARGON_SECRET),
    )
}

/// Builds a service from `text` written as `dir/portcullis.toml`; diagnostics on failure.
pub fn try_build(
    dir: &Path,
    text: &str,
    clock: SharedClock,
    hook: Option<RevocationHook>,
) -> Result<TokenService, Vec<Diagnostic>> {
    install_provider();
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).expect("write config");
    let raw: RawConfig = toml::from_str(text).expect("raw config parses");
    let source = Source::new(&path, text);
    let mut diags = Diagnostics::new(&source);
    match TokenService::build(&raw, &mut diags, clock, hook) {
        Some(s) if diags.is_empty() => Ok(s),
        _ => Err(diags.into_vec()),
    }
}

/// A running test setup.
pub struct Env {
    pub dir: TempDir,
    pub clock: Arc<ManualClock>,
    pub revoked: Arc<Mutex<Vec<(String, u64)>>>,
    svc: Option<TokenService>,
}

impl Env {
    pub fn new() -> Self {
        Self::with(Opts::default())
    }

    pub fn with(opts: Opts) -> Self {
        let dir = TempDir::new();
        write_keys(dir.path());
        let clock = ManualClock::new(T0);
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let svc = build_svc(dir.path(), &opts, clock.clone(), revoked.clone());
        Self {
            dir,
            clock,
            revoked,
            svc: Some(svc),
        }
    }

    /// Drops the service and builds a new one on the same dir (store file and keys).
    pub fn restart(&mut self, opts: Opts) {
        // The old service (and its store handle, which holds the file lock) goes first.
        self.svc = None;
        self.svc = Some(build_svc(
            self.dir.path(),
            &opts,
            self.clock.clone(),
            self.revoked.clone(),
        ));
    }

    pub fn svc(&self) -> &TokenService {
        self.svc.as_ref().expect("service running")
    }

    pub async fn call(&self, req: Request<Bytes>) -> (u16, http::HeaderMap, serde_json::Value) {
        let resp = self.svc().handle(req).await;
        split(resp)
    }

    pub fn revoked_jtis(&self) -> Vec<String> {
        self.revoked
            .lock()
            .expect("lock")
            .iter()
            .map(|(j, _)| j.clone())
            .collect()
    }
}

fn build_svc(
    dir: &Path,
    opts: &Opts,
    clock: Arc<ManualClock>,
    revoked: Arc<Mutex<Vec<(String, u64)>>>,
) -> TokenService {
    let hook: RevocationHook = Arc::new(move |jti: &str, exp: u64| {
        revoked.lock().expect("lock").push((jti.to_string(), exp));
    });
    try_build(dir, &config_text(opts), clock, Some(hook)).expect("service builds")
}

pub fn split(resp: Response<Bytes>) -> (u16, http::HeaderMap, serde_json::Value) {
    let (parts, body) = resp.into_parts();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).expect("JSON body")
    };
    (parts.status.as_u16(), parts.headers, json)
}

/// How a request carries its client credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Basic,
    Body,
    None,
}

/// How a request encodes its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    Form,
    Json,
}

pub const STYLES: [(Enc, Auth); 4] = [
    (Enc::Form, Auth::Basic),
    (Enc::Form, Auth::Body),
    (Enc::Json, Auth::Basic),
    (Enc::Json, Auth::Body),
];

pub fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// A POST with `params`, encoded and authenticated as asked.
pub fn post(
    path: &str,
    enc: Enc,
    auth: Auth,
    client: (&str, &str),
    params: &[(&str, &str)],
) -> Request<Bytes> {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut builder = Request::post(format!("https://gw.example{path}"));
    match auth {
        Auth::Basic => {
            builder = builder.header(header::AUTHORIZATION, basic_header(client.0, client.1))
        }
        Auth::Body => {
            pairs.push(("client_id".into(), client.0.into()));
            pairs.push(("client_secret".into(), client.1.into()));
        }
        Auth::None => {}
    }
    let body = match enc {
        Enc::Form => {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                ser.append_pair(k, v);
            }
            ser.finish()
        }
        Enc::Json => {
            builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
            let obj: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            serde_json::Value::Object(obj).to_string()
        }
    };
    builder.body(Bytes::from(body)).expect("request")
}

pub fn get(path_and_query: &str) -> Request<Bytes> {
    Request::get(format!("https://gw.example{path_and_query}"))
        .body(Bytes::new())
        .expect("request")
}

/// client_credentials with the `svc` client, form + Basic.
pub async fn cc_token(env: &Env, scope: Option<&str>) -> serde_json::Value {
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        params.push(("scope", s));
    }
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &params,
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A refresh with the `svc` client.
pub fn refresh_req(token: &str, enc: Enc, auth: Auth) -> Request<Bytes> {
    post(
        "/oauth2/token",
        enc,
        auth,
        (SVC_ID, SVC_SECRET),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    let u = uuid::Uuid::new_v4();
    let v = uuid::Uuid::new_v4();
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(u.as_bytes());
    out[16..].copy_from_slice(v.as_bytes());
    out
}

/// Query parameters of a URL.
pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Runs authorize + accept for `webapp` and returns (code, verifier, redirect_to).
pub async fn authorization_code(
    env: &Env,
    scope: Option<&str>,
    state: &str,
) -> (String, String, String) {
    let (verifier, challenge) = pkce();
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", WEB_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(s) = scope {
        q.append_pair("scope", s);
    }
    let (status, headers, _) = env
        .call(get(&format!("/oauth2/authorize?{}", q.finish())))
        .await;
    assert_eq!(status, 302);
    let location = headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://login.example/start?app=portal&login_challenge="),
        "{location}"
    );
    let challenge = query_of(&location)["login_challenge"].clone();
    let (status, _, body) = env
        .call(post(
            "/oauth2/authorize/accept",
            Enc::Json,
            Auth::Basic,
            (LOGIN_ID, LOGIN_SECRET),
            &[("login_challenge", &challenge), ("subject", "user-42")],
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let to = body["redirect_to"]
        .as_str()
        .expect("redirect_to")
        .to_string();
    assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
    let q = query_of(&to);
    assert_eq!(q.get("state").map(String::as_str), Some(state));
    (q["code"].clone(), verifier, to)
}

/// Redeems a code for `webapp`.
pub fn code_req(
    code: &str,
    verifier: &str,
    redirect: &str,
    enc: Enc,
    auth: Auth,
) -> Request<Bytes> {
    post(
        "/oauth2/token",
        enc,
        auth,
        (WEB_ID, WEB_SECRET),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
}

/// Verifies an access token with the service's verification keys and plain jsonwebtoken.
pub fn verify_with_keys(svc: &TokenService, token: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let key = svc
        .verification_keys()
        .into_iter()
        .find(|k| k.kid == kid)
        .expect("key for kid");
    assert_eq!(key.alg, header.alg);
    let mut v = jsonwebtoken::Validation::new(key.alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding_key, &v)
        .expect("token verifies")
        .claims
}
