//! API-key apps: the `[[apps]]` registry, `X-API-Key` + `X-Client-ID` checks, and key/hash generation for the CLI.
//!
//! A route may name its own headers (`api_key_headers = { key = "...", client_id = "..." }`), or
//! use one header alone (`{ key = "Token" }`): the app is then found by the SHA-256 of its key
//! (only `sha256:` apps can be found that way) and the digest is still compared in constant time.
//!
//! Generated keys are high-entropy, so they are stored as `sha256:<hex>` and checked with one
//! SHA-256 and a constant-time compare. Operator-chosen secrets are stored as argon2id PHC
//! strings; argon2 runs on the blocking pool, and a key that verified once is remembered (as its
//! SHA-256) so argon2 does not run on every request. Unknown client ids cost the same SHA-256 and
//! compare as a wrong key and get the same error. Client ids of argon2 apps are distinguishable
//! by timing (client ids are not secrets); the key is not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::{AuthError, AuthMethod, Principal};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::{self, SString};

/// A route's `api_key_headers`: the header carrying the key, and the one carrying the client id
/// (absent = the key alone identifies the app).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyHeaders {
    /// Header carrying the API key, e.g. `"Token"`.
    pub key: SString,
    /// Header carrying the client id; absent = single-header mode.
    pub client_id: Option<SString>,
}

/// The API-key headers of a route (default `X-API-Key` + `X-Client-ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeaders {
    /// Header carrying the key.
    pub key: HeaderName,
    /// Header carrying the client id; `None` = the key alone identifies the app.
    pub client_id: Option<HeaderName>,
    /// The names as the operator wrote them (for messages and `WWW-Authenticate`).
    pub key_text: String,
    /// Same, for the client-id header.
    pub client_id_text: Option<String>,
}

impl Default for KeyHeaders {
    fn default() -> Self {
        Self {
            key: super::API_KEY_HEADER,
            client_id: Some(super::CLIENT_ID_HEADER),
            key_text: "X-API-Key".into(),
            client_id_text: Some("X-Client-ID".into()),
        }
    }
}

/// Headers an API key may not be carried in: they mean something else to the gateway or to HTTP.
const RESERVED: [&str; 6] = [
    "authorization",
    "host",
    "cookie",
    "content-type",
    "content-length",
    "x-request-id",
];

impl KeyHeaders {
    /// Compiles a route's `api_key_headers` (`key` = its key path); problems go to `diags`.
    pub fn compile(raw: Option<&RawKeyHeaders>, key: &str, diags: &mut Diagnostics<'_>) -> Self {
        let Some(raw) = raw else {
            return Self::default();
        };
        let mut name = |s: &SString, at: &str| -> Option<HeaderName> {
            match HeaderName::from_bytes(s.get_ref().as_bytes()) {
                Ok(h) if !RESERVED.contains(&h.as_str()) => Some(h),
                Ok(h) => {
                    diags.push(
                        Some(s.span()),
                        format!("{key}.{at}"),
                        format!("{h} cannot carry API credentials"),
                        "choose a header of its own, e.g. \"X-API-Key\" or \"Token\"",
                    );
                    None
                }
                Err(_) => {
                    diags.push(
                        Some(s.span()),
                        format!("{key}.{at}"),
                        format!("\"{}\" is not a valid header name", s.get_ref()),
                        "use letters, digits and '-', e.g. \"X-API-Key\"",
                    );
                    None
                }
            }
        };
        let key_name = name(&raw.key, "key");
        let client_name = raw.client_id.as_ref().map(|c| name(c, "client_id"));
        if let (Some(k), Some(Some(c))) = (&key_name, &client_name)
            && k == c
            && let Some(span) = raw.client_id.as_ref().map(|c| c.span())
        {
            diags.push(
                Some(span),
                format!("{key}.client_id"),
                "the key and the client id need two different headers",
                "name another header, or drop client_id for single-header mode",
            );
        }
        Self {
            key: key_name.unwrap_or(super::API_KEY_HEADER),
            client_id: client_name.map(|c| c.unwrap_or(super::CLIENT_ID_HEADER)),
            key_text: raw.key.get_ref().clone(),
            client_id_text: raw.client_id.as_ref().map(|c| c.get_ref().clone()),
        }
    }

