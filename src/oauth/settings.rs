//! Settings: `[oauth]` checked and compiled once (lifetimes, keys, clients, paths), every problem
//! reported to `Diagnostics` with its span, key path and a fix.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::client::Client;
use super::endpoints::{self, Endpoints};
use super::registration;
use super::signer::{Signer, load_key, parse_alg};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::{OAuth, SString};

/// The compiled `[oauth]` section.
#[derive(Debug)]
pub struct Settings {
    /// `iss` and discovery base, without a trailing slash.
    pub issuer: String,
    /// The store file.
    pub store_path: PathBuf,
    /// Access-token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl: u64,
    /// Authorization-code (and login hand-off) lifetime, seconds.
    pub code_ttl: u64,
    /// The operator's login page.
    pub login_url: Option<String>,
    /// Key for login challenges (HMAC-SHA256), derived from the active signing key.
    pub login_key: [u8; 32],
    /// The signer.
    pub signer: Signer,
    /// The clients.
    pub clients: Vec<Client>,
    /// Endpoint paths and their dialects.
    pub endpoints: Endpoints,
    /// Largest request body, bytes (default 16 KiB).
    pub max_body_bytes: u64,
}

/// Default cap on token-service request bodies: every grant fits in a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024;

fn body_cap(raw: &OAuth, diags: &mut Diagnostics<'_>, errors: &mut usize) -> u64 {
    let Some(v) = &raw.max_body_bytes else {
        return DEFAULT_MAX_BODY_BYTES;
    };
    match crate::config::units::parse_bytes(v.get_ref()) {
        Ok(n) if n > 0 => n,
        _ => {
            *errors += 1;
            diags.push(
                Some(v.span()),
                "oauth.max_body_bytes",
                format!("'{}' is not a positive size", v.get_ref()),
                "write a number and a unit: B, KiB or MiB, e.g. \"16KiB\"",
            );
            DEFAULT_MAX_BODY_BYTES
        }
    }
}

/// Parses `"90s"`, `"5m"`, `"24h"`, `"30d"` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&v| v > 0)
}

fn duration(
    diags: &mut Diagnostics<'_>,
    errors: &mut usize,
    value: &Option<SString>,
    key: &str,
    default: u64,
) -> u64 {
    let Some(v) = value else { return default };
    match parse_duration(v.get_ref()) {
        Some(secs) => secs,
        None => {
            *errors += 1;
            diags.push(
                Some(v.span()),
                format!("oauth.{key}"),
                format!("'{}' is not a duration", v.get_ref()),
                "write a positive whole number with s, m, h or d, e.g. \"24h\"",
            );
            default
        }
    }
}

fn is_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && s.len() > "http://".len()
}

