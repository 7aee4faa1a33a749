//! Authentication: who is calling, by the route's policy (bearer JWT, API-key pair, either, none).
//!
//! The pipeline calls `Authenticator::authenticate` with the route's policy and the request
//! headers; a `Principal` comes back, or an `AuthError` that `error` maps to the catalogue.
//! `authorize` (in `scope`) then checks the route's required scopes.
//!
//! Two lifetimes: an `Authenticator` is built once per config snapshot (keys, claim rules,
//! apps); the `AuthState` it points to outlives reloads (JWKS caches by URL, the verified-token
//! cache, revoked `jti`s).

pub mod api_key;
pub mod jwks;
pub mod jwt;
mod keys;
pub mod scope;
pub mod settings;
pub mod token_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};
use thiserror::Error;

pub use api_key::{AppRegistry, KeyHeaders, generate_api_key, hash_secret};
pub use jwks::{JwksSource, JwksStats};
pub use jwt::{JwtRules, VerifyKey};
pub use scope::authorize;
pub use token_cache::TokenCache;

use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::RawConfig;
use jwt::{ParsedToken, Selection};
use token_cache::{CachedToken, token_hash};

/// What a route accepts as credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No credentials needed (any supplied are ignored, but never both styles at once).
    None,
    /// `Authorization: Bearer <JWT>`.
    Bearer,
    /// `X-API-Key` + `X-Client-ID`.
    ApiKey,
    /// Either style, but one request carries only one.
    BearerOrApiKey,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A verified JWT.
    Bearer,
    /// An API-key pair.
    ApiKey,
}

impl AuthPolicy {
    /// Parses a route's `auth` value: `none`, `bearer`, `api_key`, `bearer_or_api_key`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(AuthPolicy::None),
            "bearer" => Some(AuthPolicy::Bearer),
            "api_key" => Some(AuthPolicy::ApiKey),
            "bearer_or_api_key" => Some(AuthPolicy::BearerOrApiKey),
            _ => None,
        }
    }
}

impl AuthMethod {
    /// The value sent to backends in `X-Auth-Method`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Bearer => "bearer",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `sub` of the token, or the app's client id.
    pub subject: String,
    /// `client_id` / `azp` of the token, or the app's client id.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
}

/// Why a request's credentials were not accepted. Mapped to HTTP in `error`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Bearer route, no `Authorization` header.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// `Authorization` present but not `Bearer <token>` (or sent twice).
    #[error("invalid Authorization format")]
    InvalidAuthorizationFormat,
    /// Signature, expiry, issuer, audience or shape of the token is wrong; the text says which,
    /// for the consumer, and never echoes the token.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A bearer token lacks a required scope; the field lists the route's required scopes,
    /// space-separated.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// An API-key app lacks a required scope (no bearer challenge applies); same field.
    #[error("app lacks scope: {0}")]
    AppScopeMissing(String),
    /// API-key route without `X-API-Key`.
    #[error("missing X-API-Key")]
    MissingApiKey,
    /// API-key route without `X-Client-ID`.
    #[error("missing X-Client-ID")]
    MissingClientId,
    /// Unknown client id or wrong key (indistinguishable on purpose).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The app is suspended.
    #[error("app inactive")]
    AppInactive,
    /// Bearer and API key on one request.
    #[error("both a bearer token and an API key were sent")]
    MixedCredentials,
}

/// Header carrying the API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// Header carrying the API client id.
pub const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-client-id");

/// Longest a verified token stays cached, seconds, even if its `exp` is later (bounds how long a
/// key removed from a JWKS keeps admitting tokens it signed).
pub const MAX_CACHE_SECS: u64 = 300;

/// Revoked `jti`s are kept this long past their `exp` (covers any leeway).
const REVOCATION_SLACK_SECS: u64 = 600;

/// Auth state that outlives config reloads: JWKS sources by URL, the verified-token cache and
/// revoked token ids.
pub struct AuthState {
    clock: SharedClock,
    jwks: jwks::JwksRegistry,
    cache: ArcSwap<TokenCache>,
    cache_capacity: AtomicU64,
    revoked: DashMap<String, u64>,
    generation: AtomicU64,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("cached_tokens", &self.cache.load().len())
            .field("revoked", &self.revoked.len())
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// Fresh state on `clock`. Also installs jsonwebtoken's aws-lc crypto provider (once per
    /// process; a second install is a no-op).
    pub fn new(clock: SharedClock) -> Arc<Self> {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        Arc::new(Self {
            clock,
            jwks: jwks::JwksRegistry::default(),
            cache: ArcSwap::from_pointee(TokenCache::new(settings::DEFAULT_CACHE_ENTRIES)),
            cache_capacity: AtomicU64::new(settings::DEFAULT_CACHE_ENTRIES as u64),
            revoked: DashMap::new(),
            generation: AtomicU64::new(0),
        })
    }

