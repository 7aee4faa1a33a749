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
mod presented;
pub mod provider;
mod provider_config;
pub mod scope;
pub mod settings;
pub mod token_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use http::{HeaderMap, HeaderName, HeaderValue};
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
use presented::Presented;
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

/// The authenticated caller. Built once per verified token (then cached) or per app, with the
/// identity header values already made, so a request only clones them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    subject: String,
    client_id: Option<String>,
    scopes: Vec<String>,
    method: AuthMethod,
    identity: IdentityValues,
}

/// The values of the identity headers a backend receives (`None`: not a valid header value,
/// so the header is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityValues {
    /// `X-Auth-Subject`.
    pub subject: Option<HeaderValue>,
    /// `X-Auth-Client-Id`.
    pub client_id: Option<HeaderValue>,
    /// `X-Auth-Scopes`, space-separated.
    pub scopes: Option<HeaderValue>,
    /// `X-Auth-Method`.
    pub method: HeaderValue,
}

impl Principal {
    /// A principal; the identity header values are made here, once.
    pub fn new(
        subject: String,
        client_id: Option<String>,
        scopes: Vec<String>,
        method: AuthMethod,
    ) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).ok();
        let identity = IdentityValues {
            subject: value(&subject),
            client_id: client_id.as_deref().and_then(value),
            scopes: value(&scopes.join(" ")),
            method: HeaderValue::from_static(method.as_str()),
        };
        Self {
            subject,
            client_id,
            scopes,
            method,
            identity,
        }
    }

    /// `sub` of the token, or the app's client id.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `client_id` / `azp` of the token, or the app's client id.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Granted scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// How the caller authenticated.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The identity header values.
    pub fn identity(&self) -> &IdentityValues {
        &self.identity
    }
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
    ) -> Result<Option<Arc<Principal>>, AuthError> {
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
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let sent = Presented::scan(headers, keys);
        let has_key_style = sent.key.present() || sent.client_id.present();
        if sent.any_bearer && has_key_style {
            return Err(AuthError::MixedCredentials);
        }
        // A webhook route's proof is its signature (`webhook::Inbound::verify`), never a token.
        if matches!(policy, AuthPolicy::None | AuthPolicy::Webhook) {
            return Ok(None);
        }
        sent.check_single(keys, query)?;
        match policy {
            AuthPolicy::None | AuthPolicy::Webhook => Ok(None),
            AuthPolicy::Bearer => self.bearer(&sent, providers).await.map(Some),
            AuthPolicy::ApiKey => self.api_key(keys, &sent).await.map(Some),
            AuthPolicy::BearerOrApiKey => {
                if sent.any_bearer {
                    self.bearer(&sent, providers).await.map(Some)
                } else if has_key_style {
                    self.api_key(keys, &sent).await.map(Some)
                } else if sent.authorization.present() {
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
        sent: &Presented<'_>,
    ) -> Result<Arc<Principal>, AuthError> {
        let key = sent.key.single().ok_or(AuthError::MissingApiKey)?;
        let now = self.state.clock.unix_secs();
        let runtime = self.runtime.as_ref().map(|r| r.view());
        if keys.client_id.is_none() {
            let key = key.ok_or(AuthError::InvalidCredentials)?;
            return match (self.apps.check_key_only(key, now), runtime) {
                (Err(AuthError::InvalidCredentials), Some(view)) => {
                    view.apps.check_key_only(key, now)
                }
                (outcome, _) => outcome,
            };
        }
        let client = sent.client_id.single().ok_or(AuthError::MissingClientId)?;
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

/// Each credential is sent once, in one place (see `Presented::check_single`); the fuzz
/// targets call this.
pub(crate) fn check_single_credentials(
    headers: &HeaderMap,
    keys: &KeyHeaders,
    query: Option<&str>,
) -> Result<(), AuthError> {
    Presented::scan(headers, keys).check_single(keys, query)
}
