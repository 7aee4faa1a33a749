//! Auth settings from `[jwt]`: the keys shared by every provider, JWKS endpoint settings, and the duration syntax they use.
//!
//! Every problem is reported with its span and a fix; parsing carries on so that one run of
//! `portcullis check` shows all of them.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::jwks::JwksSettings;
use super::jwt::{JwtRules, is_hmac, parse_algorithm};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw;

/// Default verified-token cache size.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

pub(crate) fn duration(
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    diags: &mut Diagnostics<'_>,
) -> Duration {
    let Some(v) = value else { return default };
    match parse_duration(v.get_ref()) {
        Some(d) => d,
        None => {
            diags.push(
                Some(v.span()),
                key.to_string(),
                format!("{:?} is not a duration", v.get_ref()),
                "write a number with a unit: \"500ms\", \"30s\", \"5m\", \"1h\"",
            );
            default
        }
    }
}

pub(crate) fn strings(
    list: &[Spanned<String>],
    key: &str,
    diags: &mut Diagnostics<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        if s.get_ref().trim().is_empty() {
            diags.push(
                Some(s.span()),
                format!("{key}[{i}]"),
                "empty value",
                "remove it or write the exact value tokens carry",
            );
        } else {
            out.push(s.get_ref().clone());
        }
    }
    out
}

/// Default `realm` of the Bearer challenge.
pub const DEFAULT_REALM: &str = "api";

/// `[jwt]` keys that apply to every provider.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    /// Base rules (leeway, `exp`, token size) every provider starts from.
    pub rules: JwtRules,
    /// Verified-token cache entries.
    pub cache_entries: usize,
    /// `realm` of the Bearer challenge.
    pub realm: Arc<str>,
}

/// The `[jwt]` keys shared by every provider (defaults when absent).
pub(crate) fn global(jwt: Option<&raw::Jwt>, diags: &mut Diagnostics<'_>) -> Global {
    let mut rules = JwtRules::default();
    let Some(jwt) = jwt else {
        return Global {
            rules,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            realm: Arc::from(DEFAULT_REALM),
        };
    };
    rules.leeway_secs = leeway(jwt.leeway.as_ref(), "jwt.leeway", 30, diags);
    rules.require_exp = jwt.require_exp.unwrap_or(true);
    if let Some(max) = &jwt.max_token_bytes {
        if *max.get_ref() < 256 || *max.get_ref() > 65_536 {
            diags.push(
                Some(max.span()),
                "jwt.max_token_bytes",
                format!("{} is outside 256..=65536", max.get_ref()),
                "use the default 8192 unless your tokens are larger",
            );
        } else {
            rules.max_token_bytes = *max.get_ref();
        }
    }
    let cache_entries = jwt
        .cache_entries
        .as_ref()
        .map_or(DEFAULT_CACHE_ENTRIES, |c| *c.get_ref());
    Global {
        rules,
        cache_entries,
        realm: realm(jwt.realm.as_ref(), diags),
    }
}

/// A leeway in seconds (at most 10 minutes).
pub(crate) fn leeway(
    value: Option<&Spanned<String>>,
    key: &str,
    default_secs: u64,
    diags: &mut Diagnostics<'_>,
) -> u64 {
    let d = duration(value, key, Duration::from_secs(default_secs), diags);
    if d > Duration::from_secs(600)
        && let Some(v) = value
    {
        diags.push(
            Some(v.span()),
            key.to_string(),
            "leeway above 10 minutes accepts long-expired tokens",
            "use a few seconds to a minute (default \"30s\")",
        );
    }
    d.as_secs()
}

fn realm(value: Option<&Spanned<String>>, diags: &mut Diagnostics<'_>) -> Arc<str> {
    let Some(v) = value else {
        return Arc::from(DEFAULT_REALM);
    };
    let text = v.get_ref();
    let printable = text
        .chars()
        .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\');
    if text.trim().is_empty() || text.len() > 128 || !printable {
        diags.push(
            Some(v.span()),
            "jwt.realm",
            format!("{text:?} is not a usable realm"),
            "use 1 to 128 printable ASCII characters without quotes or backslashes, e.g. \"partner-api\"",
        );
        return Arc::from(DEFAULT_REALM);
    }
    Arc::from(text.as_str())
}

/// Settings of the JWKS entry at key path `path` and its URL; `fallback` are the provider's
/// algorithms, used when the entry lists none. `None` if the entry is unusable.
pub(crate) fn jwks_settings(
    path: &str,
    entry: &Spanned<raw::Jwks>,
    fallback: &[Algorithm],
    diags: &mut Diagnostics<'_>,
) -> Option<(String, JwksSettings)> {
    let j = entry.get_ref();
    let d = JwksSettings::default();
    let mut ok = true;
    let url = j.url.get_ref().trim().to_string();
    let uri_ok = url
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some())
        .is_some();
    if !uri_ok {
        diags.push(
            Some(j.url.span()),
            format!("{path}.url"),
            format!("{url:?} is not an http(s) URL"),
            "write the full URL, e.g. \"https://idp.example.com/.well-known/jwks.json\"",
        );
        ok = false;
    }
    let mut algorithms: Vec<Algorithm> = Vec::new();
    for (k, a) in j.algorithms.iter().enumerate() {
        match parse_algorithm(a.get_ref()) {
            Some(alg) if !is_hmac(alg) => algorithms.push(alg),
            _ => {
                diags.push(
                    Some(a.span()),
                    format!("{path}.algorithms[{k}]"),
                    format!("{:?} is not an asymmetric JWS algorithm", a.get_ref()),
                    "use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
                );
                ok = false;
            }
        }
    }
    if j.algorithms.is_empty() {
        algorithms = fallback.iter().copied().filter(|a| !is_hmac(*a)).collect();
    }
    let settings = JwksSettings {
        algorithms,
        refresh: duration(
            j.refresh.as_ref(),
            &format!("{path}.refresh"),
            d.refresh,
            diags,
        ),
        min_refresh: duration(
            j.min_refresh.as_ref(),
            &format!("{path}.min_refresh"),
            d.min_refresh,
            diags,
        ),
        max_refresh: duration(
            j.max_refresh.as_ref(),
            &format!("{path}.max_refresh"),
            d.max_refresh,
            diags,
        ),
        unknown_kid_cooldown: duration(
            j.unknown_kid_cooldown.as_ref(),
            &format!("{path}.unknown_kid_cooldown"),
            d.unknown_kid_cooldown,
            diags,
        ),
        ca_file: j.ca_file.as_ref().map(|ca| {
            let file = diags.source().base_dir().join(ca.get_ref());
            let https = url.starts_with("https://");
            let problem = if !https {
                Some(("ca_file applies only to an https JWKS URL".to_string(), "remove `ca_file`, or use an https:// URL"))
            } else {
                crate::outbound_tls::with_ca_file(&file).err().map(|e| {
                    (e, "point ca_file at a PEM file of CA certificates; relative paths are resolved against the config file's directory")
                })
            };
            if let Some((why, fix)) = problem {
                diags.push(Some(ca.span()), format!("{path}.ca_file"), why, fix);
                ok = false;
            }
            file
        }),
    };
    if settings.min_refresh > settings.max_refresh || settings.min_refresh.is_zero() {
        diags.push(
            j.min_refresh
                .as_ref()
                .map(|s| s.span())
                .or(Some(entry.span())),
            format!("{path}.min_refresh"),
            "min_refresh must be above zero and not above max_refresh",
            "e.g. min_refresh = \"30s\", max_refresh = \"1h\"",
        );
        ok = false;
    }
    ok.then_some((url, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration(""), None);
    }
}
