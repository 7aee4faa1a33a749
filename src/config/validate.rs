//! Validate: checks a raw config and turns it into plain typed values, reporting every problem.
//!
//! Each problem becomes a `Diagnostic` at the offending value's line and column, with the key
//! path and a fix. Nothing stops at the first problem: the operator sees them all at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use toml::Spanned;

use super::diagnostic::Diagnostics;
use super::raw::{self, RawConfig, SString};
use super::units::{parse_bytes, parse_duration};
use crate::auth::{AuthPolicy, KeyHeaders};
use crate::error::{Envelope, ErrorStyle};
use crate::ratelimit::{self, Limit};

use super::routes::routes;
use super::upstreams::upstreams;

pub use crate::server::bounds::Limits;

/// A route class.
#[derive(Debug, Clone)]
pub struct ClassSpec {
    /// Stable name (rate-limit state is keyed by it).
    pub name: String,
    /// Error envelope.
    pub style: ErrorStyle,
    /// The envelope with its per-code styles and texts (`style` is its base).
    pub envelope: Envelope,
    /// Rolling-window limit; none = unlimited.
    pub limit: Option<Limit>,
    /// What the limit does when the shared backend fails.
    pub on_backend_error: ratelimit::OnBackendError,
}

/// Where an upstream's requests go.
#[derive(Debug, Clone)]
pub enum UpstreamTarget {
    /// An HTTP(S) server.
    Http(Uri),
    /// Answered inside the gateway with a description of the request.
    Echo,
    /// The gateway's own OAuth token service (`[oauth]`).
    OAuth,
    /// Signed delivery by the `[webhooks.outbound.NAME]` sender of this name.
    WebhookOut(String),
}

/// An upstream.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// Name used by routes.
    pub name: String,
    /// Target.
    pub target: UpstreamTarget,
    /// CA certificates (PEM) trusted for an `https` upstream instead of the public roots.
    pub ca_file: Option<PathBuf>,
}

/// A route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Name in the access log and metrics: the `name` key, or host and prefix.
    pub name: String,
    /// Normalized prefix without trailing slash (`/` for the root).
    pub prefix: String,
    /// Host to match, lower-case, no port.
    pub host: Option<String>,
    /// Allowed methods; `None` = any.
    pub methods: Option<Vec<Method>>,
    /// Index into `Validated::classes`.
    pub class: usize,
    /// Credentials accepted.
    pub auth: AuthPolicy,
    /// Scopes required.
    pub scopes: Vec<String>,
    /// Index into `Validated::upstreams`.
    pub upstream: usize,
    /// Limit for this route (its own or its class's).
    pub limit: Option<Limit>,
    /// Stable name of the limiter counters this route uses: the class name, or
    /// `class:prefix` for a route with its own limit. Also the `RateLimit-Policy` name.
    pub limit_key: String,
    /// The `RateLimit-Policy` field and policy name of `limit`, made once.
    pub rate_headers: Option<crate::ratelimit::PolicyHeaders>,
    /// Largest body.
    pub max_body_bytes: u64,
    /// Remove consumed credentials before forwarding.
    pub strip_credentials: bool,
    /// Keep encoded slashes (`%2F`) in paths (default: refused).
    pub allow_encoded_slashes: bool,
    /// Accept WebSocket upgrades (default: refused with `400 websocket_not_allowed`).
    pub websocket: bool,
    /// Headers carrying API keys on this route.
    pub api_key: KeyHeaders,
    /// `auth = "webhook"`: the `[webhooks.inbound.NAME]` scheme.
    pub webhook: Option<String>,
}

/// Names of the identity headers sent to backends.
#[derive(Debug, Clone)]
pub struct IdentityNames {
    /// Subject header.
    pub subject: HeaderName,
    /// Client id header.
    pub client_id: HeaderName,
    /// Scopes header.
    pub scopes: HeaderName,
    /// Auth method header.
    pub method: HeaderName,
}

