//! OAuth 2.0 token service: the gateway's own authorization server, as a library the pipeline calls.
//!
//! `TokenService::build` compiles `[oauth]` and opens the store once at start-up;
//! `TokenService::handle` answers one collected request, dispatching on the path. The paths below
//! are the defaults; `[oauth.endpoints]` moves each endpoint (see `endpoints`):
//!
//! | path | method | what |
//! |---|---|---|
//! | `/oauth2/token` | POST | `client_credentials`, `refresh_token` (rotation, reuse revokes the family), `authorization_code` (PKCE S256) |
//! | `/oauth2/authorize` | GET | validates the request, redirects to `login_url` with a `login_challenge` |
//! | `/oauth2/authorize/accept` | POST | the login backend confirms the user; answers `{"redirect_to"}` with `code` and `state` |
//! | `/oauth2/authorize/reject` | POST | the login backend refuses; answers `{"redirect_to"}` with `error=access_denied` |
//! | `/oauth2/revoke` | POST | RFC 7009 |
//! | `/oauth2/introspect` | POST | RFC 7662 |
//! | `/.well-known/oauth-authorization-server` | GET | RFC 8414 |
//! | `/.well-known/jwks.json` | GET | public signing keys |
//!
//! Errors use the RFC 6749 envelope (`error::OAuthError`). Access tokens are JWTs the gateway's
//! bearer routes verify with `verification_keys()`; revoked `jti`s reach the verifier through the
//! `RevocationHook` given at build time (and `revoked_jtis()` seeds it at start-up).

pub mod authorize;
pub mod client;
pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod introspect;
pub mod params;
pub mod registration;
pub mod revoke;
pub mod settings;
pub mod signer;
pub mod token;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, Response};

use crate::clock::SharedClock;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::RawConfig;
use crate::store::{EmbeddedStore, IssuedAccess, Store, StoreError};

pub use client::{NewClient, new_client};
pub use error::OAuthError;
pub use signer::{AccessClaims, VerificationKey};

use client::ClientRegistry;
use endpoints::Endpoint;
use settings::Settings;

fn post(m: &Method) -> Result<(), OAuthError> {
    if m == Method::POST {
        Ok(())
    } else {
        Err(OAuthError::MethodNotAllowed { allow: "POST" })
    }
}

fn get(m: &Method) -> Result<(), OAuthError> {
    if m == Method::GET || m == Method::HEAD {
        Ok(())
    } else {
        Err(OAuthError::MethodNotAllowed { allow: "GET, HEAD" })
    }
}

/// Called with `(jti, exp)` for every access token revoked (directly, or with its grant family),
/// so the bearer verifier refuses it until `exp`, its verified-token cache included.
pub type RevocationHook = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Prefix of refresh tokens (tells them apart from JWT access tokens at revoke/introspect).
pub const REFRESH_PREFIX: &str = "prt_";
/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "pac_";

