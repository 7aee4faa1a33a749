//! API-key apps: the `[[apps]]` registry, `X-API-Key` + `X-Client-ID` checks, and key/hash generation for the CLI.
//!
//! Generated keys are high-entropy, so they are stored as `sha256:<hex>` and checked with one
//! SHA-256 and a constant-time compare. Operator-chosen secrets are stored as argon2id PHC
//! strings; argon2 runs on the blocking pool, and a key that verified once is remembered (as its
//! SHA-256) so argon2 does not run on every request. Unknown client ids cost the same SHA-256 and
//! compare as a wrong key and get the same error. Client ids of argon2 apps are distinguishable
//! by timing (client ids are not secrets); the key is not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::{AuthError, AuthMethod, Principal};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw;

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
    /// SHA-256 of the last key that passed argon2 (argon2 apps only).
    argon2_verified: Mutex<Option<[u8; 32]>>,
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
            argon2_verified: Mutex::new(None),
        }
    }

    async fn key_matches(&self, key: &str) -> bool {
        let digest = sha256(key.as_bytes());
        match &self.hash {
            KeyHash::Sha256(stored) => bool::from(digest.ct_eq(stored)),
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

/// The apps by client id.
#[derive(Debug, Default)]
pub struct AppRegistry {
    apps: HashMap<String, Arc<App>>,
}

/// Stand-in digest compared for unknown client ids, so they cost what a wrong key costs.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

impl AppRegistry {
    /// A registry of the given apps.
    pub fn from_apps(apps: impl IntoIterator<Item = App>) -> Self {
        Self {
            apps: apps
                .into_iter()
                .map(|a| (a.client_id.clone(), Arc::new(a)))
                .collect(),
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
            if let (true, Some(hash)) = (ok, hash) {
                let mut app = App::new(client_id.clone(), hash, active, scopes);
                app.name = a.name.clone();
                apps.insert(client_id, Arc::new(app));
            }
        }
        Self { apps }
    }

    /// Number of apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// True when no app is configured.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Checks a key pair: unknown client and wrong key are both `InvalidCredentials`; a
    /// suspended app is `AppInactive` only once its key matched.
    pub async fn check(&self, client_id: &str, key: &str) -> Result<Principal, AuthError> {
        let Some(app) = self.apps.get(client_id) else {
            let digest = sha256(key.as_bytes());
            let _ = std::hint::black_box(bool::from(digest.ct_eq(&DUMMY_DIGEST)));
            return Err(AuthError::InvalidCredentials);
        };
        if !app.key_matches(key).await {
            return Err(AuthError::InvalidCredentials);
        }
        if !app.active {
            return Err(AuthError::AppInactive);
        }
        Ok(Principal {
            subject: app.client_id.clone(),
            client_id: Some(app.client_id.clone()),
            scopes: app.scopes.clone(),
            method: AuthMethod::ApiKey,
        })
    }
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