/// The config as plain typed values; every reference resolved.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Listener address.
    pub listen: SocketAddr,
    /// TLS certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Trusted proxy networks.
    pub trusted_proxies: Vec<IpNet>,
    /// Class index for unmatched requests.
    pub default_class: usize,
    /// Worker threads (0 = per core).
    pub workers: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Limits.
    pub limits: Limits,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// Classes.
    pub classes: Vec<ClassSpec>,
    /// Upstreams.
    pub upstreams: Vec<UpstreamSpec>,
    /// Routes.
    pub routes: Vec<RouteSpec>,
    /// Limiter settings.
    pub rate_limit: ratelimit::Settings,
    /// Identity header names.
    pub identity: IdentityNames,
    /// `[state]`: the shared-state backend.
    pub state: crate::state::StateSettings,
    /// Request-syntax rules (`[http]`).
    pub http: crate::request_check::HttpRules,
    /// `Via`, loop detection, untrusted-peer header stripping (`[forwarding]`).
    pub forwarding: crate::proxy::forwarding::ForwardingRules,
    /// WebSocket tunnel limits (`[tunnels]`).
    pub tunnels: crate::tunnel::settings::TunnelSettings,
    /// Trace context and OTLP export (`[tracing]`).
    pub tracing: crate::trace::TraceSettings,
    /// Some route has `websocket = true` (h2 listeners then advertise extended CONNECT).
    pub websocket_routes: bool,
}

impl Validated {
    /// Every relaxation of a safe default, one line each, for `portcullis check`; each feature
    /// reports its own.
    pub fn relaxations(&self) -> Vec<String> {
        let mut notes = self.http.relaxations();
        notes.extend(crate::server::bounds::relaxations(&self.limits));
        notes.extend(self.forwarding.relaxations());
        notes.extend(self.tracing.relaxations());
        if self.websocket_routes {
            notes.extend(self.tunnels.relaxations());
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.allow_encoded_slashes {
                notes.push(format!(
                    "routes[{i}] (path \"{}\"): allow_encoded_slashes = true keeps %2F in paths",
                    r.prefix
                ));
            }
        }
        let redis = matches!(self.state, crate::state::StateSettings::Redis(_));
        for c in &self.classes {
            if redis
                && c.limit.is_some()
                && c.on_backend_error == crate::ratelimit::OnBackendError::Open
            {
                notes.push(format!(
                    "classes.{}.on_backend_error = \"open\": its requests pass unlimited while Redis is unreachable",
                    c.name
                ));
            }
        }
        notes
    }
}

pub(super) fn span<T>(s: &Spanned<T>) -> Option<std::ops::Range<usize>> {
    Some(s.span())
}

/// Checks `raw`; returns the typed config, or `None` with every problem in `d`.
pub fn validate(raw: &RawConfig, d: &mut Diagnostics) -> Option<Validated> {
    let base = d.source().base_dir();
    let listen = socket_addr(&raw.server.listen, "server.listen", d);
    let tls = raw.server.tls.as_ref().map(|t| {
        let cert = existing_file(&t.cert, "server.tls.cert", &base, d);
        let key = existing_file(&t.key, "server.tls.key", &base, d);
        (cert, key)
    });
    let trusted_proxies = raw
        .server
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, c)| cidr(c, &format!("server.trusted_proxies[{i}]"), d))
        .collect();
    let shutdown_grace = opt_duration(&raw.server.shutdown_grace, "server.shutdown_grace", d)
        .unwrap_or(Duration::from_secs(30));
    let limits = Limits::validate(&raw.limits, d);
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| socket_addr(&a.listen, "admin.listen", d));
    let classes = classes(&raw.classes, d);
    let class_names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    let default_class = match &raw.server.default_class {
        Some(n) => reference(n, &class_names, "server.default_class", "class", d),
        None if classes.is_empty() => {
            d.push(
                None,
                "classes",
                "no route classes are defined",
                "add a [classes.NAME] table with `errors = \"partner\"`",
            );
            None
        }
        None => Some(0),
    };
    let upstreams = upstreams(raw, &base, d);
    let routes = routes(raw, &classes, &upstreams, &limits, d);
    let rate_limit = rate_limit_settings(&raw.rate_limit, d);
    let identity = identity(&raw.identity, d);
    let state = crate::state::settings::compile(raw.state.as_ref(), &base, d);
    let http = crate::request_check::HttpRules::validate(&raw.http, d);
    let forwarding = crate::proxy::forwarding::ForwardingRules::validate(&raw.forwarding, d);
    let tunnels = crate::tunnel::settings::TunnelSettings::validate(&raw.tunnels, d);
    let tracing = crate::trace::TraceSettings::validate(&raw.tracing, d);
    let websocket_routes = routes.iter().any(|r| r.websocket);
    let bearer_routes = routes
        .iter()
        .any(|r| matches!(r.auth, AuthPolicy::Bearer | AuthPolicy::BearerOrApiKey));
    if raw.jwt.is_none() && raw.oauth.is_none() && bearer_routes {
        d.push(
            None,
            "jwt",
            "routes require bearer tokens but neither [jwt] nor [oauth] provides keys",
            "add a [jwt] section with [[jwt.keys]] or [[jwt.jwks]], or an [oauth] token service",
        );
    }
    if raw.oauth.is_none() {
        for (name, u) in &raw.upstreams {
            if u.get_ref()
                .kind
                .as_ref()
                .is_some_and(|k| k.get_ref() == "oauth")
            {
                d.push(
                    Some(u.span()),
                    format!("upstreams.{name}"),
                    "an oauth upstream needs the [oauth] token service",
                    "add an [oauth] section (see config/REFERENCE.md)",
                );
            }
        }
    }
    if !d.is_empty() {
        return None;
    }
    Some(Validated {
        listen: listen?,
        tls,
        trusted_proxies,
        default_class: default_class?,
        workers: raw.server.workers,
        shutdown_grace,
        limits,
        admin,
        classes,
        upstreams,
        routes,
        rate_limit,
        identity,
        state,
        http,
        forwarding,
        tunnels,
        tracing,
        websocket_routes,
    })
}

