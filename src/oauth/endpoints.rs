//! Endpoint paths: where each token-service endpoint lives (`[oauth.endpoints]`) and the request
//! dialect of each path (`[oauth.dialects."PATH"]`), checked and compiled once.
//!
//! An operator places each endpoint at the path its published API uses, and may list several
//! paths for one endpoint (an old and a new contract side by side). The first path of each list is
//! the one discovery advertises. The login hand-off lives under every authorize path
//! (`PATH/accept`, `PATH/reject`). Dialects relax what a request may leave out, per path, and are
//! all off by default: `default_grant_type` (token), `default_response_type = "code"`
//! (authorize), `expires_at` (token responses also carry the absolute expiry).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use toml::Spanned;

use super::client::Client;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::{OAuth, SString};

/// `[oauth.endpoints]`: each key a list of paths; absent = the default path.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoints {
    /// Default `["/oauth2/token"]`.
    pub token: Option<Vec<SString>>,
    /// Default `["/oauth2/authorize"]` (the login hand-off adds `/accept` and `/reject`).
    pub authorize: Option<Vec<SString>>,
    /// Default `["/oauth2/revoke"]`.
    pub revoke: Option<Vec<SString>>,
    /// Default `["/oauth2/introspect"]`.
    pub introspect: Option<Vec<SString>>,
    /// Default `["/.well-known/oauth-authorization-server"]`.
    pub discovery: Option<Vec<SString>>,
    /// Default `["/.well-known/jwks.json"]`.
    pub jwks: Option<Vec<SString>>,
}

/// `[oauth.dialects."PATH"]`: what a request at PATH may leave out. Every key defaults to off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDialect {
    /// Token path: an absent `grant_type` means `authorization_code` when a `code` is sent,
    /// `refresh_token` when a `refresh_token` is sent, else `client_credentials` when client
    /// credentials are sent.
    #[serde(default)]
    pub default_grant_type: bool,
    /// Authorize path: an absent `response_type` means this one (only `"code"`).
    pub default_response_type: Option<SString>,
    /// Token path: responses carry `expires_at` (Unix seconds) beside `expires_in`.
    #[serde(default)]
    pub expires_at: bool,
}

/// A token-service endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Token endpoint.
    Token,
    /// Authorization endpoint.
    Authorize,
    /// Login backend confirms the user.
    Accept,
    /// Login backend refuses.
    Reject,
    /// RFC 7009.
    Revoke,
    /// RFC 7662.
    Introspect,
    /// RFC 8414 metadata.
    Discovery,
    /// Public signing keys.
    Jwks,
}

/// What a path's requests may leave out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dialect {
    /// See `RawDialect::default_grant_type`.
    pub default_grant_type: bool,
    /// `response_type=code` assumed when absent.
    pub default_response_type: bool,
    /// `expires_at` in token responses.
    pub expires_at: bool,
}

/// Every endpoint path, compiled.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    by_path: HashMap<String, (Endpoint, Dialect)>,
    /// First configured path per endpoint (advertised by discovery).
    primary: Vec<(Endpoint, String)>,
    /// Paths with a relaxed dialect, in config order (for `portcullis check`).
    relaxed: Vec<(String, Dialect)>,
    /// Paths written in `[oauth.endpoints]` (not defaults), with their derived ones.
    explicit: Vec<String>,
}

impl Endpoints {
    /// The endpoint at `path` and its dialect.
    pub fn find(&self, path: &str) -> Option<(Endpoint, Dialect)> {
        self.by_path.get(path).copied()
    }

    /// The advertised path of `endpoint`.
    pub fn path(&self, endpoint: Endpoint) -> &str {
        self.primary
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map_or("/", |(_, p)| p.as_str())
    }

