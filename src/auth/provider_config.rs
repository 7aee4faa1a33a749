//! Provider configuration: `[jwt.providers.NAME]`, the implicit `default` provider of `[jwt]`, the built-in one, and routes' `providers` lists.
//!
//! Migration: a `[jwt]` with top-level `issuers`/`audiences`/`keys`/`jwks` is one provider named
//! `default` (any issuer when `issuers` is empty, as before). The token service is the provider
//! `oauth`. An issuer the token service owns is dropped from `default`'s list: its tokens are
//! verified with the token service's keys only.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::AuthState;
use super::jwks::JwksSource;
use super::jwt::{JwtRules, ScopeClaim, normalize_typ, parse_algorithm};
use super::keys::load_static_keys;
use super::provider::{BUILTIN, BuiltinIssuer, DEFAULT, MAX_PROVIDERS, Provider, ProviderSet};
use super::settings::{self, Global};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::{self, RawConfig};

/// Builds every provider: configured ones in name order, then `default`, then `oauth`.
pub(crate) fn providers(
    raw: &RawConfig,
    global: &Global,
    builtin: Option<&BuiltinIssuer>,
    state: &Arc<AuthState>,
    diags: &mut Diagnostics<'_>,
) -> Vec<Provider> {
    let mut out = Vec::new();
    let mut urls: HashSet<String> = HashSet::new();
    if let Some(jwt) = &raw.jwt {
        for (name, entry) in &jwt.providers {
            let p = named(name, entry, global, state, &mut urls, diags);
            if let Some(p) = p {
                check_issuer_unique(&p, entry, &out, builtin, diags);
                out.push(p);
            }
        }
        if !jwt.keys.is_empty() || !jwt.jwks.is_empty() {
            let p = legacy(jwt, global, builtin, state, &mut urls, diags);
            check_legacy_issuers(jwt, &out, diags);
            out.push(p);
        }
    }
    if let Some(b) = builtin {
        out.push(builtin_provider(b, global));
    }
    if out.len() > MAX_PROVIDERS {
        diags.push(
            None,
            "jwt.providers",
            format!(
                "{} providers; at most {MAX_PROVIDERS} are supported",
                out.len()
            ),
            "merge providers that share an issuer's keys",
        );
    }
    out
}

fn builtin_provider(b: &BuiltinIssuer, global: &Global) -> Provider {
    let mut rules = global.rules.clone();
    rules.issuers = vec![b.issuer.clone()];
    rules.audiences = vec![b.audience.clone()];
    rules.require_exp = true;
    Provider {
        name: BUILTIN.to_string(),
        any_issuer: false,
        rules,
        keys: b.keys.clone(),
        jwks: Vec::new(),
    }
}

/// The `default` provider from `[jwt]`'s top-level keys.
fn legacy(
    jwt: &raw::Jwt,
    global: &Global,
    builtin: Option<&BuiltinIssuer>,
    state: &Arc<AuthState>,
    urls: &mut HashSet<String>,
    diags: &mut Diagnostics<'_>,
) -> Provider {
    let mut rules = global.rules.clone();
    let listed = settings::strings(&jwt.issuers, "jwt.issuers", diags);
    let any_issuer = listed.is_empty();
    rules.issuers = listed
        .into_iter()
        .filter(|i| builtin.is_none_or(|b| b.issuer != *i))
        .collect();
    rules.audiences = settings::strings(&jwt.audiences, "jwt.audiences", diags);
    Provider {
        name: DEFAULT.to_string(),
        any_issuer,
        rules,
        keys: load_static_keys(&jwt.keys, "jwt.keys", diags),
        jwks: jwks_sources(&jwt.jwks, "jwt.jwks", &[], state, urls, diags),
    }
}

