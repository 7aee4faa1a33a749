//! Records: the lifecycle both kinds of credential share: find a live record (refusing config
//! ones), commit a change with its audit record, rotate, delete, list with the config's entries.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::Ctx;
use super::input::{self, Body};
use super::problem::{ApiError, Page, json_response, matches, page_body};
use crate::store::{
    AuditRecord, CredentialKind, CredentialRecord, CredentialStatus, PreviousSecret, WriteMode,
    WriteOutcome, token_hash,
};

/// The warning printed beside every secret.
pub const SHOWN_ONCE: &str =
    "this secret is shown once and cannot be retrieved again; store it now";

/// Singular noun for messages.
pub fn noun(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Client => "client",
        CredentialKind::App => "app",
    }
}

/// True when the config file defines this id.
pub fn config_defined(ctx: &Ctx<'_>, kind: CredentialKind, id: &str) -> bool {
    match kind {
        CredentialKind::Client => ctx
            .snap
            .oauth
            .as_ref()
            .is_some_and(|s| s.config_clients().contains(id)),
        CredentialKind::App => ctx.snap.auth.config_apps().contains(id),
    }
}

fn config_refusal(kind: CredentialKind, id: &str) -> ApiError {
    ApiError::Conflict {
        code: "config_defined",
        message: format!(
            "{} {id:?} is defined in the config file (source: config) and is read-only here; change it in the file and reload",
            noun(kind)
        ),
    }
}

fn not_found(kind: CredentialKind, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {} {id:?}", noun(kind)))
}

/// The live (active or suspended) run-time record of `id`: 409 for a config one, else 404.
pub async fn live(
    ctx: &Ctx<'_>,
    kind: CredentialKind,
    id: &str,
) -> Result<CredentialRecord, ApiError> {
    if config_defined(ctx, kind, id) {
        return Err(config_refusal(kind, id));
    }
    match ctx.store.credential(kind, id.to_string()).await? {
        Some(r) if r.status != CredentialStatus::Deleted => Ok(r),
        _ => Err(not_found(kind, id)),
    }
}

/// A fresh id: `pc_` (clients) or `app_` (apps) + 12 random bytes, base64url.
pub fn new_id(kind: CredentialKind) -> String {
    let bytes: [u8; 12] = rand::random();
    let prefix = match kind {
        CredentialKind::Client => "pc_",
        CredentialKind::App => "app_",
    };
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh secret and its `sha256:<hex>`: 32 random bytes, base64url (apps: with `pk_`).
pub fn new_secret(kind: CredentialKind) -> (String, String) {
    match kind {
        CredentialKind::App => crate::auth::generate_api_key(),
        CredentialKind::Client => {
            let bytes: [u8; 32] = rand::random();
            let secret = URL_SAFE_NO_PAD.encode(bytes);
            let hash = format!("sha256:{}", token_hash(&secret));
            (secret, hash)
        }
    }
}

/// Writes `record` under `mode` with one audit record and one log event, then refreshes this
/// instance's view so the change applies to the next request.
pub async fn commit(
    ctx: &Ctx<'_>,
    record: CredentialRecord,
    mode: WriteMode,
    action: &str,
    changed: Vec<String>,
) -> Result<(), ApiError> {
    let (kind, id) = (record.kind, record.id.clone());
    let audit = AuditRecord {
        seq: 0,
        at: ctx.now,
        actor: ctx.operator.name.clone(),
        action: action.to_string(),
        kind,
        id: id.clone(),
        changed: changed.clone(),
    };
    match ctx.store.write_credential(record, mode, audit).await? {
        WriteOutcome::Written => {}
        WriteOutcome::Exists => {
            return Err(ApiError::Conflict {
                code: "duplicate_id",
                message: format!("a {} with id {id:?} exists or existed", noun(kind)),
            });
        }
        WriteOutcome::Missing => return Err(not_found(kind, &id)),
    }
    tracing::info!(
        target: "portcullis::audit",
        actor = %ctx.operator.name,
        action,
        kind = kind.as_str(),
        id = %id,
        changed = ?changed,
        "credential changed"
    );
    ctx.gw.shared().credentials.refresh_logged().await;
    Ok(())
}

/// Refuses a create whose chosen id the config file already uses.
pub fn check_new_id(ctx: &Ctx<'_>, kind: CredentialKind, id: &str) -> Result<(), ApiError> {
    if config_defined(ctx, kind, id) {
        return Err(ApiError::Conflict {
            code: "duplicate_id",
            message: format!(
                "the config file already defines {} {id:?}; choose another id",
                noun(kind)
            ),
        });
    }
    Ok(())
}

/// A checked change of the fields both kinds share (`name`, `scopes`, `status`).
#[derive(Debug, Default)]
pub struct Changes {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    status: Option<CredentialStatus>,
}

impl Changes {
    /// Checks the shared fields of `body` (before any lookup: a bad body is 422 for any id).
    pub fn parse(body: &Body) -> Result<Self, ApiError> {
        Ok(Self {
            name: body.string("name")?.map(input::name).transpose()?,
            scopes: body.strings("scopes")?.map(input::scopes).transpose()?,
            status: body.string("status")?.map(input::status).transpose()?,
        })
    }

    /// Applies the change to `r`.
    pub fn apply(self, r: &mut CredentialRecord) {
        if let Some(n) = self.name {
            r.name = n;
        }
        if let Some(s) = self.scopes {
            r.scopes = s;
        }
        if let Some(s) = self.status {
            r.status = s;
        }
    }
}

/// `POST .../{id}/rotate`: a new secret (shown once); the old one works for `overlap_seconds`.
pub async fn rotate(
    ctx: &Ctx<'_>,
    kind: CredentialKind,
    id: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = Body::parse(body, &["overlap_seconds"])?;
    let overlap = input::overlap(body.u64("overlap_seconds")?)?;
    let mut r = live(ctx, kind, id).await?;
    let Some(old) = r.secret_hash.take() else {
        return Err(ApiError::Conflict {
            code: "public_client",
            message: format!("{id:?} is a public client: it has no secret to rotate"),
        });
    };
    let (secret, hash) = new_secret(kind);
    r.secret_hash = Some(hash);
    r.previous = (overlap > 0).then(|| PreviousSecret {
        hash: old,
        expires_at: ctx.now + overlap,
    });
    r.updated_at = ctx.now;
    let until = r.previous.as_ref().map(|p| p.expires_at);
    commit(ctx, r, WriteMode::Update, "rotate", vec!["secret".into()]).await?;
    let field = secret_field(kind);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": id,
            field: secret,
            "previous_secret_expires_at": until,
            "warning": SHOWN_ONCE,
        }),
    ))
}

