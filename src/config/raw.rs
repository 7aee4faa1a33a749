//! Raw configuration: the TOML file as serde reads it, unknown keys refused, spans kept.
//!
//! Nothing here is interpreted: durations, limits, addresses and references stay strings wrapped
//! in `Spanned` so that `validate` can report each problem at its file:line:column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A string value with its position in the file.
pub type SString = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listener and client-facing settings.
    pub server: Server,
    /// Size and time limits.
    #[serde(default)]
    pub limits: Limits,
    /// The admin listener (health, metrics, reload).
    pub admin: Option<Admin>,
    /// Route classes: a rate limit and an error envelope style.
    #[serde(default)]
    pub classes: BTreeMap<String, Spanned<Class>>,
    /// Upstreams by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<Upstream>>,
    /// Routes, matched by longest path prefix.
    #[serde(default)]
    pub routes: Vec<Spanned<Route>>,
    /// Rate-limiter settings shared by all classes.
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// Bearer JWT verification.
    pub jwt: Option<Jwt>,
    /// API-key apps.
    #[serde(default)]
    pub apps: Vec<Spanned<App>>,
    /// Names of the identity headers sent to backends.
    #[serde(default)]
    pub identity: IdentityHeaders,
    /// The built-in OAuth 2.0 token service; absent = no token service.
    pub oauth: Option<OAuth>,
    /// Where shared state lives (`embedded` or `redis`); owned by `state`.
    pub state: Option<crate::state::RawState>,
    /// Request-syntax rules (owned by `request_check`).
    #[serde(default)]
    pub http: crate::request_check::RawHttpRules,
    /// `Via`, loop detection, headers stripped from untrusted peers (owned by `proxy::forwarding`).
    #[serde(default)]
    pub forwarding: crate::proxy::forwarding::RawForwarding,
    /// Inbound verification schemes and outbound senders (owned by `webhook`).
    pub webhooks: Option<crate::webhook::RawWebhooks>,
    /// WebSocket tunnel limits (owned by `tunnel::settings`).
    #[serde(default)]
    pub tunnels: crate::tunnel::settings::RawTunnels,
    /// Trace context and OTLP export (owned by `trace::settings`).
    #[serde(default)]
    pub tracing: crate::trace::RawTracing,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// `host:port` to listen on.
    pub listen: SString,
    /// TLS certificate and key (PEM files); plain HTTP when absent.
    pub tls: Option<Tls>,
    /// CIDRs whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<SString>,
    /// Class whose envelope answers requests that match no route.
    pub default_class: Option<SString>,
    /// Tokio worker threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    /// Time to let in-flight requests finish on shutdown.
    pub shutdown_grace: Option<SString>,
}

/// `[server.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain, PEM.
    pub cert: SString,
    /// Private key, PEM.
    pub key: SString,
}

/// `[limits]`: every key has a documented default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request head (request line + headers), e.g. `"16KiB"`.
    pub max_header_bytes: Option<SString>,
    /// Largest request body, e.g. `"10MiB"`; routes may override.
    pub max_body_bytes: Option<SString>,
    /// Time a client has to send the request head, e.g. `"10s"`.
    pub header_read_timeout: Option<SString>,
    /// Time to connect to an upstream.
    pub upstream_connect_timeout: Option<SString>,
    /// Time to wait for an upstream's response head.
    pub upstream_response_timeout: Option<SString>,
    /// Idle keep-alive connections kept per upstream.
    pub upstream_pool_idle_per_host: Option<usize>,
    /// How long an idle upstream connection is kept, e.g. `"90s"`.
    pub upstream_pool_idle_timeout: Option<SString>,
    /// Time a client has to finish the TLS handshake.
    pub tls_handshake_timeout: Option<SString>,
    /// How long a client connection with no request in flight is kept (HTTP/1.1 keep-alive, h2).
    pub client_idle_timeout: Option<SString>,
    /// Longest pause inside a request body.
    pub body_idle_timeout: Option<SString>,
    /// Longest a response write may stay blocked on a client that does not read.
    pub client_write_timeout: Option<SString>,
    /// Longest pause inside an upstream's response body.
    pub upstream_body_idle_timeout: Option<SString>,
    /// Open client connections, in total.
    pub max_connections: Option<usize>,
    /// Open client connections from one IP address.
    pub max_connections_per_ip: Option<usize>,
    /// HTTP/2 streams in flight on one connection.
    pub h2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 PING and SETTINGS frames a client may send per second before GOAWAY.
    pub h2_max_control_frames_per_sec: Option<u32>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `host:port` of the admin listener.
    pub listen: SString,
    /// Operator tokens of the credential API (`admin_api::settings`).
    #[serde(default)]
    pub tokens: Vec<Spanned<crate::admin_api::settings::RawToken>>,
}

