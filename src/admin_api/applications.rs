//! Applications: `GET /admin/v1/applications`, OAuth clients and API-key apps in one list (the
//! console's), each with its `kind`, searched by `q` (id or name) and filtered by `kind`, paged
//! by `limit` and `cursor` in id order; and `GET /admin/v1/operator`, who the token is.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::problem::{ApiError, Page, json_response, page_body};
use super::settings::Scope;
use super::{Ctx, apps, clients, records};
use crate::store::CredentialKind;

/// Parses a `kind` filter: `client` or `app`.
pub fn parse_kind(v: &str) -> Result<CredentialKind, ApiError> {
    match v {
        "client" => Ok(CredentialKind::Client),
        "app" => Ok(CredentialKind::App),
        other => Err(ApiError::invalid(
            "kind",
            format!("unknown kind {other:?}"),
            "send kind=client (OAuth clients) or kind=app (API-key apps), or leave it out",
        )),
    }
}

/// `GET /admin/v1/applications`.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    let page = Page::parse(query, &["q", "kind"])?;
    let only = page.filter("kind").map(parse_kind).transpose()?;
    let q = page.filter("q");
    let mut all: Vec<(String, Value)> = Vec::new();
    for kind in [CredentialKind::Client, CredentialKind::App] {
        if only.is_some_and(|k| k != kind) {
            continue;
        }
        let (config, view): (_, fn(&_) -> Value) = match kind {
            CredentialKind::Client => (clients::config_entries(ctx), clients::view),
            CredentialKind::App => (apps::config_entries(ctx), apps::view),
        };
        for (id, mut v) in records::entries(ctx, kind, config, view).await? {
            if !records::entry_matches(q, &v) {
                continue;
            }
            if let Some(obj) = v.as_object_mut() {
                obj.insert("kind".into(), Value::from(kind.as_str()));
            }
            // Ids are unique per kind; the kind after a separator keeps the order total.
            all.push((format!("{id}\u{1}{}", kind.as_str()), v));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = page.cut(all, |(key, _)| key.clone());
    let body = page_body(items.into_iter().map(|(_, v)| v).collect(), next);
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /admin/v1/operator`: the token's name and scope (the console greys out changes for a
/// read token).
pub fn operator(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let scope = match ctx.operator.scope {
        Scope::Read => "read",
        Scope::Write => "write",
    };
    json_response(
        StatusCode::OK,
        &json!({"name": ctx.operator.name, "scope": scope}),
    )
}