/// The response field carrying a new secret.
pub fn secret_field(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Client => "client_secret",
        CredentialKind::App => "api_key",
    }
}

/// `DELETE .../{id}`: the record becomes a tombstone; its tokens and keys stop working now.
pub async fn delete(
    ctx: &Ctx<'_>,
    kind: CredentialKind,
    id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut r = live(ctx, kind, id).await?;
    r.status = CredentialStatus::Deleted;
    r.secret_hash = None;
    r.previous = None;
    r.updated_at = ctx.now;
    commit(ctx, r, WriteMode::Update, "delete", vec!["status".into()]).await?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// Every live entry of `kind`: the store's (not deleted) and the config's (already rendered),
/// by id, unsorted.
pub async fn entries(
    ctx: &Ctx<'_>,
    kind: CredentialKind,
    config: Vec<(String, Value)>,
    view: fn(&CredentialRecord) -> Value,
) -> Result<Vec<(String, Value)>, ApiError> {
    let stored = ctx.store.credentials(kind).await?;
    Ok(stored
        .iter()
        .filter(|r| r.status != CredentialStatus::Deleted)
        .map(|r| (r.id.clone(), view(r)))
        .chain(config)
        .collect())
}

/// True when the rendered entry `v` matches the search `q` (id or name).
pub fn entry_matches(q: Option<&str>, v: &Value) -> bool {
    let id = v["client_id"].as_str().unwrap_or("");
    matches(q, id, v["name"].as_str().unwrap_or(""))
}

/// One page of the config's entries merged with the store's, searched by `q` (id or name).
pub async fn list(
    ctx: &Ctx<'_>,
    kind: CredentialKind,
    query: Option<&str>,
    config: Vec<(String, Value)>,
    view: fn(&CredentialRecord) -> Value,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let page = Page::parse(query, &["q"])?;
    let q = page.filter("q");
    let mut all = entries(ctx, kind, config, view).await?;
    all.retain(|(_, v)| entry_matches(q, v));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = page.cut(all, |(id, _)| id.clone());
    let body = page_body(items.into_iter().map(|(_, v)| v).collect(), next);
    Ok(json_response(StatusCode::OK, &body))
}

/// A status as the API writes it.
pub fn status_text(s: CredentialStatus) -> &'static str {
    match s {
        CredentialStatus::Active => "active",
        CredentialStatus::Suspended => "suspended",
        CredentialStatus::Deleted => "deleted",
    }
}

/// A 201 with `Location`.
pub fn created(location: String, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = json_response(StatusCode::CREATED, body);
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}