/// `[classes.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    /// `"N/W"`, e.g. `"1000/5m"`; absent = unlimited.
    pub limit: Option<SString>,
    /// `"partner"` or `"oauth"`.
    pub errors: SString,
    /// `"local"` (default), `"open"` or `"closed"`: what the limit does when Redis fails.
    pub on_backend_error: Option<SString>,
    /// Codes answered in the other style, e.g. `{ rate_limit_exceeded = "oauth" }`.
    #[serde(default)]
    pub envelopes: BTreeMap<String, SString>,
    /// The human-readable text of a code, e.g. `{ missing_api_key = "Missing API key" }`.
    #[serde(default)]
    pub messages: BTreeMap<String, SString>,
}

/// `[upstreams.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `"http"` (default) or `"echo"` (answered inside the gateway).
    pub kind: Option<SString>,
    /// Base URL for `http` upstreams, e.g. `"http://127.0.0.1:9001"`.
    pub url: Option<SString>,
    /// PEM file of the CA certificates trusted for an `https` upstream (instead of the public
    /// web roots), e.g. an internal CA.
    pub ca_file: Option<SString>,
    /// `kind = "webhook_out"`: the `[webhooks.outbound.NAME]` sender that delivers.
    pub webhook: Option<SString>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name in logs and metrics (default: the host and path prefix).
    pub name: Option<SString>,
    /// Path prefix, matched against the normalized path.
    pub path: SString,
    /// Host to match (without port); any host when absent.
    pub host: Option<SString>,
    /// Methods allowed; any when absent.
    pub methods: Option<Vec<SString>>,
    /// Route class name.
    pub class: SString,
    /// `"none"`, `"bearer"`, `"api_key"`, `"bearer_or_api_key"` or `"webhook"`.
    pub auth: Option<SString>,
    /// Scopes a token or app must all hold.
    #[serde(default)]
    pub scopes: Vec<SString>,
    /// Upstream name.
    pub upstream: SString,
    /// Overrides the class limit, `"N/W"`.
    pub limit: Option<SString>,
    /// Overrides `limits.max_body_bytes`.
    pub max_body_bytes: Option<SString>,
    /// Remove the consumed credentials (`Authorization` / `X-API-Key`) before forwarding; default true.
    pub strip_credentials: Option<bool>,
    /// Keep encoded slashes (`%2F`) in paths instead of refusing them; default false.
    pub allow_encoded_slashes: Option<bool>,
    /// Headers carrying the API key and client id (default `X-API-Key` + `X-Client-ID`).
    pub api_key_headers: Option<Spanned<crate::auth::api_key::RawKeyHeaders>>,
    /// JWT providers a bearer route accepts (names of `[jwt.providers.NAME]`, `"oauth"`,
    /// `"default"`); all configured providers when absent.
    pub providers: Option<Vec<SString>>,
    /// `auth = "webhook"`: the `[webhooks.inbound.NAME]` scheme requests must be signed with.
    pub webhook: Option<SString>,
    /// Accept WebSocket upgrades (HTTP/1.1 and RFC 8441) on this route; default false.
    pub websocket: Option<Spanned<bool>>,
}

/// `[rate_limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// IPv6 clients are grouped by this prefix length (default 64).
    pub ipv6_prefix: Option<Spanned<u8>>,
    /// Cap on tracked clients (default 1,000,000).
    pub max_tracked_clients: Option<Spanned<usize>>,
}

