//! Admin API: the credential API of the admin listener, under `/admin/v1/`: OAuth clients and
//! API-key apps created, listed, updated, rotated, suspended and deleted at run time, and the
//! audit trail of those changes.
//!
//! Mounted only on the admin listener (the public listener never routes here) and only when
//! `[[admin.tokens]]` configures at least one operator token (`settings`); otherwise its paths
//! answer 404. Every route is in [`ROUTES`], which the checked-in OpenAPI document
//! (`docs/admin-api.openapi.json`, served at `/admin/v1/openapi.json`) must match.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/admin/v1/clients` | list (config and store), create (secret shown once) |
//! | GET, PATCH, DELETE | `/admin/v1/clients/{id}` | read, change name/scopes/redirect URIs/status, delete |
//! | POST | `/admin/v1/clients/{id}/rotate` | new secret (shown once), old one kept for `overlap_seconds` |
//! | ... | `/admin/v1/apps...` | the same for API-key apps |
//! | GET | `/admin/v1/applications` | clients and apps in one list, searched by `q` (the console's) |
//! | GET | `/admin/v1/audit` | the audit trail, oldest first (`kind` and `id` filter one credential's) |
//! | GET | `/admin/v1/operator` | the operator token's name and scope |
//! | GET | `/admin/v1/openapi.json` | the OpenAPI 3.1 document |
//!
//! Credentials from the config file are listed read-only (`"source": "config"`); changes to them
//! are refused with 409. Every change is one audit record in the store and one log event
//! (target `portcullis::audit`), then the instance's run-time view is refreshed at once.

mod applications;
mod apps;
mod audit;
pub mod auth;
mod clients;
pub mod input;
pub mod openapi;
pub mod problem;
mod records;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::config::Snapshot;
use crate::config::diagnostic::Diagnostics;
use crate::gateway::Gateway;
use crate::oauth::TokenService;
use crate::state::RedisState;
use crate::store::{CredentialKind, EmbeddedStore, RedisStore, Store};
use auth::Operator;
use problem::ApiError;
use settings::AdminApiSettings;

/// The version prefix of every route.
pub const PREFIX: &str = "/admin/v1/";
/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest wait for a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Every route: method and path pattern (`{id}` = one path segment).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/clients"),
    ("POST", "/admin/v1/clients"),
    ("GET", "/admin/v1/clients/{id}"),
    ("PATCH", "/admin/v1/clients/{id}"),
    ("DELETE", "/admin/v1/clients/{id}"),
    ("POST", "/admin/v1/clients/{id}/rotate"),
    ("GET", "/admin/v1/apps"),
    ("POST", "/admin/v1/apps"),
    ("GET", "/admin/v1/apps/{id}"),
    ("PATCH", "/admin/v1/apps/{id}"),
    ("DELETE", "/admin/v1/apps/{id}"),
    ("POST", "/admin/v1/apps/{id}/rotate"),
    ("GET", "/admin/v1/applications"),
    ("GET", "/admin/v1/audit"),
    ("GET", "/admin/v1/operator"),
    ("GET", "/admin/v1/openapi.json"),
];

/// What a handler works with.
pub(crate) struct Ctx<'a> {
    /// The gateway (its run-time view is refreshed after each change).
    pub gw: &'a Gateway,
    /// The config snapshot of this request.
    pub snap: Arc<Snapshot>,
    /// The credential store.
    pub store: Arc<dyn Store>,
    /// Who is asking.
    pub operator: Operator,
    /// Unix seconds.
    pub now: u64,
}

/// Chooses the store of the credential API when it is on: the token service's store (the
/// embedded file, or Redis), else Redis itself; with neither, a config error.
pub fn attach_store(
    settings: AdminApiSettings,
    oauth: Option<&Arc<TokenService>>,
    redis: Option<&Arc<RedisState>>,
    shared: &crate::config::Shared,
    d: &mut Diagnostics<'_>,
) -> AdminApiSettings {
    if shared.check_only {
        return check_against_store(settings, oauth, shared);
    }
    let store: Option<Arc<dyn Store>> = match (oauth, redis) {
        (Some(svc), _) => Some(svc.store().clone()),
        (None, Some(r)) => Some(Arc::new(RedisStore::new(r.clone()))),
        (None, None) => None,
    };
    match store {
        Some(s) => shared.credentials.attach(s),
        None if settings.enabled() => d.push(
            None,
            "admin.tokens",
            "the admin API keeps clients and apps in the state store, and this config has none",
            "add an [oauth] section (its store file holds them) or set [state] backend = \"redis\"",
        ),
        None => {}
    }
    settings
}

