//! State settings: the `[state]` section as the file spells it, its validation, and its compiled form.
//!
//! `backend = "embedded"` (the default: limiter counters in memory, OAuth state in the
//! `oauth.store` file) or `"redis"` with a URL. Secrets never sit in the file: the URL may not
//! carry a password, `password` is an `env:NAME` or `file:PATH` reference.

use std::path::Path;
use std::time::Duration;

use redis::IntoConnectionInfo;
use serde::Deserialize;
use toml::Spanned;

use crate::config::diagnostic::Diagnostics;
use crate::config::units::parse_duration;

/// Default key prefix (several deployments on one Redis use different prefixes).
pub const DEFAULT_PREFIX: &str = "portcullis:";
/// Default bound on one Redis operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default bound on one token-store operation (a durable write waits for Redis's fsync).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default bound on opening a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `[state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `"embedded"` (default) or `"redis"`.
    pub backend: Option<Spanned<String>>,
    /// `redis://host:port/db` or `rediss://host:port/db` (TLS), without a password.
    pub url: Option<Spanned<String>>,
    /// ACL user name (Redis 6+); absent = the default user.
    pub username: Option<Spanned<String>>,
    /// `env:NAME` or `file:PATH`.
    pub password: Option<Spanned<String>>,
    /// Prefix of every key, e.g. `"portcullis:prod:"`.
    pub key_prefix: Option<Spanned<String>>,
    /// Bound on one operation (e.g. `"50ms"`); past it the class's `on_backend_error` applies.
    pub timeout: Option<Spanned<String>>,
    /// Bound on one token-store operation (e.g. `"1s"`).
    pub store_timeout: Option<Spanned<String>>,
    /// Bound on opening a connection (e.g. `"1s"`).
    pub connect_timeout: Option<Spanned<String>>,
    /// `"retry"` (default: serve, not ready, reconnect with backoff) or `"refuse"`.
    pub startup: Option<Spanned<String>>,
    /// `rediss://` only: the CA certificates (PEM) to trust instead of the system roots.
    pub ca_file: Option<Spanned<String>>,
}

/// What `serve` does when Redis is unreachable at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// Start, answer `/readyz` with 503 until Redis answers, keep reconnecting with backoff.
    Retry,
    /// Exit non-zero when Redis does not answer within `connect_timeout`.
    Refuse,
}

