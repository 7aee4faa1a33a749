//! Apps: API-key apps through the admin API: list, get, create (the key shown once, stored as
//! its SHA-256), update (name, scopes, status). Rotation and deletion are shared (`records`).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::Ctx;
use super::input::{self, Body};
use super::problem::{ApiError, json_response};
use super::records::{self, SHOWN_ONCE, status_text};
use crate::auth::api_key::App;
use crate::store::{CredentialKind, CredentialRecord, CredentialStatus, WriteMode};

const KIND: CredentialKind = CredentialKind::App;
const CREATE_FIELDS: &[&str] = &["client_id", "name", "scopes"];
const UPDATE_FIELDS: &[&str] = &["name", "scopes", "status"];

/// A run-time app as the API shows it (never the key or its hash).
pub fn view(r: &CredentialRecord) -> Value {
    json!({
        "client_id": r.id,
        "name": r.name,
        "scopes": r.scopes,
        "status": status_text(r.status),
        "source": "store",
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "previous_key_expires_at": r.previous.as_ref().map(|p| p.expires_at),
    })
}

fn config_view(a: &App) -> Value {
    json!({
        "client_id": a.client_id,
        "name": a.name,
        "scopes": a.scopes,
        "status": if a.active { "active" } else { "suspended" },
        "source": "config",
    })
}

/// The config file's apps, rendered, by id.
pub fn config_entries(ctx: &Ctx<'_>) -> Vec<(String, Value)> {
    ctx.snap
        .auth
        .config_apps()
        .iter()
        .map(|a| (a.client_id.clone(), config_view(a)))
        .collect()
}

/// `GET /admin/v1/apps`.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    records::list(ctx, KIND, query, config_entries(ctx), view).await
}

/// `GET /admin/v1/apps/{id}`.
pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    if let Some(a) = ctx.snap.auth.config_apps().get(id) {
        return Ok(json_response(StatusCode::OK, &config_view(a)));
    }
    let r = records::live(ctx, KIND, id).await?;
    Ok(json_response(StatusCode::OK, &view(&r)))
}

/// `POST /admin/v1/apps`.
pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = Body::parse(body, CREATE_FIELDS)?;
    let Some(name) = body.string("name")? else {
        return Err(ApiError::invalid(
            "name",
            "name is required",
            "send a display name, e.g. {\"name\": \"Acme billing\"}",
        ));
    };
    let name = input::name(name)?;
    let scopes = input::scopes(body.strings("scopes")?.unwrap_or_default())?;
    let id = match body.string("client_id")? {
        Some(id) => input::id(id)?,
        None => records::new_id(KIND),
    };
    records::check_new_id(ctx, KIND, &id)?;
    let (key, hash) = records::new_secret(KIND);
    let record = CredentialRecord {
        kind: KIND,
        id: id.clone(),
        name,
        status: CredentialStatus::Active,
        scopes,
        grant_types: Vec::new(),
        redirect_uris: Vec::new(),
        secret_hash: Some(hash),
        previous: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let mut out = view(&record);
    records::commit(ctx, record, WriteMode::Create, "create", body.fields()).await?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("api_key".into(), Value::from(key));
        obj.insert("warning".into(), Value::from(SHOWN_ONCE));
    }
    Ok(records::created(format!("/admin/v1/apps/{id}"), &out))
}

/// `PATCH /admin/v1/apps/{id}`.
pub async fn update(
    ctx: &Ctx<'_>,
    id: &str,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = Body::parse(body, UPDATE_FIELDS)?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "",
            "nothing to change",
            format!("send one or more of {}", UPDATE_FIELDS.join(", ")),
        ));
    }
    let changes = records::Changes::parse(&body)?;
    let mut r = records::live(ctx, KIND, id).await?;
    changes.apply(&mut r);
    r.updated_at = ctx.now;
    let out = view(&r);
    records::commit(ctx, r, WriteMode::Update, "update", body.fields()).await?;
    Ok(json_response(StatusCode::OK, &out))
}