pub(super) fn socket_addr(s: &SString, key: &str, d: &mut Diagnostics) -> Option<SocketAddr> {
    match s.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            d.push(
                span(s),
                key,
                format!("\"{}\" is not an address", s.get_ref()),
                "write host:port with a numeric IP, e.g. \"127.0.0.1:8080\"",
            );
            None
        }
    }
}

pub(super) fn existing_file(
    s: &SString,
    key: &str,
    base: &std::path::Path,
    d: &mut Diagnostics,
) -> PathBuf {
    let p = base.join(s.get_ref());
    if let Err(e) = std::fs::metadata(&p) {
        d.push(
            span(s),
            key,
            format!("cannot read {}: {e}", p.display()),
            "check the path; relative paths are resolved against the config file's directory",
        );
    }
    p
}

pub(super) fn cidr(s: &SString, key: &str, d: &mut Diagnostics) -> Option<IpNet> {
    let v = s.get_ref();
    let parsed = v
        .parse::<IpNet>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from));
    match parsed {
        Ok(n) => Some(n),
        Err(_) => {
            d.push(
                span(s),
                key,
                format!("\"{v}\" is not a CIDR or IP address"),
                "write e.g. \"10.0.0.0/8\" or \"127.0.0.1\"",
            );
            None
        }
    }
}

pub(crate) fn opt_duration(
    s: &Option<SString>,
    key: &str,
    d: &mut Diagnostics,
) -> Option<Duration> {
    let s = s.as_ref()?;
    match parse_duration(s.get_ref()) {
        Ok(v) if !v.is_zero() => Some(v),
        Ok(_) => {
            d.push(
                span(s),
                key,
                "duration must be greater than zero",
                "write e.g. \"30s\"",
            );
            None
        }
        Err(e) => {
            d.push(
                span(s),
                key,
                e,
                "write a number and a unit: ms, s, m, h or d, e.g. \"30s\"",
            );
            None
        }
    }
}

pub(crate) fn opt_bytes(s: &Option<SString>, key: &str, d: &mut Diagnostics) -> Option<u64> {
    let s = s.as_ref()?;
    match parse_bytes(s.get_ref()) {
        Ok(v) if v > 0 => Some(v),
        Ok(_) => {
            d.push(
                span(s),
                key,
                "size must be greater than zero",
                "write e.g. \"10MiB\"",
            );
            None
        }
        Err(e) => {
            d.push(
                span(s),
                key,
                e,
                "write a number and a unit: B, KiB, MiB or GiB, e.g. \"10MiB\"",
            );
            None
        }
    }
}