fn named(
    name: &str,
    entry: &Spanned<raw::JwtProvider>,
    global: &Global,
    state: &Arc<AuthState>,
    urls: &mut HashSet<String>,
    diags: &mut Diagnostics<'_>,
) -> Option<Provider> {
    let path = format!("jwt.providers.{name}");
    let p = entry.get_ref();
    let mut ok = check_name(name, entry, &path, diags);
    let issuer = p.issuer.get_ref().trim().to_string();
    if issuer.is_empty() {
        diags.push(
            Some(p.issuer.span()),
            format!("{path}.issuer"),
            "empty issuer",
            "write the exact `iss` value the provider's tokens carry",
        );
        ok = false;
    }
    let mut rules = global.rules.clone();
    rules.issuers = vec![issuer];
    rules.audiences = settings::strings(&p.audiences, &format!("{path}.audiences"), diags);
    if p.audiences.is_empty() {
        diags.push(
            Some(entry.span()),
            format!("{path}.audiences"),
            "a provider needs at least one accepted audience",
            "list the `aud` values its tokens carry for this gateway, e.g. audiences = [\"partner-api\"]",
        );
        ok = false;
    }
    rules.algorithms = algorithms(&p.algorithms, &path, diags);
    rules.leeway_secs = settings::leeway(
        p.leeway.as_ref(),
        &format!("{path}.leeway"),
        global.rules.leeway_secs,
        diags,
    );
    required_claims(p.required_claims.as_deref(), &path, &mut rules, diags);
    rules.typ = p.typ.as_ref().map(|t| normalize_typ(t.get_ref()));
    rules.scope_claim = scope_claim(p.scope_claim.as_ref(), &path, diags);
    let keys = load_static_keys(&p.keys, &format!("{path}.keys"), diags);
    for (i, k) in keys.iter().enumerate() {
        if !rules.algorithms.is_empty() && !rules.algorithms.contains(&k.alg) {
            diags.push(
                Some(p.keys[i.min(p.keys.len() - 1)].span()),
                format!("{path}.keys"),
                format!(
                    "a key is bound to {:?}, which `algorithms` does not list",
                    k.alg
                ),
                "add the algorithm to the provider's `algorithms`, or remove the key",
            );
            ok = false;
        }
    }
    let jwks = jwks_sources(
        &p.jwks,
        &format!("{path}.jwks"),
        &rules.algorithms,
        state,
        urls,
        diags,
    );
    if p.keys.is_empty() && p.jwks.is_empty() {
        diags.push(
            Some(entry.span()),
            path.clone(),
            "this provider has no keys",
            "add [[jwt.providers.NAME.keys]] or [[jwt.providers.NAME.jwks]] with the issuer's verification keys",
        );
        ok = false;
    }
    ok.then(|| Provider {
        name: name.to_string(),
        any_issuer: false,
        rules,
        keys,
        jwks,
    })
}

