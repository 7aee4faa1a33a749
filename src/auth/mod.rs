//! Authentication: who is calling, by the route's policy (bearer JWT, API-key pair, either, none).
//!
//! The pipeline calls `Authenticator::authenticate_route` with the route's policy, the
//! providers it accepts, the request headers and query; a `Principal` comes back, or an
//! `AuthError` that `error` maps to the catalogue. `authorize` (in `scope`) then checks the
//! route's required scopes. Bearer tokens are verified by the provider their `iss` names
//! (`provider`), with that provider's keys only.
//!
//! Two lifetimes: an `Authenticator` is built once per config snapshot (keys, claim rules,
//! apps); the `AuthState` it points to outlives reloads (JWKS caches by URL, the verified-token
//! cache, revoked `jti`s).

pub mod api_key;
pub(crate) mod bearer;
pub mod jwks;
pub mod jwt;
mod keys;
pub mod provider;
mod provider_config;
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
pub use provider::{BuiltinIssuer, ProviderSet};
pub use scope::authorize;
pub use token_cache::TokenCache;

use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::RawConfig;
use bearer::is_bearer_scheme;
use provider::{Provider, Providers};

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
    /// A webhook signature (`webhook::Inbound`), checked instead of any credential.
    Webhook,
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
    /// Parses a route's `auth` value: `none`, `bearer`, `api_key`, `bearer_or_api_key`,
    /// `webhook`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(AuthPolicy::None),
            "bearer" => Some(AuthPolicy::Bearer),
            "api_key" => Some(AuthPolicy::ApiKey),
            "bearer_or_api_key" => Some(AuthPolicy::BearerOrApiKey),
            "webhook" => Some(AuthPolicy::Webhook),
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
    /// Bearer route, no `Authorization` header; `realm` goes into the challenge.
    #[error("missing Authorization header")]
    MissingAuthorization {
        /// `realm` of the `WWW-Authenticate: Bearer` challenge.
        realm: Arc<str>,
    },
    /// `Authorization` present but not `Bearer <b64token>`.
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
    /// An API-key app lacks a required scope (`403 forbidden`, no bearer challenge); same field.
    #[error("app lacks scope: {0}")]
    AppScopeMissing(String),
    /// A credential header sent more than once, or a comma-joined list of API keys; the
    /// field names the header.
    #[error("{0} sent more than once")]
    RepeatedCredential(String),
    /// An `access_token` query parameter together with an `Authorization` header
    /// (RFC 6750 section 2: one method per request).
    #[error("access token in the query and an Authorization header")]
    TokenInQueryAndHeader,
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
    /// Bearer and API key (or `X-Client-ID`) on one request.
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
    providers: Providers,
    routes: Vec<ProviderSet>,
    realm: Arc<str>,
    max_token_bytes: usize,
    apps: AppRegistry,
    runtime: Option<Arc<crate::credentials::RuntimeCredentials>>,
    generation: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("providers", &self.providers)
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl Authenticator {
    /// Builds from the raw config without the token service's provider; see `build_with`.
    pub fn build(
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        state: &Arc<AuthState>,
    ) -> Option<Self> {
        Self::build_with(raw, diags, state, None)
    }

    /// Builds from the raw config; `builtin` is the token service's provider (`oauth`). Key
    /// files are resolved relative to `diags.source().base_dir()`; problems go to `diags`
    /// (with spans) and `None` is returned if `diags` holds any problem afterwards.
    pub fn build_with(
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        state: &Arc<AuthState>,
        builtin: Option<&BuiltinIssuer>,
    ) -> Option<Self> {
        let global = settings::global(raw.jwt.as_ref(), diags);
        let list = provider_config::providers(raw, &global, builtin, state, diags);
        let mut names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        if builtin.is_none() && raw.oauth.is_some() {
            names.push(provider::BUILTIN);
        }
        let routes = provider_config::route_sets(raw, &names, diags);
        let apps = AppRegistry::build(&raw.apps, diags);
        if !diags.is_empty() {
            return None;
        }
        state.ensure_cache_capacity(global.cache_entries);
        Some(Self {
            state: state.clone(),
            providers: Providers::new(list),
            routes,
            realm: global.realm,
            max_token_bytes: global.rules.max_token_bytes,
            apps,
            runtime: None,
            generation: state.generation.fetch_add(1, Ordering::AcqRel) + 1,
        })
    }

    /// An authenticator with explicit parts (no config file): one `default` provider with
    /// `rules` and static `keys` (any issuer when `rules.issuers` is empty), and apps.
    pub fn from_parts(
        state: &Arc<AuthState>,
        rules: JwtRules,
        keys: Vec<VerifyKey>,
        apps: AppRegistry,
    ) -> Self {
        let max_token_bytes = rules.max_token_bytes;
        let default = Provider {
            name: provider::DEFAULT.to_string(),
            any_issuer: rules.issuers.is_empty(),
            rules,
            keys,
            jwks: Vec::new(),
        };
        Self {
            state: state.clone(),
            providers: Providers::new(vec![default]),
            routes: Vec::new(),
            realm: Arc::from(settings::DEFAULT_REALM),
            max_token_bytes,
            apps,
            runtime: None,
            generation: state.generation.fetch_add(1, Ordering::AcqRel) + 1,
        }
    }

    /// The API-key apps of the config file.
    pub fn config_apps(&self) -> &AppRegistry {
        &self.apps
    }

    /// Also accepts the API-key apps created at run time (after the config's own).
    pub fn with_runtime(mut self, runtime: Arc<crate::credentials::RuntimeCredentials>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// An extra key for the `default` provider (or the first one).
    pub fn add_key(&mut self, key: VerifyKey) {
        let index = self.providers.index_of(provider::DEFAULT).unwrap_or(0);
        if let Some(p) = self.providers.get_mut(index) {
            p.keys.push(key);
        }
    }

    /// The providers accepted by the route at `index` of `[[routes]]` (all when it lists none).
    pub fn route_providers(&self, index: usize) -> ProviderSet {
        self.routes.get(index).copied().unwrap_or(ProviderSet::ALL)
    }

    /// Names of the providers, in index order.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.name.clone()).collect()
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AuthState> {
        &self.state
    }

    /// Counters of every JWKS source, by URL.
    pub fn jwks_stats(&self) -> Vec<(String, JwksStats)> {
        self.providers
            .iter()
            .flat_map(|p| p.jwks.iter())
            .map(|s| (s.url().to_string(), s.stats()))
            .collect()
    }

    /// Fetches every JWKS URL not fetched yet and starts its background refresh (idempotent
    /// per URL: a reload re-using a URL does not start a second task).
    pub async fn start(&self) {
        for p in self.providers.iter() {
            for s in &p.jwks {
                s.start().await;
            }
        }
    }

    /// Authenticates a request under `policy`, accepting tokens of every provider; see
    /// `authenticate_route`.
    pub async fn authenticate(
        &self,
        policy: AuthPolicy,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, AuthError> {
        let keys = KeyHeaders::default();
        self.authenticate_route(policy, ProviderSet::ALL, &keys, headers, None)
            .await
    }

    /// Authenticates a request under `policy` for a route accepting `providers` whose API keys
    /// travel in `keys` (its `api_key_headers`); `query` is the request's query string.
    /// `Ok(None)` for `AuthPolicy::None`. Under every policy, a Bearer `Authorization` with an
    /// API key or client id is `MixedCredentials`.
    pub async fn authenticate_route(
        &self,
        policy: AuthPolicy,
        providers: ProviderSet,
        keys: &KeyHeaders,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Principal>, AuthError> {
        let has_bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| is_bearer_scheme(v.as_bytes()));
        let has_api_key = headers.contains_key(&keys.key);
        let has_client_id = keys
            .client_id
            .as_ref()
            .is_some_and(|c| headers.contains_key(c));
        if has_bearer && (has_api_key || has_client_id) {
            return Err(AuthError::MixedCredentials);
        }
        // A webhook route's proof is its signature (`webhook::Inbound::verify`), never a token.
        if matches!(policy, AuthPolicy::None | AuthPolicy::Webhook) {
            return Ok(None);
        }
        check_single_credentials(headers, keys, query)?;
        match policy {
            AuthPolicy::None | AuthPolicy::Webhook => Ok(None),
            AuthPolicy::Bearer => self.bearer(headers, providers).await.map(Some),
            AuthPolicy::ApiKey => self.api_key(keys, headers).await.map(Some),
            AuthPolicy::BearerOrApiKey => {
                if has_bearer {
                    self.bearer(headers, providers).await.map(Some)
                } else if has_api_key || has_client_id {
                    self.api_key(keys, headers).await.map(Some)
                } else if headers.contains_key(AUTHORIZATION) {
                    Err(AuthError::InvalidAuthorizationFormat)
                } else {
                    Err(self.missing_authorization())
                }
            }
        }
    }

    fn missing_authorization(&self) -> AuthError {
        AuthError::MissingAuthorization {
            realm: self.realm.clone(),
        }
    }

    async fn api_key(
        &self,
        keys: &KeyHeaders,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let key = single_value(headers, &keys.key).ok_or(AuthError::MissingApiKey)?;
        let now = self.state.clock.unix_secs();
        let runtime = self.runtime.as_ref().map(|r| r.view());
        let Some(client_header) = &keys.client_id else {
            let key = key.ok_or(AuthError::InvalidCredentials)?;
            return match (self.apps.check_key_only(key, now), runtime) {
                (Err(AuthError::InvalidCredentials), Some(view)) => {
                    view.apps.check_key_only(key, now)
                }
                (outcome, _) => outcome,
            };
        };
        let client = single_value(headers, client_header).ok_or(AuthError::MissingClientId)?;
        let (Some(key), Some(client)) = (key, client) else {
            return Err(AuthError::InvalidCredentials);
        };
        match runtime {
            Some(view) if !self.apps.contains(client) && view.apps.contains(client) => {
                view.apps.check(client, key, now).await
            }
            _ => self.apps.check(client, key, now).await,
        }
    }
}

/// Each credential is sent once, in one place: one `Authorization`, one `X-API-Key` (not a
/// comma-joined list), one `X-Client-ID`, and no `access_token` query parameter beside an
/// `Authorization` header (RFC 6750 section 2).
pub(crate) fn check_single_credentials(
    headers: &HeaderMap,
    keys: &KeyHeaders,
    query: Option<&str>,
) -> Result<(), AuthError> {
    let named = [
        (Some(&AUTHORIZATION), "Authorization"),
        (Some(&keys.key), keys.key_text.as_str()),
        (
            keys.client_id.as_ref(),
            keys.client_id_text.as_deref().unwrap_or(""),
        ),
    ];
    for (name, shown) in named {
        let Some(name) = name else { continue };
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        let listed = *name == keys.key && first.is_some_and(|v| v.as_bytes().contains(&b','));
        if values.next().is_some() || listed {
            return Err(AuthError::RepeatedCredential(shown.to_string()));
        }
    }
    let token_in_query = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split('=').next() == Some("access_token"))
    });
    if token_in_query && headers.contains_key(AUTHORIZATION) {
        return Err(AuthError::TokenInQueryAndHeader);
    }
    Ok(())
}

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
    fn policies_and_single_credentials() {
        assert_eq!(
            AuthPolicy::parse("bearer_or_api_key"),
            Some(AuthPolicy::BearerOrApiKey)
        );
        let mut h = HeaderMap::new();
        h.insert(API_KEY_HEADER, http::HeaderValue::from_static("a, b"));
        assert_eq!(
            check_single_credentials(&h, &KeyHeaders::default(), None),
            Err(AuthError::RepeatedCredential("X-API-Key".into()))
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, http::HeaderValue::from_static("Bearer x"));
        assert!(
            check_single_credentials(&h, &KeyHeaders::default(), Some("a=1&access_token_x=2"))
                .is_ok()
        );
        assert_eq!(
            check_single_credentials(&h, &KeyHeaders::default(), Some("a=1&access_token=2")),
            Err(AuthError::TokenInQueryAndHeader)
        );
    }
}