pub(super) fn limit(s: &SString, key: &str, d: &mut Diagnostics) -> Option<Limit> {
    match Limit::parse(s.get_ref()) {
        Ok(l) => Some(l),
        Err(e) => {
            d.push(
                span(s),
                key,
                e,
                "write requests per window, e.g. \"1000/5m\" (units s, m, h)",
            );
            None
        }
    }
}

fn classes(raw: &BTreeMap<String, Spanned<raw::Class>>, d: &mut Diagnostics) -> Vec<ClassSpec> {
    raw.iter()
        .map(|(name, c)| {
            let key = format!("classes.{name}");
            let style = match c.get_ref().errors.get_ref().as_str() {
                "partner" => ErrorStyle::Partner,
                "oauth" => ErrorStyle::OAuth,
                other => {
                    d.push(
                        span(&c.get_ref().errors),
                        format!("{key}.errors"),
                        format!("unknown error style \"{other}\""),
                        "use \"partner\" or \"oauth\"",
                    );
                    ErrorStyle::Partner
                }
            };
            let limit = c
                .get_ref()
                .limit
                .as_ref()
                .and_then(|l| limit(l, &format!("{key}.limit"), d));
            let on_backend_error = ratelimit::OnBackendError::compile(
                c.get_ref().on_backend_error.as_ref(),
                &format!("{key}.on_backend_error"),
                d,
            );
            let envelope = Envelope::compile(
                style,
                &c.get_ref().envelopes,
                &c.get_ref().messages,
                &key,
                d,
            );
            ClassSpec {
                name: name.clone(),
                style,
                envelope,
                limit,
                on_backend_error,
            }
        })
        .collect()
}

pub(super) fn reference(
    name: &SString,
    known: &[&str],
    key: &str,
    what: &str,
    d: &mut Diagnostics,
) -> Option<usize> {
    let found = known.iter().position(|k| *k == name.get_ref());
    if found.is_none() {
        let table = if what == "class" {
            "classes"
        } else if what.starts_with("webhooks.") {
            what
        } else {
            "upstreams"
        };
        let fix = if known.is_empty() {
            format!("define [{table}.{}]", name.get_ref())
        } else {
            format!(
                "use one of: {}; or define [{table}.{}]",
                known.join(", "),
                name.get_ref()
            )
        };
        d.push(
            span(name),
            key,
            format!("unknown {what} \"{}\"", name.get_ref()),
            fix,
        );
    }
    found
}

fn rate_limit_settings(raw: &raw::RateLimitSettings, d: &mut Diagnostics) -> ratelimit::Settings {
    let mut s = ratelimit::Settings::default();
    if let Some(p) = &raw.ipv6_prefix {
        if *p.get_ref() == 0 || *p.get_ref() > 128 {
            d.push(
                Some(p.span()),
                "rate_limit.ipv6_prefix",
                "prefix length must be 1..=128",
                "use 64 (the default) unless you know your clients' allocation size",
            );
        }
        s.ipv6_prefix = *p.get_ref();
    }
    if let Some(m) = &raw.max_tracked_clients {
        if *m.get_ref() == 0 {
            d.push(
                Some(m.span()),
                "rate_limit.max_tracked_clients",
                "must be greater than zero",
                "use e.g. 1000000",
            );
        }
        s.max_tracked_clients = *m.get_ref();
    }
    s
}

pub(super) fn header_name(
    s: &Option<SString>,
    default: &'static str,
    key: &str,
    d: &mut Diagnostics,
) -> HeaderName {
    let Some(s) = s else {
        return HeaderName::from_static(default);
    };
    match HeaderName::from_bytes(s.get_ref().as_bytes()) {
        Ok(h) => h,
        Err(_) => {
            d.push(
                span(s),
                key,
                format!("\"{}\" is not a valid header name", s.get_ref()),
                "use letters, digits and '-', e.g. \"X-Auth-Subject\"",
            );
            HeaderName::from_static(default)
        }
    }
}

fn identity(raw: &raw::IdentityHeaders, d: &mut Diagnostics) -> IdentityNames {
    IdentityNames {
        subject: header_name(&raw.subject, "x-auth-subject", "identity.subject", d),
        client_id: header_name(&raw.client_id, "x-auth-client-id", "identity.client_id", d),
        scopes: header_name(&raw.scopes, "x-auth-scopes", "identity.scopes", d),
        method: header_name(&raw.method, "x-auth-method", "identity.method", d),
    }
}
