//! Clients: OAuth clients of the token service through the admin API: list, get, create (the
//! secret of a confidential client shown once), update (name, scopes, redirect URIs, status).
//! Rotation and deletion are shared with apps (`records`).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::Ctx;
use super::input::{self, Body};
use super::problem::{ApiError, json_response};
use super::records::{self, SHOWN_ONCE, status_text};
use crate::oauth::client::{Client, GrantType};
use crate::store::{CredentialKind, CredentialRecord, CredentialStatus, WriteMode};

const KIND: CredentialKind = CredentialKind::Client;
const CREATE_FIELDS: &[&str] = &[
    "client_id",
    "name",
    "type",
    "grant_types",
    "scopes",
    "redirect_uris",
];
const UPDATE_FIELDS: &[&str] = &["name", "scopes", "redirect_uris", "status"];

/// A run-time client as the API shows it (never a secret or its hash).
pub fn view(r: &CredentialRecord) -> Value {
    json!({
        "client_id": r.id,
        "name": r.name,
        "type": if r.secret_hash.is_some() || r.previous.is_some() { "confidential" } else { "public" },
        "grant_types": r.grant_types,
        "scopes": r.scopes,
        "redirect_uris": r.redirect_uris,
        "status": status_text(r.status),
        "source": "store",
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "previous_secret_expires_at": r.previous.as_ref().map(|p| p.expires_at),
    })
}

fn config_view(c: &Client) -> Value {
    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "type": if c.is_public() { "public" } else { "confidential" },
        "grant_types": grants,
        "scopes": c.scopes,
        "redirect_uris": c.redirect_uris,
        "status": if c.active { "active" } else { "suspended" },
        "source": "config",
    })
}

/// The config file's clients, rendered, by id.
pub fn config_entries(ctx: &Ctx<'_>) -> Vec<(String, Value)> {
    ctx.snap
        .oauth
        .iter()
        .flat_map(|s| s.config_clients().iter())
        .map(|c| (c.client_id.clone(), config_view(c)))
        .collect()
}

/// `GET /admin/v1/clients`.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    records::list(ctx, KIND, query, config_entries(ctx), view).await
}

/// `GET /admin/v1/clients/{id}`.
pub async fn get(ctx: &Ctx<'_>, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    if let Some(c) = ctx
        .snap
        .oauth
        .as_ref()
        .and_then(|s| s.config_clients().get(id))
    {
        return Ok(json_response(StatusCode::OK, &config_view(c)));
    }
    let r = records::live(ctx, KIND, id).await?;
    Ok(json_response(StatusCode::OK, &view(&r)))
}

/// `POST /admin/v1/clients`.
pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = Body::parse(body, CREATE_FIELDS)?;
    let Some(name) = body.string("name")? else {
        return Err(ApiError::invalid(
            "name",
            "name is required",
            "send a display name, e.g. {\"name\": \"Acme reporting\"}",
        ));
    };
    let name = input::name(name)?;
    let public = match body.string("type")? {
        None | Some("confidential") => false,
        Some("public") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "type",
                format!("unknown client type {other:?}"),
                "send \"confidential\" (with a secret) or \"public\" (no secret, PKCE)",
            ));
        }
    };
    let default_grants = if public {
        vec!["authorization_code".to_string()]
    } else {
        vec!["client_credentials".to_string()]
    };
    let grants = input::grant_types(body.strings("grant_types")?.unwrap_or(default_grants))?;
    if public && grants.contains(&GrantType::ClientCredentials) {
        return Err(ApiError::invalid(
            "grant_types",
            "a public client cannot use client_credentials: it has no secret",
            "drop client_credentials, or create a confidential client",
        ));
    }
    let redirect_uris = input::redirect_uris(body.strings("redirect_uris")?.unwrap_or_default())?;
    check_redirects(&grants, &redirect_uris)?;
    let scopes = input::scopes(body.strings("scopes")?.unwrap_or_default())?;
    let id = match body.string("client_id")? {
        Some(id) => input::id(id)?,
        None => records::new_id(KIND),
    };
    records::check_new_id(ctx, KIND, &id)?;
    let (secret, hash) = records::new_secret(KIND);
    let record = CredentialRecord {
        kind: KIND,
        id: id.clone(),
        name,
        status: CredentialStatus::Active,
        scopes,
        grant_types: grants.iter().map(|g| g.as_str().to_string()).collect(),
        redirect_uris,
        secret_hash: (!public).then_some(hash),
        previous: None,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let mut out = view(&record);
    records::commit(ctx, record, WriteMode::Create, "create", body.fields()).await?;
    if let (false, Some(obj)) = (public, out.as_object_mut()) {
        obj.insert("client_secret".into(), Value::from(secret));
        obj.insert("warning".into(), Value::from(SHOWN_ONCE));
    }
    Ok(records::created(format!("/admin/v1/clients/{id}"), &out))
}

fn check_redirects(grants: &[GrantType], uris: &[String]) -> Result<(), ApiError> {
    if grants.contains(&GrantType::AuthorizationCode) && uris.is_empty() {
        return Err(ApiError::invalid(
            "redirect_uris",
            "authorization_code needs at least one redirect URI",
            "send redirect_uris, e.g. [\"https://app.example.com/callback\"]",
        ));
    }
    Ok(())
}

/// `PATCH /admin/v1/clients/{id}`.
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
    let redirects = body
        .strings("redirect_uris")?
        .map(input::redirect_uris)
        .transpose()?;
    let mut r = records::live(ctx, KIND, id).await?;
    changes.apply(&mut r);
    if let Some(u) = redirects {
        r.redirect_uris = u;
        let grants: Vec<GrantType> = r
            .grant_types
            .iter()
            .filter_map(|g| GrantType::parse(g))
            .collect();
        check_redirects(&grants, &r.redirect_uris)?;
    }
    r.updated_at = ctx.now;
    let out = view(&r);
    records::commit(ctx, r, WriteMode::Update, "update", body.fields()).await?;
    Ok(json_response(StatusCode::OK, &out))
}
