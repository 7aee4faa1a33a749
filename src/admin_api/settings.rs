//! Settings: `[[admin.tokens]]`, the operator tokens of the credential API, checked and compiled.
//!
//! ```toml
//! [[admin.tokens]]
//! name = "ci-deploy"                 # shown in audit records and logs
//! token_hash = "sha256:<64 hex>"     # SHA-256 of the token (`portcullis new-admin-token`)
//! scope = "write"                    # "read" (list, get, audit) or "write" (everything)
//! ```
//! Only hashes are configured; the clear token stays with the caller (the CLI reads it from a
//! flag or `PORTCULLIS_ADMIN_TOKEN`, or `env:NAME` / `file:PATH`). Without any token the
//! credential API is not mounted at all (its paths answer 404), and `portcullis check` says so.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use toml::Spanned;

use crate::auth::api_key::KeyHash;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::{RawConfig, SString};

/// One `[[admin.tokens]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Who the token belongs to (audit records name it).
    pub name: SString,
    /// `sha256:<hex>` of the token.
    pub token_hash: SString,
    /// `"read"` or `"write"`.
    pub scope: SString,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// List, get, audit, the OpenAPI document.
    Read,
    /// Everything, changes included.
    Write,
}

/// A compiled operator token.
#[derive(Debug, Clone)]
pub struct OperatorToken {
    /// Its name.
    pub name: String,
    /// SHA-256 of the token.
    pub digest: [u8; 32],
    /// Its scope.
    pub scope: Scope,
}

/// The compiled credential-API settings.
#[derive(Debug, Clone, Default)]
pub struct AdminApiSettings {
    /// The operator tokens; empty = the credential API is off.
    pub tokens: Vec<OperatorToken>,
    /// `portcullis check` only: how the config's ids were compared with the store's.
    pub store_check: Option<String>,
    /// True when an admin listener is configured (it serves the web console at `/console/`).
    pub listener: bool,
}

impl AdminApiSettings {
    /// True when at least one token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The lines for `portcullis check`: the credential API, the console, the store check.
    pub fn describe(&self) -> String {
        let mut line = self.describe_tokens();
        if self.listener {
            line.push('\n');
            line.push_str(if self.enabled() {
                "admin web console: at /console/ on the admin listener (sign in with an operator token)"
            } else {
                "admin web console: served at /console/, but it needs the credential API ([[admin.tokens]])"
            });
        }
        if let Some(c) = &self.store_check {
            line.push('\n');
            line.push_str(c);
        }
        line
    }

    fn describe_tokens(&self) -> String {
        if !self.enabled() {
            return "admin credential API: off (no [[admin.tokens]] configured; /admin/v1/ answers 404)".into();
        }
        let names = |s: Scope| -> Vec<&str> {
            let of = self.tokens.iter().filter(|t| t.scope == s);
            of.map(|t| t.name.as_str()).collect()
        };
        format!(
            "admin credential API: on at /admin/v1/ on the admin listener (read tokens: [{}]; write tokens: [{}])",
            names(Scope::Read).join(", "),
            names(Scope::Write).join(", ")
        )
    }
}

/// Compiles `[[admin.tokens]]`; problems go to `d`.
pub fn compile(raw: &RawConfig, d: &mut Diagnostics<'_>) -> AdminApiSettings {
    let Some(admin) = &raw.admin else {
        return AdminApiSettings::default();
    };
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut tokens = Vec::new();
    for (i, t) in admin.tokens.iter().enumerate() {
        let t = t.get_ref();
        let at = |k: &str| format!("admin.tokens[{i}].{k}");
        let name = t.name.get_ref().trim();
        if name.is_empty() || name.chars().any(char::is_control) || !names.insert(name) {
            d.push(
                Some(t.name.span()),
                at("name"),
                format!("token name {name:?} is empty, has control characters or is used twice"),
                "give every operator token its own name, e.g. \"ci-deploy\"",
            );
        }
        let digest = match KeyHash::parse(t.token_hash.get_ref()) {
            Ok(KeyHash::Sha256(digest)) if digests.insert(digest) => Some(digest),
            Ok(KeyHash::Sha256(_)) => {
                push_hash(
                    d,
                    &t.token_hash,
                    at("token_hash"),
                    "two tokens have the same hash",
                );
                None
            }
            _ => {
                let why = "expected sha256:<64 hex digits>";
                push_hash(d, &t.token_hash, at("token_hash"), why);
                None
            }
        };
        let scope = scope(&t.scope, at("scope"), d);
        if let (Some(digest), Some(scope)) = (digest, scope) {
            let name = name.to_string();
            tokens.push(OperatorToken {
                name,
                digest,
                scope,
            });
        }
    }
    AdminApiSettings {
        tokens,
        store_check: None,
        listener: true,
    }
}

fn push_hash(d: &mut Diagnostics<'_>, s: &Spanned<String>, key: String, why: &str) {
    d.push(
        Some(s.span()),
        key,
        why,
        "paste the token_hash printed by `portcullis new-admin-token`",
    );
}

fn scope(s: &Spanned<String>, key: String, d: &mut Diagnostics<'_>) -> Option<Scope> {
    match s.get_ref().as_str() {
        "read" => Some(Scope::Read),
        "write" => Some(Scope::Write),
        other => {
            d.push(
                Some(s.span()),
                key,
                format!("unknown scope {other:?}"),
                "use \"read\" (list, get, audit) or \"write\" (every change)",
            );
            None
        }
    }
}

/// A fresh operator token (`pat_` + 32 random bytes, base64url) and its `[[admin.tokens]]`
/// block; the block holds only the hash.
pub fn new_token_block(name: &str, scope: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    let token = format!("pat_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = format!("sha256:{}", crate::store::token_hash(&token));
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "operator token: {token}\n\n[[admin.tokens]]\nname = {}\ntoken_hash = \"{hash}\"\nscope = {}",
        quote(name),
        quote(scope)
    )
}
