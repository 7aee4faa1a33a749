//! Routes: validation of `[[routes]]` (prefix, host, methods, class, auth policy, API-key
//! headers, limits), split from `validate` which composes it.

use std::collections::HashSet;

use http::Method;
use toml::Spanned;

use super::diagnostic::Diagnostics;
use super::raw::{self, RawConfig, SString};
use super::validate::{
    ClassSpec, Limits, RouteSpec, UpstreamSpec, UpstreamTarget, limit, opt_bytes, reference, span,
};
use crate::auth::{AuthPolicy, KeyHeaders};
use crate::ratelimit::PolicyHeaders;
use crate::route::normalize_prefix;

fn auth_policy(s: Option<&SString>, key: &str, d: &mut Diagnostics) -> AuthPolicy {
    let Some(s) = s else { return AuthPolicy::None };
    match s.get_ref().as_str() {
        "none" => AuthPolicy::None,
        "bearer" => AuthPolicy::Bearer,
        "api_key" => AuthPolicy::ApiKey,
        "bearer_or_api_key" => AuthPolicy::BearerOrApiKey,
        "webhook" => AuthPolicy::Webhook,
        other => {
            d.push(
                span(s),
                key,
                format!("unknown auth policy \"{other}\""),
                "use \"none\", \"bearer\", \"api_key\", \"bearer_or_api_key\" or \"webhook\"",
            );
            AuthPolicy::None
        }
    }
}

fn methods(raw: &Option<Vec<SString>>, key: &str, d: &mut Diagnostics) -> Option<Vec<Method>> {
    let list = raw.as_ref()?;
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let upper = m.get_ref().to_ascii_uppercase();
        match Method::from_bytes(upper.as_bytes()) {
            Ok(method) if method == Method::TRACE || method == Method::CONNECT => d.push(
                span(m),
                format!("{key}[{i}]"),
                format!("{upper} is refused with 405 on every route"),
                "remove it (TRACE reflects credentials; CONNECT opens tunnels)",
            ),
            Ok(method) if upper == *m.get_ref() => out.push(method),
            _ => d.push(
                span(m),
                format!("{key}[{i}]"),
                format!("\"{}\" is not an HTTP method", m.get_ref()),
                "write it upper-case, e.g. \"GET\"",
            ),
        }
    }
    Some(out)
}

pub(super) fn routes(
    raw: &RawConfig,
    classes: &[ClassSpec],
    ups: &[UpstreamSpec],
    limits: &Limits,
    d: &mut Diagnostics,
) -> Vec<RouteSpec> {
    let class_names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    let up_names: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
    let mut seen: HashSet<(String, Option<String>, Option<Vec<String>>)> = HashSet::new();
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let r = r.get_ref();
        let prefix = match normalize_prefix(r.path.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                d.push(
                    span(&r.path),
                    format!("{key}.path"),
                    e,
                    "write an absolute path prefix such as \"/v1/partner/user/\"",
                );
                continue;
            }
        };
        let host = r.host.as_ref().map(|h| h.get_ref().to_ascii_lowercase());
        let methods = methods(&r.methods, &format!("{key}.methods"), d);
        let class = reference(&r.class, &class_names, &format!("{key}.class"), "class", d);
        let upstream = reference(
            &r.upstream,
            &up_names,
            &format!("{key}.upstream"),
            "upstream",
            d,
        );
        let auth = auth_policy(r.auth.as_ref(), &format!("{key}.auth"), d);
        let own_limit = r
            .limit
            .as_ref()
            .and_then(|l| limit(l, &format!("{key}.limit"), d));
        let max_body = opt_bytes(&r.max_body_bytes, &format!("{key}.max_body_bytes"), d)
            .unwrap_or(limits.max_body_bytes);
        let mut mkey: Option<Vec<String>> = methods
            .as_ref()
            .map(|m| m.iter().map(|m| m.to_string()).collect());
        if let Some(m) = mkey.as_mut() {
            m.sort();
        }
        if !seen.insert((prefix.clone(), host.clone(), mkey)) {
            d.push(span(&r.path), format!("{key}.path"), format!("duplicate route: another route already has path \"{}\" with the same host and methods", r.path.get_ref()), "remove one of the two routes, or give them different hosts or methods");
        }
        let api_key = route_key_headers(r, auth, &key, d);
        let webhook = route_webhook(raw, r, auth, &key, d);
        let websocket = route_websocket(r, auth, ups, upstream, &key, d);
        let name = route_name(r, &prefix, host.as_deref(), &mut names, &key, d);
        let (Some(class), Some(upstream)) = (class, upstream) else {
            continue;
        };
        let limit_key = match own_limit {
            Some(_) => format!("{}:{}", classes[class].name, prefix),
            None => classes[class].name.clone(),
        };
        let limit = own_limit.or(classes[class].limit);
        out.push(RouteSpec {
            name,
            rate_headers: limit.map(|l| PolicyHeaders::new(&limit_key, l)),
            limit_key,
            prefix,
            host,
            methods,
            class,
            auth,
            scopes: r.scopes.iter().map(|s| s.get_ref().clone()).collect(),
            upstream,
            limit,
            max_body_bytes: max_body,
            strip_credentials: r.strip_credentials.unwrap_or(true),
            allow_encoded_slashes: r.allow_encoded_slashes.unwrap_or(false),
            api_key,
            webhook,
            websocket,
        });
    }
    out
}