/// `[jwt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Accepted `iss` values; any when empty.
    #[serde(default)]
    pub issuers: Vec<SString>,
    /// Accepted `aud` values; any when empty.
    #[serde(default)]
    pub audiences: Vec<SString>,
    /// Clock skew tolerated on exp/nbf, e.g. `"30s"` (default).
    pub leeway: Option<SString>,
    /// Refuse tokens without `exp` (default true).
    pub require_exp: Option<bool>,
    /// Largest accepted token, bytes (default 8192).
    pub max_token_bytes: Option<Spanned<usize>>,
    /// Verified-token cache entries (default 10000; 0 disables).
    pub cache_entries: Option<Spanned<usize>>,
    /// Static keys.
    #[serde(default)]
    pub keys: Vec<Spanned<JwtKey>>,
    /// JWKS endpoints.
    #[serde(default)]
    pub jwks: Vec<Spanned<Jwks>>,
    /// `realm` of the `WWW-Authenticate: Bearer` challenge (default `"api"`).
    pub realm: Option<SString>,
    /// Named identity providers, each with its own issuer and keys.
    #[serde(default)]
    pub providers: BTreeMap<String, Spanned<JwtProvider>>,
}

/// `[jwt.providers.NAME]`: one issuer and the keys that verify its tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProvider {
    /// The exact `iss` of its tokens.
    pub issuer: SString,
    /// Accepted `aud` values (one match is enough); at least one.
    #[serde(default)]
    pub audiences: Vec<SString>,
    /// Algorithms its tokens may use; any its keys are bound to when empty.
    #[serde(default)]
    pub algorithms: Vec<SString>,
    /// Clock skew tolerated on exp/nbf (default `[jwt] leeway`).
    pub leeway: Option<SString>,
    /// Claims every token must carry (default `["exp"]`).
    pub required_claims: Option<Vec<SString>>,
    /// Required `typ` header, e.g. `"at+jwt"` (RFC 9068); not checked when absent.
    pub typ: Option<SString>,
    /// `"scope"` (space-separated) or `"scp"` (array); default: `scope`, then `scp`.
    pub scope_claim: Option<SString>,
    /// Static keys.
    #[serde(default)]
    pub keys: Vec<Spanned<JwtKey>>,
    /// JWKS endpoints.
    #[serde(default)]
    pub jwks: Vec<Spanned<Jwks>>,
}

/// `[[jwt.keys]]`: exactly one of `pem_file`, `jwk_file`, `secret`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    /// Key id matched against the token's `kid`; a key without one matches tokens without `kid`.
    pub kid: Option<SString>,
    /// The one algorithm this key verifies, e.g. `"RS256"`.
    pub alg: SString,
    /// Public key (or certificate) PEM file.
    pub pem_file: Option<SString>,
    /// JWK (JSON) file.
    pub jwk_file: Option<SString>,
    /// HMAC secret: `env:NAME` or `file:PATH`.
    pub secret: Option<SString>,
}

/// `[[jwt.jwks]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    /// The JWKS URL.
    pub url: SString,
    /// Algorithms accepted for keys that do not name one in `alg`.
    #[serde(default)]
    pub algorithms: Vec<SString>,
    /// Background refresh interval when the response has no `max-age` (default `"5m"`).
    pub refresh: Option<SString>,
    /// Lower bound on refresh from `Cache-Control: max-age` (default `"30s"`).
    pub min_refresh: Option<SString>,
    /// Upper bound on refresh from `Cache-Control: max-age` (default `"1h"`).
    pub max_refresh: Option<SString>,
    /// Minimum time between refetches caused by unknown `kid`s (default `"30s"`).
    pub unknown_kid_cooldown: Option<SString>,
    /// PEM file of the CA certificates trusted for an `https` JWKS URL instead of the public
    /// roots (an internal identity provider).
    pub ca_file: Option<SString>,
}

/// `[[apps]]`: an API-key client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Sent by the client as `X-Client-ID`.
    pub client_id: SString,
    /// Display name.
    pub name: Option<String>,
    /// `sha256:<hex>` (generated keys) or an argon2 PHC string (operator-chosen secrets).
    pub key_hash: SString,
    /// `"active"` (default) or `"suspended"`.
    pub status: Option<SString>,
    /// Scopes granted to the app.
    #[serde(default)]
    pub scopes: Vec<SString>,
}