    /// Every path written in `[oauth.endpoints]` (and the login hand-off under a written authorize
    /// path) with the method it answers: POST, or GET for authorize, discovery and JWKS.
    pub fn explicit(&self) -> Vec<(&str, http::Method)> {
        let mut out: Vec<(&str, http::Method)> = self
            .by_path
            .iter()
            .filter(|(p, _)| self.explicit.contains(p))
            .map(|(p, (e, _))| {
                let get = matches!(
                    e,
                    Endpoint::Authorize | Endpoint::Discovery | Endpoint::Jwks
                );
                let m = if get {
                    http::Method::GET
                } else {
                    http::Method::POST
                };
                (p.as_str(), m)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Every path with a relaxed dialect.
    pub fn relaxed(&self) -> &[(String, Dialect)] {
        &self.relaxed
    }
}

const DEFAULTS: [(Endpoint, &str, &str); 6] = [
    (Endpoint::Token, "token", "/oauth2/token"),
    (Endpoint::Authorize, "authorize", "/oauth2/authorize"),
    (Endpoint::Revoke, "revoke", "/oauth2/revoke"),
    (Endpoint::Introspect, "introspect", "/oauth2/introspect"),
    (
        Endpoint::Discovery,
        "discovery",
        "/.well-known/oauth-authorization-server",
    ),
    (Endpoint::Jwks, "jwks", "/.well-known/jwks.json"),
];

fn configured(raw: &RawEndpoints, e: Endpoint) -> Option<&Vec<SString>> {
    match e {
        Endpoint::Token => raw.token.as_ref(),
        Endpoint::Authorize => raw.authorize.as_ref(),
        Endpoint::Revoke => raw.revoke.as_ref(),
        Endpoint::Introspect => raw.introspect.as_ref(),
        Endpoint::Discovery => raw.discovery.as_ref(),
        Endpoint::Jwks => raw.jwks.as_ref(),
        Endpoint::Accept | Endpoint::Reject => None,
    }
}

fn path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        Some("an endpoint path must start with '/'")
    } else if p.len() > 1 && p.ends_with('/') {
        Some("an endpoint path must not end with '/' (requests are matched exactly)")
    } else if p
        .bytes()
        .any(|b| b <= b' ' || b >= 0x7f || matches!(b, b'?' | b'#' | b'%'))
    {
        Some("an endpoint path is a plain path: no query, fragment, escapes or spaces")
    } else if p.split('/').any(|seg| seg == "." || seg == "..") || p.contains("//") {
        Some("an endpoint path must be normalized (no '.', '..' or '//')")
    } else {
        None
    }
}

/// Compiles `[oauth.endpoints]` and `[oauth.dialects]`; `errors` counts what was reported.
pub fn compile(
    raw: &OAuth,
    clients: &[Client],
    diags: &mut Diagnostics<'_>,
    errors: &mut usize,
) -> Endpoints {
    let empty = RawEndpoints::default();
    let rawe = raw.endpoints.as_ref().unwrap_or(&empty);
    let mut out = Endpoints::default();
    // Where each path was written, so a clash with a default path still points into the file.
    let mut written: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    for (endpoint, key, default) in DEFAULTS {
        let paths: Vec<(String, Option<std::ops::Range<usize>>)> = match configured(rawe, endpoint)
        {
            Some(list) => list
                .iter()
                .map(|p| (p.get_ref().clone(), Some(p.span())))
                .collect(),
            None => vec![(default.to_string(), None)],
        };
        if paths.is_empty() {
            *errors += 1;
            diags.push(
                None,
                format!("oauth.endpoints.{key}"),
                "the list of paths is empty",
                format!("list at least one path, e.g. [\"{default}\"]"),
            );
            continue;
        }
        for (path, span) in &paths {
            if let Some(why) = path_problem(path) {
                *errors += 1;
                diags.push(
                    span.clone(),
                    format!("oauth.endpoints.{key}"),
                    why,
                    format!("write the exact request path, e.g. \"{default}\""),
                );
                continue;
            }
            let mut place = |p: String, e: Endpoint| {
                let at = span.clone().or_else(|| written.get(&p).cloned());
                if let Some(s) = span {
                    written.insert(p.clone(), s.clone());
                    out.explicit.push(p.clone());
                }
                if out
                    .by_path
                    .insert(p.clone(), (e, Dialect::default()))
                    .is_some()
                {
                    *errors += 1;
                    diags.push(
                        at,
                        format!("oauth.endpoints.{key}"),
                        format!("the path {p} is used by two endpoints"),
                        "give every endpoint its own paths",
                    );
                }
            };
            place(path.clone(), endpoint);
            if endpoint == Endpoint::Authorize {
                place(format!("{path}/accept"), Endpoint::Accept);
                place(format!("{path}/reject"), Endpoint::Reject);
            }
        }
        out.primary.push((endpoint, paths[0].0.clone()));
    }
    dialects(&raw.dialects, &mut out, diags, errors);
    let refresh_alone = out.relaxed.iter().any(|(_, d)| d.default_grant_type);
    for (i, c) in clients.iter().enumerate() {
        if c.refresh_without_credentials && !refresh_alone {
            *errors += 1;
            diags.push(
                raw.clients.get(i).map(|s| s.span()),
                format!("oauth.clients[{i}].refresh_without_credentials"),
                "no token path accepts a refresh token alone",
                "set default_grant_type = true in the [oauth.dialects.\"PATH\"] of a token path, or drop this key",
            );
        }
    }
    out
}

fn dialects(
    raw: &BTreeMap<String, Spanned<RawDialect>>,
    out: &mut Endpoints,
    diags: &mut Diagnostics<'_>,
    errors: &mut usize,
) {
    for (path, d) in raw {
        let key = format!("oauth.dialects.\"{path}\"");
        let mut fail = |why: String, fix: &str| {
            *errors += 1;
            diags.push(Some(d.span()), key.clone(), why, fix);
        };
        let Some((endpoint, dialect)) = out.by_path.get_mut(path) else {
            fail(
                format!("{path} is not a token-service endpoint path"),
                "use a path listed in [oauth.endpoints] (or a default such as /oauth2/token)",
            );
            continue;
        };
        let d = d.get_ref();
        let token = *endpoint == Endpoint::Token;
        if (d.default_grant_type || d.expires_at) && !token {
            fail(
                "default_grant_type and expires_at apply to token paths only".into(),
                "move them to the dialect of a token path",
            );
        }
        if let Some(rt) = &d.default_response_type {
            if *endpoint != Endpoint::Authorize {
                fail(
                    "default_response_type applies to authorize paths only".into(),
                    "move it to the dialect of an authorize path",
                );
            } else if rt.get_ref() != "code" {
                fail(
                    format!("default_response_type '{}' is not supported", rt.get_ref()),
                    "the only response type is \"code\"",
                );
            }
        }
        *dialect = Dialect {
            default_grant_type: d.default_grant_type,
            default_response_type: d.default_response_type.is_some(),
            expires_at: d.expires_at,
        };
        out.relaxed.push((path.clone(), *dialect));
    }
}