/// Longest route name accepted.
const MAX_NAME: usize = 64;

/// The route's name: its `name` key, or `host` + prefix. Names are unique, so a log line or a
/// metric series names one route; an unnamed route whose default collides gets `#N` (its index).
fn route_name(
    r: &raw::Route,
    prefix: &str,
    host: Option<&str>,
    names: &mut HashSet<String>,
    key: &str,
    d: &mut Diagnostics,
) -> String {
    let Some(given) = &r.name else {
        let base = format!("{}{prefix}", host.unwrap_or(""));
        let index = key.trim_start_matches("routes[").trim_end_matches(']');
        let name = match names.contains(&base) {
            true => format!("{base}#{index}"),
            false => base,
        };
        names.insert(name.clone());
        return name;
    };
    let name = given.get_ref();
    let valid = |c: char| c.is_ascii_alphanumeric() || "_-.:/".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(valid) {
        d.push(
            span(given),
            format!("{key}.name"),
            format!("route name \"{name}\" is not 1-{MAX_NAME} letters, digits or _-.:/"),
            "use a short name such as \"partner-user\"",
        );
    } else if !names.insert(name.clone()) {
        d.push(
            span(given),
            format!("{key}.name"),
            format!("another route is already named \"{name}\""),
            "give every route its own name (logs and metrics tell routes apart by it)",
        );
    }
    name.clone()
}

fn route_key_headers(
    r: &raw::Route,
    auth: AuthPolicy,
    key: &str,
    d: &mut Diagnostics,
) -> KeyHeaders {
    let raw = r.api_key_headers.as_ref();
    if let Some(h) = raw
        && !matches!(auth, AuthPolicy::ApiKey | AuthPolicy::BearerOrApiKey)
    {
        d.push(
            span(h),
            format!("{key}.api_key_headers"),
            "api_key_headers applies only to routes with auth = \"api_key\" or \"bearer_or_api_key\"",
            "remove api_key_headers, or change the route's auth",
        );
    }
    KeyHeaders::compile(
        raw.map(Spanned::get_ref),
        &format!("{key}.api_key_headers"),
        d,
    )
}

/// The inbound scheme of an `auth = "webhook"` route (`webhook = "NAME"`); the key is refused
/// on other routes, and a webhook route without one is an error.
fn route_webhook(
    raw: &RawConfig,
    r: &raw::Route,
    auth: AuthPolicy,
    key: &str,
    d: &mut Diagnostics,
) -> Option<String> {
    let names: Vec<&str> = raw
        .webhooks
        .as_ref()
        .map(|w| w.inbound.keys().map(String::as_str).collect())
        .unwrap_or_default();
    match (&r.webhook, auth) {
        (Some(w), AuthPolicy::Webhook) => {
            reference(w, &names, &format!("{key}.webhook"), "webhooks.inbound", d)
                .map(|i| names[i].to_string())
        }
        (Some(w), _) => {
            d.push(
                span(w),
                format!("{key}.webhook"),
                "webhook applies only to routes with auth = \"webhook\"",
                "set auth = \"webhook\" (a webhook route takes no other credentials), or remove webhook",
            );
            None
        }
        (None, AuthPolicy::Webhook) => {
            d.push(
                span(&r.path),
                format!("{key}.webhook"),
                "a route with auth = \"webhook\" names no scheme",
                "add webhook = \"NAME\" naming a [webhooks.inbound.NAME] section",
            );
            None
        }
        (None, _) => None,
    }
}

/// `websocket = true` needs an HTTP(S) upstream (the built-in targets speak no WebSocket) and a
/// credential policy that reads no body (a webhook signature covers a body a handshake lacks).
fn route_websocket(
    r: &raw::Route,
    auth: AuthPolicy,
    ups: &[UpstreamSpec],
    upstream: Option<usize>,
    key: &str,
    d: &mut Diagnostics,
) -> bool {
    let Some(ws) = r.websocket.as_ref().filter(|w| *w.get_ref()) else {
        return false;
    };
    let http = upstream.is_none_or(|u| matches!(ups[u].target, UpstreamTarget::Http(_)));
    if !http {
        d.push(
            span(ws),
            format!("{key}.websocket"),
            "websocket = true needs an upstream with an http or https url",
            "point the route at an [upstreams.NAME] with url = \"http://...\", or remove websocket",
        );
    }
    if auth == AuthPolicy::Webhook {
        d.push(
            span(ws),
            format!("{key}.websocket"),
            "websocket = true cannot be combined with auth = \"webhook\" (a handshake has no body to sign)",
            "use auth = \"bearer\", \"api_key\" or \"none\" on the WebSocket route",
        );
    }
    true
}
