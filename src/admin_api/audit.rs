//! Audit: `GET /admin/v1/audit`, the trail of every credential change (who, what, which id,
//! when; never a secret), oldest first, paged by `limit` and `cursor`.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::Ctx;
use super::problem::{ApiError, Page, encode_cursor, json_response, page_body};

/// `GET /admin/v1/audit`.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    let page = Page::parse(query)?;
    let after = match &page.after {
        None => 0,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "cursor",
                "the cursor is not one this API handed out",
                "send the next_cursor of the previous page unchanged",
            )
        })?,
    };
    let mut records = ctx.store.audit(after, page.limit + 1).await?;
    let more = records.len() > page.limit;
    records.truncate(page.limit);
    let next = records
        .last()
        .filter(|_| more)
        .map(|r| encode_cursor(&r.seq.to_string()));
    let items = records
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq,
                "at": r.at,
                "actor": r.actor,
                "action": r.action,
                "kind": r.kind.as_str(),
                "id": r.id,
                "changed": r.changed,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &page_body(items, next)))
}