fn check_name(
    name: &str,
    entry: &Spanned<raw::JwtProvider>,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> bool {
    let reserved = name == BUILTIN || name == DEFAULT;
    let charset = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if reserved || !charset {
        let why = if reserved {
            format!("the provider name {name:?} is reserved")
        } else {
            format!("{name:?} is not a usable provider name")
        };
        diags.push(
            Some(entry.span()),
            path.to_string(),
            why,
            "name providers with letters, digits, - and _ (\"oauth\" is the token service, \"default\" the top-level [jwt] keys)",
        );
        return false;
    }
    true
}

/// Two providers never own one issuer (nor a provider and the token service).
fn check_issuer_unique(
    p: &Provider,
    entry: &Spanned<raw::JwtProvider>,
    earlier: &[Provider],
    builtin: Option<&BuiltinIssuer>,
    diags: &mut Diagnostics<'_>,
) {
    let iss = &p.rules.issuers[0];
    let other = earlier
        .iter()
        .find(|o| o.rules.issuers.contains(iss))
        .map(|o| format!("provider {:?}", o.name))
        .or_else(|| {
            builtin
                .filter(|b| b.issuer == *iss)
                .map(|_| "the token service ([oauth] issuer)".to_string())
        });
    if let Some(other) = other {
        let raw = entry.get_ref();
        diags.push(
            Some(raw.issuer.span()),
            format!("jwt.providers.{}.issuer", p.name),
            format!("issuer {iss:?} is also the issuer of {other}"),
            "each issuer belongs to one provider: merge the two providers' keys into one",
        );
    }
}

/// A top-level `issuers` entry never names a provider's issuer.
fn check_legacy_issuers(jwt: &raw::Jwt, named: &[Provider], diags: &mut Diagnostics<'_>) {
    for (i, iss) in jwt.issuers.iter().enumerate() {
        if let Some(p) = named
            .iter()
            .find(|p| p.rules.issuers.contains(iss.get_ref()))
        {
            diags.push(
                Some(iss.span()),
                format!("jwt.issuers[{i}]"),
                format!("issuer {:?} is also the issuer of provider {:?}", iss.get_ref(), p.name),
                "each issuer belongs to one provider: move the top-level keys of this issuer into that provider",
            );
        }
    }
}

fn algorithms(list: &[Spanned<String>], path: &str, diags: &mut Diagnostics<'_>) -> Vec<Algorithm> {
    let mut out = Vec::new();
    for (k, a) in list.iter().enumerate() {
        match parse_algorithm(a.get_ref()) {
            Some(alg) => out.push(alg),
            None => diags.push(
                Some(a.span()),
                format!("{path}.algorithms[{k}]"),
                format!("unsupported algorithm {:?}", a.get_ref()),
                "use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
            ),
        }
    }
    out
}

fn required_claims(
    list: Option<&[Spanned<String>]>,
    path: &str,
    rules: &mut JwtRules,
    diags: &mut Diagnostics<'_>,
) {
    let Some(list) = list else {
        rules.require_exp = true;
        return;
    };
    let names = settings::strings(list, &format!("{path}.required_claims"), diags);
    rules.require_exp = names.iter().any(|n| n == "exp");
    rules.required_claims = names.into_iter().filter(|n| n != "exp").collect();
}

fn scope_claim(
    value: Option<&Spanned<String>>,
    path: &str,
    diags: &mut Diagnostics<'_>,
) -> ScopeClaim {
    match value.map(|v| (v, v.get_ref().as_str())) {
        None => ScopeClaim::ScopeThenScp,
        Some((_, "scope")) => ScopeClaim::Scope,
        Some((_, "scp")) => ScopeClaim::Scp,
        Some((v, other)) => {
            diags.push(
                Some(v.span()),
                format!("{path}.scope_claim"),
                format!("unknown scope claim {other:?}"),
                "use \"scope\" (space-separated string) or \"scp\" (array of strings)",
            );
            ScopeClaim::ScopeThenScp
        }
    }
}

fn jwks_sources(
    entries: &[Spanned<raw::Jwks>],
    path: &str,
    fallback: &[Algorithm],
    state: &Arc<AuthState>,
    urls: &mut HashSet<String>,
    diags: &mut Diagnostics<'_>,
) -> Vec<Arc<JwksSource>> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("{path}[{i}]");
        let Some((url, s)) = settings::jwks_settings(&key, entry, fallback, diags) else {
            continue;
        };
        if !urls.insert(url.clone()) {
            diags.push(
                Some(entry.span()),
                format!("{key}.url"),
                "this JWKS URL is listed twice",
                "keep one entry per URL: a JWKS belongs to one provider",
            );
            continue;
        }
        out.push(state.jwks.source(&url, s, &state.clock));
    }
    out
}

/// Each raw route's accepted providers (index = position in `[[routes]]`); unknown names and
/// lists on non-bearer routes are reported.
pub(crate) fn route_sets(
    raw: &RawConfig,
    names: &[&str],
    diags: &mut Diagnostics<'_>,
) -> Vec<ProviderSet> {
    let mut out = Vec::with_capacity(raw.routes.len());
    for (i, route) in raw.routes.iter().enumerate() {
        let r = route.get_ref();
        let Some(list) = &r.providers else {
            out.push(ProviderSet::ALL);
            continue;
        };
        let key = format!("routes[{i}].providers");
        let bearer = matches!(
            r.auth.as_ref().map(|a| a.get_ref().as_str()),
            Some("bearer" | "bearer_or_api_key")
        );
        if !bearer {
            diags.push(
                Some(route.span()),
                key.clone(),
                "`providers` applies only to bearer routes",
                "remove `providers`, or set auth = \"bearer\" or \"bearer_or_api_key\"",
            );
        }
        if list.is_empty() {
            diags.push(
                Some(route.span()),
                key.clone(),
                "an empty providers list accepts no token",
                "name at least one provider, or remove the key to accept all of them",
            );
        }
        let mut set = ProviderSet::NONE;
        for (j, name) in list.iter().enumerate() {
            match names.iter().position(|n| *n == name.get_ref()) {
                Some(index) => set = set.with(index),
                None => diags.push(
                    Some(name.span()),
                    format!("{key}[{j}]"),
                    format!("unknown provider {:?}", name.get_ref()),
                    if names.is_empty() {
                        "configure [jwt.providers.NAME] or [oauth] first".to_string()
                    } else {
                        format!("use one of: {}", names.join(", "))
                    },
                ),
            }
        }
        out.push(set);
    }
    out
}
