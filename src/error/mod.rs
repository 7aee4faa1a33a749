//! Errors: the closed `Reject` enum every pipeline step returns, and its one mapping to HTTP.
//!
//! `Reject::problem` is the single exhaustive match from "what went wrong" to status, code,
//! description and headers (DESIGN section 7). `envelope` renders a `Problem` in the route
//! class's style. Nothing here logs or counts.

pub mod envelope;

use http::StatusCode;

use crate::auth::{AuthError, KeyHeaders};

pub use envelope::{Envelope, ErrorStyle, render};

/// Why a request ended before (or instead of) reaching its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Malformed request; the text says what to fix.
    BadRequest(String),
    /// No route for the path (or host).
    NotFound,
    /// The route exists but not for this method; `allow` lists the methods it takes.
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: String,
    },
    /// Body larger than the route's limit.
    PayloadTooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// Request head larger than the limit.
    HeadersTooLarge,
    /// Request target longer than the limit.
    UriTooLong {
        /// The limit, bytes.
        limit: usize,
    },
    /// The request already passed this gateway (its `Via` pseudonym): a forwarding loop.
    LoopDetected,
    /// The upstream's response broke the framing rules (`proxy::response`).
    BadUpstreamResponse,
    /// Credentials refused.
    Auth(AuthError),
    /// Over the class's rolling-window limit.
    RateLimited {
        /// Whole seconds until one request would be admitted (>= 1).
        retry_after_secs: u64,
    },
    /// The client paused inside its request body longer than `body_idle_timeout`.
    RequestTimeout,
    /// The upstream refused the connection or broke it.
    BadGateway,
    /// The upstream (or a backend the gateway needs) is unavailable.
    ServiceUnavailable(String),
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// A `closed` class could not check its rate limit: the shared state backend failed.
    StateUnavailable {
        /// Seconds after which to retry (>= 1).
        retry_after_secs: u64,
    },
    /// A webhook refused (signature, timestamp, replay) or not delivered.
    Webhook(crate::webhook::WebhookError),
    /// A WebSocket upgrade on a route without `websocket = true`.
    WebSocketNotAllowed,
    /// The client IP holds `[tunnels] max_per_ip` open tunnels already.
    TooManyTunnels {
        /// The cap.
        max_per_ip: usize,
    },
    /// The gateway holds `[tunnels] max_total` open tunnels already.
    TunnelsFull,
    /// A bug or an unexpected failure; never a panic. The text is logged, not sent.
    Internal(String),
}

impl From<crate::ratelimit::BackendUnavailable> for Reject {
    fn from(e: crate::ratelimit::BackendUnavailable) -> Self {
        Reject::StateUnavailable {
            retry_after_secs: e.retry_after_secs,
        }
    }
}

impl From<AuthError> for Reject {
    fn from(e: AuthError) -> Self {
        Reject::Auth(e)
    }
}