    /// The clock tokens are checked against.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Refuses tokens carrying `jti` on bearer routes until `exp` (Unix seconds), and drops
    /// them from the verified-token cache.
    pub fn revoke_jti(&self, jti: &str, exp: u64) {
        self.revoked.insert(jti.to_string(), exp);
        self.cache.load().evict_jti(jti);
        if self.revoked.len().is_multiple_of(256) {
            let now = self.clock.unix_secs();
            self.revoked
                .retain(|_, e| e.saturating_add(REVOCATION_SLACK_SECS) > now);
        }
        tracing::info!(jti = %jti, exp, "token id revoked");
    }

    /// Whether `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.get(jti).is_some()
    }

    /// Entries in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.load().len()
    }

    /// Counters of the JWKS source for `url`, if one is live.
    pub fn jwks_stats(&self, url: &str) -> Option<JwksStats> {
        self.jwks.get(url).map(|s| s.stats())
    }

    fn ensure_cache_capacity(&self, capacity: usize) {
        if self.cache_capacity.swap(capacity as u64, Ordering::AcqRel) != capacity as u64 {
            self.cache.store(Arc::new(TokenCache::new(capacity)));
        }
    }
}

/// Verifies credentials for one config snapshot. Cheap to share (`Send + Sync`).
pub struct Authenticator {
    state: Arc<AuthState>,
    rules: JwtRules,
    keys: Vec<VerifyKey>,
    jwks: Vec<Arc<JwksSource>>,
    apps: AppRegistry,
    generation: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("rules", &self.rules)
            .field("keys", &self.keys)
            .field(
                "jwks",
                &self.jwks.iter().map(|s| s.url()).collect::<Vec<_>>(),
            )
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl Authenticator {
    /// Builds from the raw config; key files are resolved relative to
    /// `diags.source().base_dir()`; problems go to `diags` (with spans) and `None` is returned
    /// if `diags` holds any problem afterwards.
    pub fn build(
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        state: &Arc<AuthState>,
    ) -> Option<Self> {
        let (rules, cache_entries) = settings::jwt_rules(raw.jwt.as_ref(), diags);
        let mut keys = Vec::new();
        let mut sources: Vec<Arc<JwksSource>> = Vec::new();
        if let Some(jwt) = &raw.jwt {
            keys = keys::load_static_keys(jwt, diags);
            for (i, entry) in jwt.jwks.iter().enumerate() {
                if let Some((url, s)) = settings::jwks_settings(i, entry, diags) {
                    if sources.iter().any(|x| x.url() == url) {
                        diags.push(
                            Some(entry.span()),
                            format!("jwt.jwks[{i}].url"),
                            "this JWKS URL is listed twice",
                            "keep one entry per URL",
                        );
                        continue;
                    }
                    sources.push(state.jwks.source(&url, s, &state.clock));
                }
            }
        }
        let apps = AppRegistry::build(&raw.apps, diags);
        if !diags.is_empty() {
            return None;
        }
        state.ensure_cache_capacity(cache_entries);
        Some(Self {
            state: state.clone(),
            rules,
            keys,
            jwks: sources,
            apps,
            generation: state.generation.fetch_add(1, Ordering::AcqRel) + 1,
        })
    }

    /// An authenticator with explicit parts (no config file): rules, static keys, apps.
    pub fn from_parts(
        state: &Arc<AuthState>,
        rules: JwtRules,
        keys: Vec<VerifyKey>,
        apps: AppRegistry,
    ) -> Self {
        Self {
            state: state.clone(),
            rules,
            keys,
            jwks: Vec::new(),
            apps,
            generation: state.generation.fetch_add(1, Ordering::AcqRel) + 1,
        }
    }

    /// Accepts tokens of the gateway's own token service: its issuer and audience join the
    /// accepted lists (an empty list already accepts any value and stays empty), or become the
    /// only accepted values when no `[jwt]` section is configured.
    pub fn trust_issuer(&mut self, issuer: &str, audience: &str, only: bool) {
        if only || !self.rules.issuers.is_empty() {
            self.rules.issuers.push(issuer.to_string());
        }
        if only || !self.rules.audiences.is_empty() {
            self.rules.audiences.push(audience.to_string());
        }
    }

    /// Extra keys (e.g. the gateway's own OAuth signing keys) accepted alongside configured ones.
    pub fn add_key(&mut self, key: VerifyKey) {
        self.keys.push(key);
    }

    /// The claim rules in force.
    pub fn rules(&self) -> &JwtRules {
        &self.rules
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AuthState> {
        &self.state
    }

    /// Counters of every JWKS source, by URL.
    pub fn jwks_stats(&self) -> Vec<(String, JwksStats)> {
        self.jwks
            .iter()
            .map(|s| (s.url().to_string(), s.stats()))
            .collect()
    }

    /// Fetches every JWKS URL not fetched yet and starts its background refresh (idempotent
    /// per URL: a reload re-using a URL does not start a second task).
    pub async fn start(&self) {
        for s in &self.jwks {
            s.start().await;
        }
    }

    /// Authenticates a request under `policy`. `Ok(None)` for `AuthPolicy::None`. Under every
    /// policy, a request carrying both a Bearer `Authorization` and an `X-API-Key` is
    /// `MixedCredentials`.
    pub async fn authenticate(
        &self,
        policy: AuthPolicy,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, AuthError> {
        self.authenticate_with(policy, &KeyHeaders::default(), headers)
            .await
    }

    /// `authenticate` on a route whose API keys travel in `keys` (its `api_key_headers`).
    pub async fn authenticate_with(
        &self,
        policy: AuthPolicy,
        keys: &KeyHeaders,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, AuthError> {
        let has_bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| is_bearer_scheme(v.as_bytes()));
        let has_api_key = headers.contains_key(&keys.key);
        if has_bearer && has_api_key {
            return Err(AuthError::MixedCredentials);
        }
        let has_client_id = keys
            .client_id
            .as_ref()
            .is_some_and(|c| headers.contains_key(c));
        match policy {
            AuthPolicy::None => Ok(None),
            AuthPolicy::Bearer => self.bearer(headers).await.map(Some),
            AuthPolicy::ApiKey => self.api_key(keys, headers).await.map(Some),
            AuthPolicy::BearerOrApiKey => {
                if has_bearer {
                    self.bearer(headers).await.map(Some)
                } else if has_api_key || has_client_id {
                    self.api_key(keys, headers).await.map(Some)
                } else if headers.contains_key(AUTHORIZATION) {
                    Err(AuthError::InvalidAuthorizationFormat)
                } else {
                    Err(AuthError::MissingAuthorization)
                }
            }
        }
    }

    async fn api_key(
        &self,
        keys: &KeyHeaders,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let key = single_value(headers, &keys.key).ok_or(AuthError::MissingApiKey)?;
        let Some(client_header) = &keys.client_id else {
            let key = key.ok_or(AuthError::InvalidCredentials)?;
            return self.apps.check_key_only(key);
        };
        let client = single_value(headers, client_header).ok_or(AuthError::MissingClientId)?;
        let (Some(key), Some(client)) = (key, client) else {
            return Err(AuthError::InvalidCredentials);
        };
        self.apps.check(client, key).await
    }

    async fn bearer(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next().ok_or(AuthError::MissingAuthorization)?;
        if values.next().is_some() {
            return Err(AuthError::InvalidAuthorizationFormat);
        }
        let token = bearer_token(value.as_bytes()).ok_or(AuthError::InvalidAuthorizationFormat)?;
        self.verify_token(token).await
    }

    /// Verifies a bearer token (cache, signature, claims, revocation) and returns its principal.
    pub async fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.rules.max_token_bytes {
            return Err(AuthError::InvalidToken("token too large".into()));
        }
        let now = self.state.clock.unix_secs();
        let hash = token_hash(token);
        let cache = self.state.cache.load();
        if let Some(hit) = cache.get(&hash, now)
            && hit.generation == self.generation
        {
            let usable = jwt::check_times(hit.exp, hit.nbf, now, self.rules.leeway_secs)
                .and_then(|()| self.check_revoked(hit.jti.as_deref()));
            if let Err(e) = usable {
                cache.evict(&hash);
                return Err(e);
            }
            return Ok((*hit.principal).clone());
        }
        let parsed = jwt::parse(token, &self.rules)?;
        self.verify_signature(&parsed).await?;
        let verified = jwt::check_claims(parsed.payload_b64, &self.rules, now)?;
        self.check_revoked(verified.jti.as_deref())?;
        let live_until = verified
            .exp
            .map_or(u64::MAX, |e| e.saturating_add(self.rules.leeway_secs));
        let principal = Arc::new(verified.principal);
        cache.insert(
            hash,
            CachedToken {
                principal: principal.clone(),
                exp: verified.exp,
                nbf: verified.nbf,
                jti: verified.jti,
                generation: self.generation,
                drop_at: live_until.min(now.saturating_add(MAX_CACHE_SECS)),
            },
            now,
        );
        Ok(Arc::unwrap_or_clone(principal))
    }

    fn check_revoked(&self, jti: Option<&str>) -> Result<(), AuthError> {
        match jti {
            Some(j) if self.state.is_revoked(j) => {
                Err(AuthError::InvalidToken("token revoked".into()))
            }
            _ => Ok(()),
        }
    }

    fn try_keys(&self, parsed: &ParsedToken<'_>) -> Result<(), Option<AuthError>> {
        let snapshots: Vec<Arc<Vec<VerifyKey>>> = self.jwks.iter().map(|s| s.keys()).collect();
        let mut all: Vec<&VerifyKey> = self.keys.iter().collect();
        for s in &snapshots {
            all.extend(s.iter());
        }
        match jwt::select(&all, parsed.kid.as_deref(), parsed.alg) {
            Selection::Found(keys) => {
                let mut last = AuthError::InvalidToken("signature invalid".into());
                for k in keys {
                    match jwt::verify_signature(parsed, k) {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e,
                    }
                }
                Err(Some(last))
            }
            Selection::WrongAlgorithm => Err(Some(AuthError::InvalidToken(
                "token algorithm not accepted for this key".into(),
            ))),
            Selection::UnknownKid => Err(None),
        }
    }

    async fn verify_signature(&self, parsed: &ParsedToken<'_>) -> Result<(), AuthError> {
        let unknown = || AuthError::InvalidToken("unknown signing key (kid)".into());
        match self.try_keys(parsed) {
            Ok(()) => return Ok(()),
            Err(Some(e)) => return Err(e),
            Err(None) if self.jwks.is_empty() => return Err(unknown()),
            Err(None) => {}
        }
        let mut changed = false;
        for s in &self.jwks {
            changed |= s.refetch_for_unknown_kid().await;
        }
        if changed {
            match self.try_keys(parsed) {
                Ok(()) => return Ok(()),
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
        }
        for s in &self.jwks {
            s.count_unknown_kid_refusal(parsed.kid.as_deref());
        }
        Err(unknown())
    }
}

/// Whether an `Authorization` value uses the Bearer scheme (case-insensitive, RFC 7235).
fn is_bearer_scheme(value: &[u8]) -> bool {
    value.len() >= 6
        && value[..6].eq_ignore_ascii_case(b"bearer")
        && (value.len() == 6 || value[6] == b' ')
}

/// The token of `Bearer <token>`: one space-free token (RFC 6750 b64token characters).
fn bearer_token(value: &[u8]) -> Option<&str> {
    if !is_bearer_scheme(value) {
        return None;
    }
    let rest = std::str::from_utf8(&value[6..])
        .ok()?
        .trim_start_matches(' ');
    let token = rest.trim_end_matches(' ');
    let valid = !token.is_empty() && token.bytes().all(|b| B64TOKEN[usize::from(b)]);
    valid.then_some(token)
}

/// RFC 6750 b64token characters, as a table: tokens are hundreds of bytes, checked per request.
static B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    t
};

/// `None` when the header is absent or empty; `Some(None)` when it is sent twice or is not
/// UTF-8; otherwise the trimmed value.
fn single_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<Option<&'h str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let text = first.to_str().ok().map(str::trim);
    if text == Some("") {
        return None;
    }
    if values.next().is_some() {
        return Some(None);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token(b"bEaReR abc"), Some("abc"));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Bearer a b"), None);
        assert_eq!(
            AuthPolicy::parse("bearer_or_api_key"),
            Some(AuthPolicy::BearerOrApiKey)
        );
    }
}
