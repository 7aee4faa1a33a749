//! OAuth errors: the RFC 6749 section 5.2 error codes of the token service and their HTTP mapping.
//!
//! `OAuthError::problem` is the one mapping to a `Problem` (status, code, description, headers);
//! the lead folds it into `Reject` later. `OAuthError::response` renders the RFC 6749 envelope
//! `{"error", "error_description"}` with `Cache-Control: no-store`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use thiserror::Error;

use crate::error::Problem;
use crate::error::envelope::oauth_description;

/// Why a token-service request failed. Descriptions are for the API consumer: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OAuthError {
    /// Malformed request: missing or repeated parameter, bad body, two client-auth styles.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed; `basic` = the client tried HTTP Basic.
    #[error("invalid_client: {description}")]
    InvalidClient {
        /// The client used HTTP Basic (the response then carries `WWW-Authenticate: Basic`).
        basic: bool,
        /// What failed.
        description: String,
    },
    /// Bad, expired, revoked, reused or foreign grant (code or refresh token), or PKCE mismatch.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// The client may not use this grant type (or is suspended).
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// Unknown `grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// Unknown `response_type` at the authorization endpoint.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(String),
    /// Scope beyond what the client (or grant) allows.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// No such token-service endpoint.
    #[error("not found")]
    NotFound,
    /// The endpoint exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
    /// The store or signer failed; the text is logged, not sent.
    #[error("server_error: {0}")]
    Server(String),
    /// The shared state (Redis) is down or slow: `503`, worth retrying; logged, not sent.
    #[error("temporarily_unavailable: {0}")]
    Unavailable(String),
}

impl OAuthError {
    /// Shorthand for `InvalidRequest`.
    pub fn request(why: impl Into<String>) -> Self {
        Self::InvalidRequest(why.into())
    }

    /// Shorthand for `InvalidGrant`.
    pub fn grant(why: impl Into<String>) -> Self {
        Self::InvalidGrant(why.into())
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Server(_) => "server_error",
            Self::Unavailable(_) => "temporarily_unavailable",
        }
    }

    /// The one mapping to status, code, description and headers.
    pub fn problem(&self) -> Problem {
        let (status, description, headers): (StatusCode, String, Vec<(http::HeaderName, String)>) =
            match self {
                Self::InvalidRequest(d)
                | Self::InvalidGrant(d)
                | Self::UnauthorizedClient(d)
                | Self::UnsupportedGrantType(d)
                | Self::UnsupportedResponseType(d)
                | Self::InvalidScope(d) => (StatusCode::BAD_REQUEST, d.clone(), Vec::new()),
                Self::InvalidClient { basic, description } => {
                    let headers = if *basic {
                        vec![(
                            header::WWW_AUTHENTICATE,
                            "Basic realm=\"portcullis\"".to_string(),
                        )]
                    } else {
                        Vec::new()
                    };
                    (StatusCode::UNAUTHORIZED, description.clone(), headers)
                }
                Self::NotFound => (
                    StatusCode::NOT_FOUND,
                    "No token-service endpoint at this path.".to_string(),
                    Vec::new(),
                ),
                Self::MethodNotAllowed { allow } => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("This endpoint accepts only {allow}."),
                    vec![(header::ALLOW, (*allow).to_string())],
                ),
                Self::Server(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The token service failed; try again later.".to_string(),
                    Vec::new(),
                ),
                Self::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The token service is briefly unavailable; retry shortly.".to_string(),
                    vec![(header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER.to_string())],
                ),
            };
        Problem {
            status,
            code: self.code(),
            description: oauth_description(&description).into_owned(),
            headers,
        }
    }

    /// The response in the RFC 6749 envelope.
    pub fn response(&self) -> Response<Bytes> {
        match self {
            Self::Server(why) => tracing::error!(error = %why, "token service failure"),
            // The state layer logs Redis failures (rate-limited); one request's is not news.
            Self::Unavailable(why) => tracing::debug!(error = %why, "token service unavailable"),
            _ => {}
        }
        let problem = self.problem();
        let body = serde_json::json!({
            "error": problem.code,
            "error_description": problem.description,
        });
        let mut resp = json_response(problem.status, &body);
        resp.extensions_mut().insert(Refused(problem.code));
        for (name, value) in problem.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}

/// The code of an error response of the token service, for the gateway's access log and
/// refusal metrics (a response extension; never sent).
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub &'static str);

/// A JSON response with `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section 5.1).
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Seconds a client is told to wait after a `503` (the state layer re-checks Redis about this
/// often).
const UNAVAILABLE_RETRY_AFTER: u32 = 1;

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e.is_unavailable() {
            true => Self::Unavailable(e.to_string()),
            false => Self::Server(e.to_string()),
        }
    }
}