    /// The `WWW-Authenticate` challenge naming these headers.
    pub fn challenge(&self) -> String {
        match &self.client_id_text {
            Some(c) => format!(
                "ApiKey header=\"{}\", client_id_header=\"{c}\"",
                self.key_text
            ),
            None => format!("ApiKey header=\"{}\"", self.key_text),
        }
    }

    /// True for the single-header mode.
    pub fn key_only(&self) -> bool {
        self.client_id.is_none()
    }
}

/// Prefix of generated API keys, so they are recognisable in logs and secret scanners.
pub const API_KEY_PREFIX: &str = "pk_";

/// How an app's key is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyHash {
    /// SHA-256 of a generated high-entropy key.
    Sha256([u8; 32]),
    /// An argon2id PHC string for an operator-chosen secret.
    Argon2(String),
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyHash::Sha256(_) => f.write_str("KeyHash::Sha256(..)"),
            KeyHash::Argon2(_) => f.write_str("KeyHash::Argon2(..)"),
        }
    }
}

impl KeyHash {
    /// Parses `sha256:<64 hex>` or an argon2 PHC string (`$argon2id$...`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            return decode_hex32(hex)
                .map(KeyHash::Sha256)
                .ok_or_else(|| "sha256: must be followed by 64 hex digits".to_string());
        }
        if text.starts_with("$argon2") {
            let parsed = PasswordHash::new(text)
                .map_err(|e| format!("not a valid argon2 PHC string: {e}"))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(format!(
                    "{} is not accepted; use argon2id",
                    parsed.algorithm.as_str()
                ));
            }
            return Ok(KeyHash::Argon2(text.to_string()));
        }
        Err("unknown key hash format".to_string())
    }
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A fresh high-entropy API key (`pk_` + 32 random bytes, base64url) and the `sha256:<hex>`
/// string to paste into `key_hash`. Show the key once; store only the hash.
pub fn generate_api_key() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = format!("sha256:{}", encode_hex(&sha256(key.as_bytes())));
    (key, hash)
}

/// The argon2id PHC string for an operator-chosen secret (random salt, default parameters).
pub fn hash_secret(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2 hashing failed: {e}"))
}

/// One API-key client.
#[derive(Debug)]
pub struct App {
    /// `X-Client-ID` value.
    pub client_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Stored key hash.
    pub hash: KeyHash,
    /// False when suspended.
    pub active: bool,
    /// Scopes granted to the app.
    pub scopes: Vec<String>,
    /// SHA-256 of the key a rotation replaced, accepted until the Unix second given (apps
    /// created through the admin API).
    pub previous: Option<([u8; 32], u64)>,
    /// SHA-256 of the last key that passed argon2 (argon2 apps only).
    argon2_verified: Mutex<Option<[u8; 32]>>,
    /// The principal a passing key proves, made on first use (then shared by every request).
    principal: OnceLock<Arc<Principal>>,
}

impl App {
    /// An app with the given key hash.
    pub fn new(client_id: String, hash: KeyHash, active: bool, scopes: Vec<String>) -> Self {
        Self {
            client_id,
            name: None,
            hash,
            active,
            scopes,
            previous: None,
            argon2_verified: Mutex::new(None),
            principal: OnceLock::new(),
        }
    }

    /// True when `digest` is the rotated-out key's and its overlap lasts at `now`.
    fn previous_matches(&self, digest: &[u8; 32], now: u64) -> bool {
        self.previous
            .is_some_and(|(old, until)| now < until && bool::from(digest.ct_eq(&old)))
    }