/// `portcullis check`: loads the run-time credentials of the embedded store file (read-only,
/// when no gateway holds it) so the config's ids are compared with them.
fn check_against_store(
    mut settings: AdminApiSettings,
    oauth: Option<&Arc<TokenService>>,
    shared: &crate::config::Shared,
) -> AdminApiSettings {
    let Some(path) = oauth.map(|s| s.store_path()).filter(|p| p.exists()) else {
        return settings;
    };
    settings.store_check = Some(match EmbeddedStore::read_credentials_at(path) {
        Ok(records) => {
            shared.credentials.load_records(&records);
            format!(
                "run-time credentials: {} compared with {}",
                records.len(),
                path.display()
            )
        }
        Err(e) => format!(
            "run-time credentials: not compared ({} is in use or unreadable: {e}); start-up and reload compare them",
            path.display()
        ),
    });
    settings
}

/// Answers a request under [`PREFIX`] when the credential API is on; `None` otherwise.
pub async fn handle(gw: &Gateway, req: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let path = req.uri().path();
    if !path.starts_with(PREFIX) {
        return None;
    }
    let snap = gw.snapshot();
    if !snap.admin_api.enabled() {
        return None;
    }
    Some(serve(gw, snap, req).await.unwrap_or_else(|e| e.response()))
}

async fn serve(
    gw: &Gateway,
    snap: Arc<Snapshot>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_string();
    let (pattern, id) = match_path(&path).ok_or_else(|| {
        ApiError::NotFound(format!("no route {path}; see /admin/v1/openapi.json"))
    })?;
    let method = req.method().clone();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| *p == pattern)
        .map(|(m, _)| *m)
        .collect();
    if !allowed.contains(&method.as_str()) {
        return Err(ApiError::MethodNotAllowed(allowed.join(", ")));
    }
    let operator = auth::authorize(&snap.admin_api, req.headers(), &method)?;
    let query = req.uri().query().map(str::to_string);
    let body = collect(req.into_body()).await?;
    let store = gw
        .shared()
        .credentials
        .store()
        .cloned()
        .ok_or(ApiError::Unavailable)?;
    let ctx = Ctx {
        gw,
        snap,
        store,
        operator,
        now: gw.shared().clock.unix_secs(),
    };
    dispatch(&ctx, &method, pattern, id, query.as_deref(), &body).await
}

async fn dispatch(
    ctx: &Ctx<'_>,
    method: &Method,
    pattern: &str,
    id: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ApiError> {
    use CredentialKind::{App, Client};
    match (method.as_str(), pattern) {
        ("GET", "/admin/v1/clients") => clients::list(ctx, query).await,
        ("POST", "/admin/v1/clients") => clients::create(ctx, body).await,
        ("GET", "/admin/v1/clients/{id}") => clients::get(ctx, id).await,
        ("PATCH", "/admin/v1/clients/{id}") => clients::update(ctx, id, body).await,
        ("DELETE", "/admin/v1/clients/{id}") => records::delete(ctx, Client, id).await,
        ("POST", "/admin/v1/clients/{id}/rotate") => records::rotate(ctx, Client, id, body).await,
        ("GET", "/admin/v1/apps") => apps::list(ctx, query).await,
        ("POST", "/admin/v1/apps") => apps::create(ctx, body).await,
        ("GET", "/admin/v1/apps/{id}") => apps::get(ctx, id).await,
        ("PATCH", "/admin/v1/apps/{id}") => apps::update(ctx, id, body).await,
        ("DELETE", "/admin/v1/apps/{id}") => records::delete(ctx, App, id).await,
        ("POST", "/admin/v1/apps/{id}/rotate") => records::rotate(ctx, App, id, body).await,
        ("GET", "/admin/v1/applications") => applications::list(ctx, query).await,
        ("GET", "/admin/v1/audit") => audit::list(ctx, query).await,
        ("GET", "/admin/v1/operator") => Ok(applications::operator(ctx)),
        ("GET", "/admin/v1/openapi.json") => Ok(openapi::document()),
        _ => Err(ApiError::NotFound(format!(
            "{method} {pattern} is not served"
        ))),
    }
}

/// The route pattern `path` matches and the `{id}` segment (empty when none).
fn match_path(path: &str) -> Option<(&'static str, &str)> {
    let segs: Vec<&str> = path.split('/').collect();
    ROUTES.iter().map(|(_, p)| *p).find_map(|pattern| {
        let pat: Vec<&str> = pattern.split('/').collect();
        if pat.len() != segs.len() {
            return None;
        }
        let mut id = "";
        for (p, s) in pat.iter().zip(&segs) {
            if *p == "{id}" && !s.is_empty() {
                id = s;
            } else if p != s {
                return None;
            }
        }
        Some((pattern, id))
    })
}

async fn collect(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge),
        Ok(Err(_)) => Err(ApiError::invalid(
            "",
            "the body could not be read",
            "send the body again",
        )),
        Err(_) => Err(ApiError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns() {
        assert_eq!(
            match_path("/admin/v1/clients/abc/rotate"),
            Some(("/admin/v1/clients/{id}/rotate", "abc"))
        );
        assert_eq!(match_path("/admin/v1/apps"), Some(("/admin/v1/apps", "")));
        assert_eq!(match_path("/admin/v1/clients//rotate"), None);
        assert_eq!(match_path("/admin/v1/nope"), None);
    }
}
