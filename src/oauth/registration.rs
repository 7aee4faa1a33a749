//! Client registrations: `[[oauth.clients]]` checked and compiled into `Client`s, every problem
//! reported with its span, key path and a fix.
//!
//! Secure defaults: a client is confidential (it authenticates with its secret) and must send PKCE
//! on authorization requests. A public client (`token_endpoint_auth_method = "none"`, RFC 6749
//! section 2.1) has no secret, always needs PKCE, and may never use `client_credentials`.

use toml::Spanned;

use super::client::{Client, GrantType, SecretHash};
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::OAuthClient;

/// Compiles every client; `errors` counts what was reported.
pub fn compile_clients(
    raw: &[Spanned<OAuthClient>],
    diags: &mut Diagnostics<'_>,
    errors: &mut usize,
) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let at = format!("oauth.clients[{i}]");
        let c = c.get_ref();
        let id = c.client_id.get_ref();
        if id.is_empty() || id.contains(':') || clients.iter().any(|o| &o.client_id == id) {
            *errors += 1;
            diags.push(
                Some(c.client_id.span()),
                format!("{at}.client_id"),
                "client ids must be unique, non-empty and free of ':'",
                "pick another id (portcullis new-client mints one)",
            );
        }
        let mut report = |span, key: &str, why: String, fix: &str| {
            *errors += 1;
            diags.push(span, format!("{at}.{key}"), why, fix);
        };
        if let Some(client) = compile_client(c, &mut report) {
            clients.push(client);
        }
    }
    clients
}

type Report<'r> = dyn FnMut(Option<std::ops::Range<usize>>, &str, String, &str) + 'r;

fn compile_client(c: &OAuthClient, report: &mut Report<'_>) -> Option<Client> {
    let public = auth_method(c, report)?;
    // Every check runs before giving up, so the operator sees all of a client's problems.
    let secret = secret(c, public, report);
    let grant_types = grant_types(c, public, report);
    check_redirect_uris(c, &grant_types, report);
    let active = status(c, report);
    for s in &c.scopes {
        if s.get_ref().is_empty() || s.get_ref().contains(' ') {
            report(
                Some(s.span()),
                "scopes",
                "a scope must be one non-empty word".into(),
                "split it into separate list entries",
            );
        }
    }
    let require_pkce = match (&c.require_pkce, public) {
        (Some(flag), true) if !*flag.get_ref() => {
            report(
                Some(flag.span()),
                "require_pkce",
                "a public client must always use PKCE (RFC 9700 section 2.1.1)".into(),
                "remove require_pkce = false, or make the client confidential with a secret_hash",
            );
            true
        }
        (Some(flag), false) => *flag.get_ref(),
        _ => true,
    };
    if public && c.login_provider {
        report(
            Some(c.client_id.span()),
            "login_provider",
            "a login provider must be a confidential client".into(),
            "give the login backend its own client with a secret_hash",
        );
    }
    Some(Client {
        client_id: c.client_id.get_ref().clone(),
        name: c.name.clone(),
        secret: secret?,
        grant_types,
        scopes: c.scopes.iter().map(|s| s.get_ref().clone()).collect(),
        redirect_uris: c
            .redirect_uris
            .iter()
            .map(|s| s.get_ref().clone())
            .collect(),
        active,
        login_provider: c.login_provider,
        require_pkce,
        refresh_without_credentials: c.refresh_without_credentials,
        previous_secret: None,
    })
}

/// `Some(true)` for a public client.
fn auth_method(c: &OAuthClient, report: &mut Report<'_>) -> Option<bool> {
    match c.token_endpoint_auth_method.as_ref() {
        None => Some(false),
        Some(m) => match m.get_ref().as_str() {
            "client_secret_basic" | "client_secret_post" => Some(false),
            "none" => Some(true),
            other => {
                report(
                    Some(m.span()),
                    "token_endpoint_auth_method",
                    format!("unknown method '{other}'"),
                    "use \"client_secret_basic\" (default) or \"none\" for a public client",
                );
                None
            }
        },
    }
}

fn secret(c: &OAuthClient, public: bool, report: &mut Report<'_>) -> Option<Option<SecretHash>> {
    match (&c.secret_hash, public) {
        (None, true) => Some(None),
        (Some(h), true) => {
            report(
                Some(h.span()),
                "secret_hash",
                "a public client (token_endpoint_auth_method = \"none\") has no secret".into(),
                "remove secret_hash, or drop token_endpoint_auth_method = \"none\"",
            );
            None
        }
        (None, false) => {
            report(
                Some(c.client_id.span()),
                "secret_hash",
                "a confidential client needs a secret_hash".into(),
                "run `portcullis new-client`, or set token_endpoint_auth_method = \"none\" for a public client",
            );
            None
        }
        (Some(h), false) => match SecretHash::parse(h.get_ref()) {
            Ok(s) => Some(Some(s)),
            Err(why) => {
                report(
                    Some(h.span()),
                    "secret_hash",
                    why,
                    "run `portcullis new-client` or `portcullis hash-secret`; never put the secret itself here",
                );
                None
            }
        },
    }
}

fn grant_types(c: &OAuthClient, public: bool, report: &mut Report<'_>) -> Vec<GrantType> {
    let mut out = Vec::new();
    for g in &c.grant_types {
        match GrantType::parse(g.get_ref()) {
            Some(GrantType::ClientCredentials) if public => report(
                Some(g.span()),
                "grant_types",
                "a public client may not use client_credentials (it has no secret)".into(),
                "remove client_credentials, or register a confidential client for it",
            ),
            Some(gt) => out.push(gt),
            None => report(
                Some(g.span()),
                "grant_types",
                format!("unknown grant type '{}'", g.get_ref()),
                "use client_credentials, authorization_code or refresh_token",
            ),
        }
    }
    out
}

fn check_redirect_uris(c: &OAuthClient, grants: &[GrantType], report: &mut Report<'_>) {
    for u in &c.redirect_uris {
        let text = u.get_ref();
        let is_url = (text.starts_with("https://") || text.starts_with("http://"))
            && text.len() > "http://".len();
        if !is_url || text.contains('#') {
            report(
                Some(u.span()),
                "redirect_uris",
                "a redirect URI must be an absolute http(s) URL without a fragment".into(),
                "write the exact URL the client registers",
            );
        }
    }
    if grants.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        report(
            Some(c.client_id.span()),
            "redirect_uris",
            "authorization_code needs at least one redirect URI".into(),
            "add redirect_uris = [\"https://app.example.com/callback\"]",
        );
    }
}

fn status(c: &OAuthClient, report: &mut Report<'_>) -> bool {
    match c.status.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("active", _)) => true,
        Some(("suspended", _)) => false,
        Some((other, span)) => {
            report(
                Some(span),
                "status",
                format!("unknown status '{other}'"),
                "use \"active\" or \"suspended\"",
            );
            false
        }
    }
}