    async fn key_matches(&self, key: &str, now: u64) -> bool {
        let digest = sha256(key.as_bytes());
        match &self.hash {
            KeyHash::Sha256(stored) => {
                bool::from(digest.ct_eq(stored)) | self.previous_matches(&digest, now)
            }
            KeyHash::Argon2(phc) => {
                let remembered = *self
                    .argon2_verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(r) = remembered
                    && bool::from(digest.ct_eq(&r))
                {
                    return true;
                }
                let phc = phc.clone();
                let key = key.to_string();
                let ok = tokio::task::spawn_blocking(move || {
                    Argon2::default()
                        .verify_password(key.as_bytes(), phc.as_str())
                        .is_ok()
                })
                .await
                .unwrap_or(false);
                if ok {
                    *self
                        .argon2_verified
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(digest);
                }
                ok
            }
        }
    }
}

/// The apps by client id, and the `sha256:` apps by key digest (single-header routes).
#[derive(Debug, Default)]
pub struct AppRegistry {
    apps: HashMap<String, Arc<App>>,
    by_digest: HashMap<[u8; 32], Arc<App>>,
}

fn digest_index(apps: &HashMap<String, Arc<App>>) -> HashMap<[u8; 32], Arc<App>> {
    let current = apps.values().filter_map(|a| match &a.hash {
        KeyHash::Sha256(d) => Some((*d, a.clone())),
        KeyHash::Argon2(_) => None,
    });
    let previous = apps
        .values()
        .filter_map(|a| a.previous.map(|(d, _)| (d, a.clone())));
    previous.chain(current).collect()
}

/// Stand-in digest compared for unknown client ids, so they cost what a wrong key costs.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

impl AppRegistry {
    /// A registry of the given apps.
    pub fn from_apps(apps: impl IntoIterator<Item = App>) -> Self {
        let apps: HashMap<String, Arc<App>> = apps
            .into_iter()
            .map(|a| (a.client_id.clone(), Arc::new(a)))
            .collect();
        Self {
            by_digest: digest_index(&apps),
            apps,
        }
    }