/// Compiled `[state]` for the Redis backend.
#[derive(Clone)]
pub struct RedisSettings {
    /// The URL as configured (no secret in it).
    pub url: String,
    /// Connection info with the resolved credentials.
    pub info: redis::ConnectionInfo,
    /// Key prefix.
    pub prefix: String,
    /// Bound on one limiter check or revocation poll.
    pub timeout: Duration,
    /// Bound on one token-store operation.
    pub store_timeout: Duration,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
    /// Start-up policy.
    pub startup: Startup,
    /// `rediss://` with `ca_file`: the PEM trusted instead of the system roots (read and
    /// checked when the config is compiled).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

/// Compiled `[state]`.
#[derive(Debug, Clone, Default)]
pub enum StateSettings {
    /// One instance: memory limiter, embedded store file.
    #[default]
    Embedded,
    /// Shared state on Redis.
    Redis(Box<RedisSettings>),
}

impl StateSettings {
    /// The Redis URL when the backend is Redis (for comparing configs across reloads).
    pub fn redis_url(&self) -> Option<&str> {
        match self {
            StateSettings::Embedded => None,
            StateSettings::Redis(r) => Some(&r.url),
        }
    }
}

/// Validates `[state]`; every problem goes to `d`.
pub fn compile(raw: Option<&RawState>, base: &Path, d: &mut Diagnostics) -> StateSettings {
    let Some(raw) = raw else {
        return StateSettings::Embedded;
    };
    match raw.backend.as_ref().map(|b| (b.get_ref().as_str(), b)) {
        None | Some(("embedded", _)) => {
            if let Some(url) = &raw.url {
                d.push(
                    Some(url.span()),
                    "state.url",
                    "state.url is only used with backend = \"redis\"",
                    "add backend = \"redis\" to [state], or remove url",
                );
            }
            StateSettings::Embedded
        }
        Some(("redis", _)) => redis(raw, base, d).map_or(StateSettings::Embedded, |r| {
            StateSettings::Redis(Box::new(r))
        }),
        Some((other, b)) => {
            d.push(
                Some(b.span()),
                "state.backend",
                format!("unknown state backend \"{other}\""),
                "use \"embedded\" (one instance) or \"redis\" (several instances)",
            );
            StateSettings::Embedded
        }
    }
}

fn redis(raw: &RawState, base: &Path, d: &mut Diagnostics) -> Option<RedisSettings> {
    let Some(url) = &raw.url else {
        d.push(
            raw.backend.as_ref().map(Spanned::span),
            "state.url",
            "backend = \"redis\" needs a url",
            "add url = \"redis://127.0.0.1:6379/0\" (or rediss:// for TLS)",
        );
        return None;
    };
    // Every key is checked even when an earlier one is wrong, so `check` reports them all.
    let info = connection_info(url, d);
    let password = raw.password.as_ref().map(|pw| secret(pw, base, d));
    let prefix = prefix(raw.key_prefix.as_ref(), d);
    let timeout = duration(raw.timeout.as_ref(), "state.timeout", DEFAULT_TIMEOUT, d);
    let store_timeout = duration(
        raw.store_timeout.as_ref(),
        "state.store_timeout",
        DEFAULT_STORE_TIMEOUT,
        d,
    );
    let connect_timeout = duration(
        raw.connect_timeout.as_ref(),
        "state.connect_timeout",
        DEFAULT_CONNECT_TIMEOUT,
        d,
    );
    let startup = match raw.startup.as_ref().map(|s| (s.get_ref().as_str(), s)) {
        None | Some(("retry", _)) => Startup::Retry,
        Some(("refuse", _)) => Startup::Refuse,
        Some((other, s)) => {
            d.push(
                Some(s.span()),
                "state.startup",
                format!("unknown start-up policy \"{other}\""),
                "use \"retry\" (serve, not ready until Redis answers) or \"refuse\" (exit)",
            );
            Startup::Retry
        }
    };
    let ca_pem = raw.ca_file.as_ref().and_then(|f| ca_file(f, url, base, d));
    let info = info?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &raw.username {
        settings = settings.set_username(user.get_ref());
    }
    if let Some(pw) = password {
        settings = settings.set_password(pw?);
    }
    Some(RedisSettings {
        url: url.get_ref().clone(),
        info: info.set_redis_settings(settings),
        prefix,
        timeout,
        store_timeout,
        connect_timeout,
        startup,
        ca_pem,
    })
}

/// `state.ca_file`: only with `rediss://`; the file must hold at least one usable CA certificate.
fn ca_file(
    file: &Spanned<String>,
    url: &Spanned<String>,
    base: &Path,
    d: &mut Diagnostics,
) -> Option<Vec<u8>> {
    let mut fail = |msg: String, fix: &str| {
        d.push(Some(file.span()), "state.ca_file", msg, fix.to_string());
        None
    };
    if !url.get_ref().starts_with("rediss://") {
        return fail(
            "ca_file is only used with a rediss:// (TLS) URL".into(),
            "use rediss:// in state.url, or remove ca_file",
        );
    }
    let path = base.join(file.get_ref());
    if let Err(e) = crate::outbound_tls::with_ca_file(&path) {
        return fail(e, "point ca_file at a PEM file of CA certificates");
    }
    std::fs::read(&path)
        .map_err(|e| fail(format!("{}: {e}", path.display()), "make it readable"))
        .ok()
}

fn connection_info(url: &Spanned<String>, d: &mut Diagnostics) -> Option<redis::ConnectionInfo> {
    let text = url.get_ref();
    let push = |d: &mut Diagnostics, msg: String, fix: &str| {
        d.push(Some(url.span()), "state.url", msg, fix.to_string());
    };
    let Some(parsed) = redis::parse_redis_url(text) else {
        push(
            d,
            format!("\"{text}\" is not a redis:// or rediss:// URL"),
            "write redis://host:port/db or rediss://host:port/db (TLS)",
        );
        return None;
    };
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        push(
            d,
            format!("scheme \"{}\" is not supported", parsed.scheme()),
            "use redis:// or rediss:// (TLS); Cluster, Sentinel and unix sockets are not supported",
        );
        return None;
    }
    if parsed.password().is_some() || !parsed.username().is_empty() {
        push(
            d,
            "the URL carries credentials; secrets are never written in the config file".into(),
            "remove them from the URL; set username = \"...\" and password = \"env:NAME\"",
        );
        return None;
    }
    match text.as_str().into_connection_info() {
        Ok(info) => Some(info),
        Err(e) => {
            push(
                d,
                format!("unusable Redis URL: {e}"),
                "write redis://host:port/db",
            );
            None
        }
    }
}

fn secret(value: &Spanned<String>, base: &Path, d: &mut Diagnostics) -> Option<String> {
    let bytes = crate::config::secret_ref::resolve(value, "state.password", base, d)?;
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(_) => {
            d.push(
                Some(value.span()),
                "state.password",
                "the password is not UTF-8",
                "write the password as text",
            );
            None
        }
    }
}

fn prefix(raw: Option<&Spanned<String>>, d: &mut Diagnostics) -> String {
    let Some(p) = raw else {
        return DEFAULT_PREFIX.to_string();
    };
    let text = p.get_ref();
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
    if !ok {
        d.push(
            Some(p.span()),
            "state.key_prefix",
            format!("\"{text}\" is not a usable key prefix"),
            "use 1 to 64 printable ASCII characters without spaces or braces, e.g. \"portcullis:prod:\"",
        );
    }
    text.clone()
}

fn duration(
    raw: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    d: &mut Diagnostics,
) -> Duration {
    let Some(v) = raw else { return default };
    match parse_duration(v.get_ref()) {
        Ok(t) if !t.is_zero() && t <= Duration::from_secs(60) => t,
        Ok(_) => {
            d.push(
                Some(v.span()),
                key,
                "must be above zero and at most 60s",
                "use tens of milliseconds for timeout (e.g. \"50ms\"), about a second for connect_timeout",
            );
            default
        }
        Err(e) => {
            d.push(
                Some(v.span()),
                key,
                e,
                "write a number with a unit: \"50ms\", \"1s\"",
            );
            default
        }
    }
}