/// Compiles `[oauth]`; `None` when anything was reported.
pub fn compile(raw: &OAuth, diags: &mut Diagnostics<'_>) -> Option<Settings> {
    let base = diags.source().base_dir();
    let mut errors = 0usize;

    let issuer = raw.issuer.get_ref().trim_end_matches('/').to_string();
    if !is_url(&issuer) {
        errors += 1;
        diags.push(
            Some(raw.issuer.span()),
            "oauth.issuer",
            "the issuer must be an http(s) URL",
            "write the public base URL of the gateway, e.g. \"https://api.example.com\"",
        );
    }
    if raw.audience.get_ref().is_empty() {
        errors += 1;
        diags.push(
            Some(raw.audience.span()),
            "oauth.audience",
            "the audience is empty",
            "name the API the tokens are for",
        );
    }
    if raw.store.get_ref().is_empty() {
        errors += 1;
        diags.push(
            Some(raw.store.span()),
            "oauth.store",
            "the store path is empty",
            "e.g. store = \"data/portcullis.db\"",
        );
    }
    let store_path = base.join(raw.store.get_ref());
    let access_ttl = duration(
        diags,
        &mut errors,
        &raw.access_token_ttl,
        "access_token_ttl",
        86_400,
    );
    let refresh_ttl = duration(
        diags,
        &mut errors,
        &raw.refresh_token_ttl,
        "refresh_token_ttl",
        30 * 86_400,
    );
    let code_ttl = duration(diags, &mut errors, &raw.code_ttl, "code_ttl", 300);
    let login_url = raw.login_url.as_ref().map(|u| {
        if !is_url(u.get_ref()) {
            errors += 1;
            diags.push(
                Some(u.span()),
                "oauth.login_url",
                "the login URL must be an http(s) URL",
                "e.g. \"https://login.example.com/oauth\"",
            );
        }
        u.get_ref().clone()
    });

    // Keys.
    let mut keys = Vec::new();
    let mut active = Vec::new();
    let mut login_key = [0u8; 32];
    let mut kids: Vec<&str> = Vec::new();
    for (i, k) in raw.signing_keys.iter().enumerate() {
        let at = format!("oauth.signing_keys[{i}]");
        let k = k.get_ref();
        if kids.contains(&k.kid.get_ref().as_str()) {
            errors += 1;
            diags.push(
                Some(k.kid.span()),
                format!("{at}.kid"),
                "this kid is used twice",
                "give every key its own kid",
            );
        }
        kids.push(k.kid.get_ref());
        let alg = match k
            .alg
            .as_ref()
            .map_or(Ok(jsonwebtoken::Algorithm::ES256), |a| {
                parse_alg(a.get_ref())
            }) {
            Ok(a) => a,
            Err(why) => {
                errors += 1;
                let s = k.alg.as_ref().map(|a| a.span());
                diags.push(s, format!("{at}.alg"), why, "use ES256 (default) or RS256");
                continue;
            }
        };
        let path = base.join(k.private_key_file.get_ref());
        let pem = match std::fs::read(&path) {
            Ok(p) => p,
            Err(e) => {
                errors += 1;
                diags.push(
                    Some(k.private_key_file.span()),
                    format!("{at}.private_key_file"),
                    format!("cannot read {}: {e}", path.display()),
                    "point it at a PEM private key, relative to the config file",
                );
                continue;
            }
        };
        match load_key(k.kid.get_ref(), alg, &pem) {
            Ok(pair) => {
                if k.active {
                    active.push(keys.len());
                    let mut h = Sha256::new();
                    h.update(b"portcullis login challenge v1\0");
                    h.update(&pem);
                    login_key = h.finalize().into();
                }
                keys.push(pair);
            }
            Err(why) => {
                errors += 1;
                diags.push(
                    Some(k.private_key_file.span()),
                    format!("{at}.private_key_file"),
                    why,
                    format!("generate one with `openssl genpkey` for {alg:?}"),
                );
            }
        }
    }
    if raw.signing_keys.is_empty() {
        errors += 1;
        diags.push(
            None,
            "oauth.signing_keys",
            "the token service has no signing key",
            "add an [[oauth.signing_keys]] entry with active = true",
        );
    } else if active.len() != 1 && errors == 0 {
        errors += 1;
        diags.push(
            Some(raw.signing_keys[0].span()),
            "oauth.signing_keys",
            format!(
                "{} keys are marked active; exactly one must be",
                active.len()
            ),
            "set active = true on the one key that signs new tokens",
        );
    }

    let clients = registration::compile_clients(&raw.clients, diags, &mut errors);
    let endpoints = endpoints::compile(raw, &clients, diags, &mut errors);
    let max_body_bytes = body_cap(raw, diags, &mut errors);

    if errors > 0 {
        return None;
    }
    let active_idx = active.first().copied()?;
    let signer = Signer::new(
        keys,
        active_idx,
        issuer.clone(),
        raw.audience.get_ref().clone(),
    )?;
    Some(Settings {
        issuer,
        store_path,
        access_ttl,
        refresh_ttl,
        code_ttl,
        login_url,
        login_key,
        signer,
        clients,
        endpoints,
        max_body_bytes,
    })
}
