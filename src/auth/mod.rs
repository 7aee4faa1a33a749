//! Authentication: who is calling, by the route's policy (bearer JWT, API-key pair, either, none).
//!
//! The pipeline calls `Authenticator::authenticate` with the route's policy and the request
//! headers; a `Principal` comes back, or an `AuthError` that `error` maps to the catalogue.

use thiserror::Error;

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
    /// A required scope is missing; the field lists the route's required scopes, space-separated.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
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