    /// Builds from `[[apps]]`; problems go to `diags` (the app is skipped).
    pub(crate) fn build(raw_apps: &[Spanned<raw::App>], diags: &mut Diagnostics<'_>) -> Self {
        let mut apps: HashMap<String, Arc<App>> = HashMap::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (i, entry) in raw_apps.iter().enumerate() {
            let path = format!("apps[{i}]");
            let a = entry.get_ref();
            let mut ok = true;
            let client_id = a.client_id.get_ref().trim().to_string();
            if client_id.is_empty() || client_id.chars().any(|c| c.is_control() || c == ' ') {
                diags.push(
                    Some(a.client_id.span()),
                    format!("{path}.client_id"),
                    "client_id must be non-empty, without spaces or control characters",
                    "use an id like \"acme-reports\"",
                );
                ok = false;
            } else if !seen.insert(client_id.clone()) {
                diags.push(
                    Some(a.client_id.span()),
                    format!("{path}.client_id"),
                    format!("client_id {client_id:?} is used by another app"),
                    "give each app its own client_id",
                );
                ok = false;
            }
            let hash = match KeyHash::parse(a.key_hash.get_ref()) {
                Ok(h) => Some(h),
                Err(why) => {
                    diags.push(
                        Some(a.key_hash.span()),
                        format!("{path}.key_hash"),
                        why,
                        "paste the hash printed by `portcullis new-api-key` (sha256:<hex>) or `portcullis hash-secret` ($argon2id$...)",
                    );
                    None
                }
            };
            let active = match a.status.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("active") => true,
                Some("suspended") => false,
                Some(other) => {
                    let span = a.status.as_ref().map(|s| s.span());
                    diags.push(
                        span,
                        format!("{path}.status"),
                        format!("unknown status {other:?}"),
                        "use \"active\" or \"suspended\"",
                    );
                    ok = false;
                    true
                }
            };
            let mut scopes = Vec::new();
            for (j, s) in a.scopes.iter().enumerate() {
                let v = s.get_ref();
                if v.is_empty()
                    || v.chars()
                        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
                {
                    diags.push(
                        Some(s.span()),
                        format!("{path}.scopes[{j}]"),
                        format!("invalid scope {v:?}"),
                        "scopes are non-empty tokens without spaces or quotes, e.g. \"meetings:read\"",
                    );
                    ok = false;
                } else {
                    scopes.push(v.clone());
                }
            }
            if let (Some(KeyHash::Sha256(d)), true) = (&hash, ok)
                && apps.values().any(|o| o.hash == KeyHash::Sha256(*d))
            {
                diags.push(
                    Some(a.key_hash.span()),
                    format!("{path}.key_hash"),
                    "another app has the same key",
                    "give every app its own key (`portcullis new-api-key`)",
                );
                continue;
            }
            if let (true, Some(hash)) = (ok, hash) {
                let mut app = App::new(client_id.clone(), hash, active, scopes);
                app.name = a.name.clone();
                apps.insert(client_id, Arc::new(app));
            }
        }
        Self {
            by_digest: digest_index(&apps),
            apps,
        }
    }

    /// Number of apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// True when no app is configured.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The app with this client id.
    pub fn get(&self, client_id: &str) -> Option<&Arc<App>> {
        self.apps.get(client_id)
    }

    /// True when an app has this client id.
    pub fn contains(&self, client_id: &str) -> bool {
        self.apps.contains_key(client_id)
    }

    /// Every app, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.values()
    }

    /// Checks a key pair: unknown client and wrong key are both `InvalidCredentials`; a
    /// suspended app is `AppInactive` only once its key matched. `now` (Unix seconds) ends a
    /// rotated-out key's overlap.
    pub async fn check(
        &self,
        client_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Arc<Principal>, AuthError> {
        let Some(app) = self.apps.get(client_id) else {
            let digest = sha256(key.as_bytes());
            let _ = std::hint::black_box(bool::from(digest.ct_eq(&DUMMY_DIGEST)));
            return Err(AuthError::InvalidCredentials);
        };
        if !app.key_matches(key, now).await {
            return Err(AuthError::InvalidCredentials);
        }
        if !app.active {
            return Err(AuthError::AppInactive);
        }
        Ok(principal(app))
    }
}

impl AppRegistry {
    /// Checks a key that identifies its app alone (single-header routes): the app is found by
    /// the key's SHA-256 and the digest compared in constant time; unknown keys cost the same.
    pub fn check_key_only(&self, key: &str, now: u64) -> Result<Arc<Principal>, AuthError> {
        let digest = sha256(key.as_bytes());
        let Some(app) = self.by_digest.get(&digest) else {
            let _ = std::hint::black_box(bool::from(digest.ct_eq(&DUMMY_DIGEST)));
            return Err(AuthError::InvalidCredentials);
        };
        let KeyHash::Sha256(stored) = &app.hash else {
            return Err(AuthError::InvalidCredentials);
        };
        if !(bool::from(digest.ct_eq(stored)) | app.previous_matches(&digest, now)) {
            return Err(AuthError::InvalidCredentials);
        }
        if !app.active {
            return Err(AuthError::AppInactive);
        }
        Ok(principal(app))
    }
}

fn principal(app: &App) -> Arc<Principal> {
    let made = app.principal.get_or_init(|| {
        Arc::new(Principal::new(
            app.client_id.clone(),
            Some(app.client_id.clone()),
            app.scopes.clone(),
            AuthMethod::ApiKey,
        ))
    });
    made.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_formats() {
        let (key, hash) = generate_api_key();
        assert!(key.starts_with("pk_") && key.len() >= 40);
        assert!(matches!(KeyHash::parse(&hash), Ok(KeyHash::Sha256(_))));
        assert!(KeyHash::parse("sha256:abc").is_err());
        assert!(KeyHash::parse("md5:abc").is_err());
    }
}