/// The token service.
pub struct TokenService {
    settings: Settings,
    clients: ClientRegistry,
    store: Arc<dyn Store>,
    clock: SharedClock,
    hook: Option<RevocationHook>,
    runtime: Option<Arc<crate::credentials::RuntimeCredentials>>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// A random opaque token with a prefix: 256 bits, base64url.
pub(crate) fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random id (jti, family id).
pub(crate) fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TokenService {
    /// Compiles `[oauth]` and opens the embedded store; `None` (with diagnostics) on any problem,
    /// or when the config has no `[oauth]` section (then nothing is reported).
    pub fn build(
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        clock: SharedClock,
        hook: Option<RevocationHook>,
    ) -> Option<Self> {
        let oauth = raw.oauth.as_ref()?;
        let settings = settings::compile(oauth, diags)?;
        let store = match EmbeddedStore::open(&settings.store_path) {
            Ok(s) => s,
            Err(e) => {
                diags.push(
                    Some(oauth.store.span()),
                    "oauth.store",
                    format!("cannot open {}: {e}", settings.store_path.display()),
                    "make the directory writable, and stop any other process using the file",
                );
                return None;
            }
        };
        Some(Self::with_store(settings, Arc::new(store), clock, hook))
    }

    /// Compiles `[oauth]` on a store opened elsewhere (the Redis store of `[state]`);
    /// `oauth.store` is then not opened.
    pub fn build_with_store(
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        clock: SharedClock,
        hook: Option<RevocationHook>,
        store: Arc<dyn Store>,
    ) -> Option<Self> {
        let settings = settings::compile(raw.oauth.as_ref()?, diags)?;
        Some(Self::with_store(settings, store, clock, hook))
    }

    /// Compiles `[oauth]` for `portcullis check`: every setting is validated, but the store file
    /// is not opened (a running gateway holds its lock); an in-memory store stands in for it.
    pub fn check(raw: &RawConfig, diags: &mut Diagnostics<'_>, clock: SharedClock) -> Option<Self> {
        let oauth = raw.oauth.as_ref()?;
        let settings = settings::compile(oauth, diags)?;
        match EmbeddedStore::in_memory() {
            Ok(store) => Some(Self::with_store(settings, Arc::new(store), clock, None)),
            Err(e) => {
                diags.push(
                    Some(oauth.store.span()),
                    "oauth.store",
                    format!("cannot create a scratch store: {e}"),
                    "report this as a bug",
                );
                None
            }
        }
    }

    /// Builds the service from a reloaded config, keeping this service's open store (the store
    /// file is locked while open, so a reload must not reopen it). A changed `oauth.store` path
    /// is reported and refused: moving the store needs a restart.
    pub fn reload(
        &self,
        raw: &RawConfig,
        diags: &mut Diagnostics<'_>,
        clock: SharedClock,
        hook: Option<RevocationHook>,
    ) -> Option<Self> {
        let oauth = raw.oauth.as_ref()?;
        let settings = settings::compile(oauth, diags)?;
        if settings.store_path != self.settings.store_path {
            diags.push(
                Some(oauth.store.span()),
                "oauth.store",
                "the store path cannot change on reload",
                "restart the gateway to move the store, or keep the old path",
            );
            return None;
        }
        Some(Self::with_store(settings, self.store.clone(), clock, hook))
    }

    /// A service on compiled settings and any store backend.
    pub fn with_store(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: SharedClock,
        hook: Option<RevocationHook>,
    ) -> Self {
        let clients = ClientRegistry::new(settings.clients.clone());
        Self {
            settings,
            clients,
            store,
            clock,
            hook,
            runtime: None,
        }
    }

    /// Also accepts the clients created at run time (after the config's own).
    pub fn with_runtime(mut self, runtime: Arc<crate::credentials::RuntimeCredentials>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Authenticates a client of the config, else of the run-time view; see
    /// `ClientRegistry::authenticate`.
    pub(crate) fn authenticate(
        &self,
        creds: &params::ClientCredentials,
    ) -> Result<Arc<client::Client>, OAuthError> {
        let now = self.now();
        match &self.runtime {
            Some(rt) if !self.clients.contains(&creds.client_id) => {
                rt.view().clients.authenticate(creds, now)
            }
            _ => self.clients.authenticate(creds, now),
        }
    }

    /// A client of the config or of the run-time view, active or not.
    pub(crate) fn client(&self, client_id: &str) -> Option<Arc<client::Client>> {
        if let Some(c) = self.clients.get(client_id) {
            return Some(c.clone());
        }
        let view = self.runtime.as_ref()?.view();
        view.clients.get(client_id).cloned()
    }

    /// True when the client exists (config or run time) and is active.
    pub(crate) fn client_is_active(&self, client_id: &str) -> bool {
        self.client(client_id).is_some_and(|c| c.active)
    }

    /// The clients of the config file.
    pub fn config_clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// Answers one request (body already collected and size-capped by the caller).
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        match self.dispatch(req).await {
            Ok(resp) => resp,
            Err(e) => e.response(),
        }
    }

    async fn dispatch(&self, req: Request<Bytes>) -> Result<Response<Bytes>, OAuthError> {
        let (parts, body) = req.into_parts();
        let Some((endpoint, dialect)) = self.settings.endpoints.find(parts.uri.path()) else {
            return Err(OAuthError::NotFound);
        };
        let query = parts.uri.query();
        if endpoint == Endpoint::Authorize {
            get(&parts.method)?;
            // RFC 6749 section 2.3.1: a secret never travels in the URI.
            params::refuse_in_query(query, &["client_secret"])?;
            return authorize::authorize(self, query.unwrap_or(""), dialect);
        }
        if matches!(endpoint, Endpoint::Discovery | Endpoint::Jwks) {
            get(&parts.method)?;
            return Ok(match endpoint {
                Endpoint::Discovery => discovery::metadata(self),
                _ => discovery::jwks(self),
            });
        }
        post(&parts.method)?;
        params::refuse_in_query(query, &["client_id", "client_secret"])?;
        let headers = &parts.headers;
        match endpoint {
            Endpoint::Token => token::token(self, headers, &body, dialect).await,
            Endpoint::Accept => authorize::accept(self, headers, &body).await,
            Endpoint::Reject => authorize::reject(self, headers, &body).await,
            Endpoint::Revoke => revoke::revoke(self, headers, &body).await,
            _ => introspect::introspect(self, headers, &body).await,
        }
    }

    /// Every path `[oauth.endpoints]` names, and the method it answers.
    pub fn configured_paths(&self) -> Vec<(&str, Method)> {
        self.settings.endpoints.explicit()
    }

    /// Largest request body the service reads (`oauth.max_body_bytes`).
    pub fn max_body_bytes(&self) -> u64 {
        self.settings.max_body_bytes
    }

    /// One line per relaxation of the secure defaults, for `portcullis check`.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.settings.clients {
            let id = &c.client_id;
            if c.is_public() {
                out.push(format!(
                    "oauth client {id} is public (token_endpoint_auth_method = \"none\"): no secret, PKCE required, refresh tokens rotate"
                ));
            } else if !c.require_pkce {
                out.push(format!(
                    "oauth client {id} does not require PKCE (require_pkce = false)"
                ));
            }
            if c.refresh_without_credentials {
                out.push(format!(
                    "oauth client {id} may refresh with the refresh token alone (refresh_without_credentials = true)"
                ));
            }
        }
        for (path, d) in self.settings.endpoints.relaxed() {
            if d.default_grant_type {
                out.push(format!(
                    "oauth path {path} assumes grant_type when it is absent (default_grant_type = true)"
                ));
            }
            if d.default_response_type {
                out.push(format!(
                    "oauth path {path} assumes response_type=code when it is absent (default_response_type)"
                ));
            }
            if d.expires_at {
                out.push(format!(
                    "oauth path {path} adds expires_at to token responses (expires_at = true)"
                ));
            }
        }
        out
    }

    /// The absolute URL of `endpoint`'s advertised path.
    pub(crate) fn url(&self, endpoint: Endpoint) -> String {
        format!(
            "{}{}",
            self.settings.issuer,
            self.settings.endpoints.path(endpoint)
        )
    }

    /// The public half of every signing key, for the gateway's bearer routes (kid, alg pinned to
    /// the key, `DecodingKey`, JWK). Tokens this service issues verify with these, with
    /// `iss = issuer()` and `aud = audience()`.
    pub fn verification_keys(&self) -> Vec<VerificationKey> {
        self.settings.signer.verification_keys()
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        self.settings.signer.issuer()
    }

    /// The `aud` of issued tokens.
    pub fn audience(&self) -> &str {
        self.settings.signer.audience()
    }

    /// False when `client_id` is a registered client that is suspended (or unknown): the bearer
    /// verifier refuses access tokens whose `client_id` claim names such a client.
    pub fn client_active(&self, client_id: &str) -> bool {
        self.client_is_active(client_id)
    }

    /// True when `client_id` is one of this service's clients and it is suspended: its access
    /// tokens must be refused even before they expire. Unknown ids (other issuers) are not judged.
    pub fn client_suspended(&self, client_id: &str) -> bool {
        if self.clients.contains(client_id) {
            return !self.clients.is_active(client_id);
        }
        self.runtime
            .as_ref()
            .is_some_and(|rt| rt.client_refused(client_id))
    }

    /// The revoked access tokens that have not expired yet, to seed the verifier at start-up.
    pub async fn revoked_jtis(&self) -> Result<Vec<IssuedAccess>, StoreError> {
        self.store.revoked_jtis(self.now()).await
    }

    /// Deletes expired codes, refresh tokens, families and revocations; run it on a timer.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.store.purge_expired(self.now()).await
    }

    /// The embedded store's file (`oauth.store`; unused with the Redis backend).
    pub fn store_path(&self) -> &std::path::Path {
        &self.settings.store_path
    }

    /// The store (for operators' tools and the Redis migration).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.unix_secs()
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Tells the verifier about revoked access tokens.
    pub(crate) fn notify_revoked(&self, revoked: &[IssuedAccess]) {
        if let Some(hook) = &self.hook {
            for a in revoked {
                hook(&a.jti, a.exp);
            }
        }
    }

    /// Mints an access token (JWT) for `client_id` / `sub` / `scopes`; returns it with its record.
    pub(crate) fn mint_access(
        &self,
        client_id: &str,
        sub: &str,
        scopes: &[String],
        jti: String,
    ) -> Result<(String, IssuedAccess), OAuthError> {
        let now = self.now();
        let claims = AccessClaims {
            iss: self.settings.signer.issuer().to_string(),
            sub: sub.to_string(),
            aud: self.settings.signer.audience().to_string(),
            exp: now + self.settings.access_ttl,
            iat: now,
            jti,
            scope: scopes.join(" "),
            client_id: client_id.to_string(),
        };
        let token = self
            .settings
            .signer
            .sign(&claims)
            .map_err(OAuthError::Server)?;
        Ok((
            token,
            IssuedAccess {
                jti: claims.jti,
                exp: claims.exp,
            },
        ))
    }

    /// Verifies one of this service's access tokens (signature, iss, aud, exp), not revocation.
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        self.settings.signer.verify(token, self.now())
    }
}