/// A rendered-to-be error: status, catalogue code, consumer-facing description, extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Catalogue code, snake_case.
    pub code: &'static str,
    /// Human-readable description for the API consumer.
    pub description: String,
    /// Extra response headers (`WWW-Authenticate`, `Allow`, `Retry-After`).
    pub headers: Vec<(http::HeaderName, String)>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Quotes a value for an RFC 9110 auth-param (`"` and `\` escaped).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        }
    }
    out.push('"');
    out
}

impl Reject {
    /// The one mapping from a reject to its HTTP problem.
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        use http::header::{ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
        match self {
            Reject::BadRequest(why) => Problem::new(S::BAD_REQUEST, "invalid_request", why.clone()),
            Reject::NotFound => Problem::new(
                S::NOT_FOUND,
                "not_found",
                "No route matches this path. Check the URL against the API documentation.",
            ),
            Reject::MethodNotAllowed { allow } => Problem::new(
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("This path does not accept this method. Allowed: {allow}."),
            )
            .with(ALLOW, allow.clone()),
            Reject::PayloadTooLarge { limit } => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body exceeds the limit of {limit} bytes."),
            ),
            Reject::HeadersTooLarge => Problem::new(
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "The request headers exceed the size limit.",
            ),
            Reject::UriTooLong { limit } => Problem::new(
                S::URI_TOO_LONG,
                "uri_too_long",
                format!("The request target exceeds the limit of {limit} bytes."),
            ),
            Reject::LoopDetected => Problem::new(
                S::LOOP_DETECTED,
                "loop_detected",
                "This request has already passed through this gateway; it is refused to stop a forwarding loop.",
            ),
            Reject::BadUpstreamResponse => Problem::new(
                S::BAD_GATEWAY,
                "bad_gateway",
                "The upstream service sent an invalid response.",
            ),
            Reject::Auth(e) => auth_problem(e),
            Reject::Webhook(e) => webhook_problem(e),
            Reject::RateLimited { retry_after_secs } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("Rate limit exceeded. Retry after {retry_after_secs} seconds."),
            )
            .with(RETRY_AFTER, retry_after_secs.to_string()),
            Reject::RequestTimeout => Problem::new(
                S::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body stopped arriving; send it without long pauses.",
            )
            .with(http::header::CONNECTION, "close"),
            Reject::BadGateway => Problem::new(
                S::BAD_GATEWAY,
                "bad_gateway",
                "The upstream service could not be reached.",
            ),
            Reject::ServiceUnavailable(why) => {
                Problem::new(S::SERVICE_UNAVAILABLE, "service_unavailable", why.clone())
            }
            Reject::StateUnavailable { retry_after_secs } => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!(
                    "The rate limit cannot be checked right now. Retry after {retry_after_secs} seconds."
                ),
            )
            .with(RETRY_AFTER, retry_after_secs.to_string()),
            Reject::UpstreamTimeout => Problem::new(
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream service did not respond in time.",
            ),
            Reject::WebSocketNotAllowed => Problem::new(
                S::BAD_REQUEST,
                "websocket_not_allowed",
                "This path does not accept WebSocket upgrades; send the request without Upgrade.",
            ),
            Reject::TooManyTunnels { max_per_ip } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "too_many_tunnels",
                format!(
                    "This client already holds {max_per_ip} open WebSocket connections; close one and retry."
                ),
            )
            .with(RETRY_AFTER, "1"),
            Reject::TunnelsFull => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "The gateway holds its maximum of open WebSocket connections; retry later.",
            )
            .with(RETRY_AFTER, "1"),
            Reject::Internal(_) => Problem::new(
                S::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "An internal error occurred. Contact support with the request id.",
            ),
        }
        .tap_www_authenticate(self, WWW_AUTHENTICATE)
    }
}

/// The challenge of API-key routes.
const API_KEY_CHALLENGE: &str = "ApiKey header=\"X-API-Key\", client_id_header=\"X-Client-ID\"";

impl Problem {
    /// Adds `WWW-Authenticate` to credential failures: the Bearer challenges of RFC 6750
    /// section 3, and for API-key 401s an `ApiKey` challenge naming the headers to send (a 401
    /// must carry a challenge, RFC 9110 section 15.5.2; there is no registered API-key scheme).
    fn tap_www_authenticate(self, reject: &Reject, name: http::HeaderName) -> Self {
        let value = match reject {
            Reject::Auth(
                AuthError::MissingApiKey
                | AuthError::MissingClientId
                | AuthError::InvalidCredentials,
            ) => API_KEY_CHALLENGE.to_string(),
            Reject::Auth(AuthError::MissingAuthorization { realm }) => {
                format!("Bearer realm={}", quoted(realm))
            }
            Reject::Auth(AuthError::InvalidAuthorizationFormat) => {
                "Bearer error=\"invalid_request\"".to_string()
            }
            Reject::Auth(AuthError::InvalidToken(why)) => format!(
                "Bearer error=\"invalid_token\", error_description={}",
                quoted(why)
            ),
            Reject::Auth(AuthError::InsufficientScope(scopes)) => format!(
                "Bearer error=\"insufficient_scope\", scope={}",
                quoted(scopes)
            ),
            // A webhook 401 names what is missing in its code; the challenge says a signature
            // is what this route takes (no registered scheme exists, as for API keys).
            Reject::Webhook(e) if e.is_unauthorized() => "Webhook".to_string(),
            _ => return self,
        };
        self.with(name, value)
    }
}

impl Problem {
    /// Rewrites an API-key problem for a route whose keys travel in other headers than
    /// `X-API-Key` + `X-Client-ID`: the description and the `WWW-Authenticate` challenge name
    /// the route's headers. Other problems, and default headers, are left as they are.
    pub fn name_key_headers(&mut self, reject: &Reject, keys: &KeyHeaders) {
        if *keys == KeyHeaders::default() {
            return;
        }
        let key = &keys.key_text;
        let description = match (reject, &keys.client_id_text) {
            (Reject::Auth(AuthError::MissingApiKey), Some(c)) => {
                format!("Missing {key} header. Send your API key with your {c}.")
            }
            (Reject::Auth(AuthError::MissingApiKey), None) => {
                format!("Missing {key} header. Send your API key in it.")
            }
            (Reject::Auth(AuthError::MissingClientId), Some(c)) => {
                format!("Missing {c} header. Send your client id with your {key}.")
            }
            (Reject::Auth(AuthError::InvalidCredentials), None) => {
                "The API key does not match an active app.".to_string()
            }
            (Reject::Auth(AuthError::InvalidCredentials), Some(_)) => self.description.clone(),
            _ => return,
        };
        self.description = description;
        for (name, value) in &mut self.headers {
            if *name == http::header::WWW_AUTHENTICATE {
                *value = keys.challenge();
            }
        }
    }
}

fn auth_problem(e: &AuthError) -> Problem {
    use StatusCode as S;
    match e {
        AuthError::MissingAuthorization { .. } => Problem::new(
            S::UNAUTHORIZED,
            "missing_authorization",
            "Missing Authorization header. Send 'Authorization: Bearer <access token>'.",
        ),
        AuthError::InvalidAuthorizationFormat => Problem::new(
            S::UNAUTHORIZED,
            "invalid_authorization_format",
            "Authorization header must be exactly one 'Bearer <access token>'.",
        ),
        AuthError::InvalidToken(why) => Problem::new(
            S::UNAUTHORIZED,
            "unauthorized",
            format!("Invalid access token: {why}."),
        ),
        AuthError::InsufficientScope(scopes) => Problem::new(
            S::FORBIDDEN,
            "insufficient_scope",
            format!("The access token lacks a required scope. Required: {scopes}."),
        ),
        AuthError::AppScopeMissing(scopes) => Problem::new(
            S::FORBIDDEN,
            "forbidden",
            format!("Insufficient permissions for this operation. Required: {scopes}."),
        ),
        AuthError::RepeatedCredential(header) => Problem::new(
            S::BAD_REQUEST,
            "invalid_request",
            format!("Send the {header} header once, with one value."),
        ),
        AuthError::TokenInQueryAndHeader => Problem::new(
            S::BAD_REQUEST,
            "invalid_request",
            "Send the access token in the Authorization header only, not also as the access_token query parameter.",
        ),
        AuthError::MissingApiKey => Problem::new(
            S::UNAUTHORIZED,
            "missing_api_key",
            "Missing X-API-Key header. Send your API key with your X-Client-ID.",
        ),
        AuthError::MissingClientId => Problem::new(
            S::UNAUTHORIZED,
            "missing_client_id",
            "Missing X-Client-ID header. Send your client id with your X-API-Key.",
        ),
        AuthError::InvalidCredentials => Problem::new(
            S::UNAUTHORIZED,
            "invalid_credentials",
            "The client id and API key do not match an active app.",
        ),
        AuthError::AppInactive => Problem::new(
            S::FORBIDDEN,
            "partner_app_inactive",
            "This app is suspended. Contact the API provider to reactivate it.",
        ),
        AuthError::MixedCredentials => Problem::new(
            S::BAD_REQUEST,
            "invalid_request",
            "Send either a bearer token or an API key, not both.",
        ),
    }
}

fn webhook_problem(e: &crate::webhook::WebhookError) -> Problem {
    use crate::webhook::WebhookError as W;
    use StatusCode as S;
    let signature = |why: String| Problem::new(S::UNAUTHORIZED, "invalid_signature", why);
    let timestamp = |why: String| Problem::new(S::UNAUTHORIZED, "invalid_timestamp", why);
    match e {
        W::Repeated(h) => Problem::new(
            S::BAD_REQUEST,
            "invalid_request",
            format!("Send the {h} header once, with one value."),
        ),
        W::MissingSignature(h) => signature(format!("Missing {h} header. Sign the webhook.")),
        W::MalformedSignature(why) => {
            signature(format!("The webhook signature is malformed: {why}."))
        }
        W::InvalidSignature => signature("The webhook signature does not match the body.".into()),
        W::MissingId(h) => signature(format!(
            "Missing or malformed {h} header; it is part of the signed payload."
        )),
        W::MissingTimestamp(h) => timestamp(format!("Missing {h} header.")),
        W::MalformedTimestamp(h) => timestamp(format!(
            "The {h} header must be the Unix time in seconds, digits only."
        )),
        W::OutOfWindow(secs) => Problem::new(
            S::UNAUTHORIZED,
            "timestamp_out_of_window",
            format!("The webhook timestamp is more than {secs} seconds from the gateway's clock."),
        ),
        W::Replayed => Problem::new(
            S::UNAUTHORIZED,
            "replayed_webhook",
            "This webhook was already received; it is accepted once.",
        ),
        W::ReplayUnavailable => Problem::new(
            S::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Webhooks cannot be checked for replay right now. Retry later.",
        )
        .with(http::header::RETRY_AFTER, "1"),
        W::MissingDestination(h) => Problem::new(
            S::BAD_REQUEST,
            "invalid_request",
            format!("Missing {h} header. Name an allow-listed destination."),
        ),
        W::DestinationNotAllowed => Problem::new(
            S::FORBIDDEN,
            "destination_not_allowed",
            "The destination is not on this route's allow-list.",
        ),
        W::DeliveryFailed {
            attempts,
            last_status,
        } => Problem::new(
            S::BAD_GATEWAY,
            "webhook_delivery_failed",
            match last_status {
                Some(s) => format!(
                    "The webhook was not delivered after {attempts} attempts; the last answer was HTTP {s}."
                ),
                None => format!(
                    "The webhook was not delivered after {attempts} attempts; the destination could not be reached."
                ),
            },
        ),
    }
}