/// `[identity]`: header names sent to backends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeaders {
    /// Default `X-Auth-Subject`.
    pub subject: Option<SString>,
    /// Default `X-Auth-Client-Id`.
    pub client_id: Option<SString>,
    /// Default `X-Auth-Scopes`.
    pub scopes: Option<SString>,
    /// Default `X-Auth-Method`.
    pub method: Option<SString>,
}

/// `[oauth]`: the built-in OAuth 2.0 token service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// `iss` of issued tokens and base of the discovery document, e.g. `"https://auth.example.com"`.
    pub issuer: SString,
    /// `aud` of issued access tokens.
    pub audience: SString,
    /// Path of the embedded store file, e.g. `"data/portcullis.db"` (relative to the config file).
    pub store: SString,
    /// Access-token lifetime (default `"24h"`).
    pub access_token_ttl: Option<SString>,
    /// Refresh-token lifetime, renewed on each rotation (default `"30d"`).
    pub refresh_token_ttl: Option<SString>,
    /// Authorization-code lifetime; also bounds the login hand-off (default `"5m"`).
    pub code_ttl: Option<SString>,
    /// The operator's login page; `/oauth2/authorize` redirects there with `login_challenge`.
    pub login_url: Option<SString>,
    /// Largest request body the token service reads (default `"16KiB"`); larger is 413.
    pub max_body_bytes: Option<SString>,
    /// Signing keys: exactly one `active`; the others only verify.
    #[serde(default)]
    pub signing_keys: Vec<Spanned<OAuthSigningKey>>,
    /// Registered clients.
    #[serde(default)]
    pub clients: Vec<Spanned<OAuthClient>>,
    /// Paths of each token-service endpoint (defaults: `/oauth2/token`, ...).
    pub endpoints: Option<crate::oauth::endpoints::RawEndpoints>,
    /// Request dialects by endpoint path (each relaxation off by default).
    #[serde(default)]
    pub dialects: BTreeMap<String, Spanned<crate::oauth::endpoints::RawDialect>>,
}

/// `[[oauth.signing_keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSigningKey {
    /// Key id, published in the JWKS and set as the token header's `kid`.
    pub kid: SString,
    /// `"ES256"` (default), `"ES384"`, `"RS256"`, `"PS256"` and friends.
    pub alg: Option<SString>,
    /// Private key, PEM (PKCS#8, or SEC1/PKCS#1), relative to the config file.
    pub private_key_file: SString,
    /// This key signs new tokens (exactly one key); the others verify only.
    #[serde(default)]
    pub active: bool,
}

/// `[[oauth.clients]]`: a registered OAuth client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: SString,
    /// Display name.
    pub name: Option<String>,
    /// `sha256:<hex>` (generated secrets, see `portcullis new-client`) or an argon2 PHC string;
    /// absent for a public client.
    pub secret_hash: Option<SString>,
    /// `"client_secret_basic"` (default; Basic or body) or `"none"` for a public client.
    pub token_endpoint_auth_method: Option<SString>,
    /// Confidential clients only: authorization requests must carry PKCE (default true).
    pub require_pkce: Option<Spanned<bool>>,
    /// May refresh with the refresh token alone at a `default_grant_type` token path.
    #[serde(default)]
    pub refresh_without_credentials: bool,
    /// Allowed grants: `client_credentials`, `authorization_code`, `refresh_token`.
    #[serde(default)]
    pub grant_types: Vec<SString>,
    /// Scopes the client may be granted.
    #[serde(default)]
    pub scopes: Vec<SString>,
    /// Exact redirect URIs for `authorization_code`.
    #[serde(default)]
    pub redirect_uris: Vec<SString>,
    /// `"active"` (default) or `"suspended"`.
    pub status: Option<SString>,
    /// This client is the operator's login backend: it may call `POST /oauth2/authorize/accept`.
    #[serde(default)]
    pub login_provider: bool,
}
