//! Audit: `GET /admin/v1/audit`, the trail of every credential change (who, what, which id,
//! when; never a secret), oldest first, paged by `limit` and `cursor`; `kind` and `id` narrow
//! it to one credential's changes (the console's audit trail of an application).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::Ctx;
use super::applications::parse_kind;
use super::problem::{ApiError, Page, encode_cursor, json_response, page_body};
use crate::store::AuditRecord;

/// Records read from the store per round while filtering.
const BATCH: usize = 500;

/// `GET /admin/v1/audit`.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    let page = Page::parse(query, &["kind", "id"])?;
    let kind = page.filter("kind").map(parse_kind).transpose()?;
    let id = page.filter("id").filter(|i| !i.is_empty());
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
    let wanted = |r: &AuditRecord| kind.is_none_or(|k| k == r.kind) && id.is_none_or(|i| i == r.id);
    let mut records = matching(
        ctx,
        after,
        page.limit + 1,
        kind.is_some() || id.is_some(),
        wanted,
    )
    .await?;
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

/// Up to `want` records after `after` that pass `keep`, read in batches when filtering.
async fn matching(
    ctx: &Ctx<'_>,
    mut after: u64,
    want: usize,
    filtered: bool,
    keep: impl Fn(&AuditRecord) -> bool,
) -> Result<Vec<AuditRecord>, ApiError> {
    if !filtered {
        return Ok(ctx.store.audit(after, want).await?);
    }
    let mut out = Vec::new();
    loop {
        let batch = ctx.store.audit(after, BATCH).await?;
        let done = batch.len() < BATCH;
        after = batch.last().map_or(after, |r| r.seq);
        out.extend(batch.into_iter().filter(|r| keep(r)));
        if done || out.len() >= want {
            out.truncate(want);
            return Ok(out);
        }
    }
}
