//! Problems and pages: every error of the credential API as one type mapped to HTTP in one place,
//! and the `limit` / `cursor` pagination every list shares.
//!
//! Error bodies are `{"error": "<code>", "message": "<for the operator>"}`, plus `field` and
//! `fix` for a 422. A store failure is a 503 whose message never carries the store's text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::store::StoreError;

/// Largest page a list returns.
pub const MAX_LIMIT: usize = 200;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 50;

/// A refused credential-API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No operator token (`invalid` = a token that matches none).
    Unauthenticated {
        /// A token was sent but is not one of the configured ones.
        invalid: bool,
    },
    /// A read-only token asked for a change.
    ReadOnlyToken,
    /// No such route or id.
    NotFound(String),
    /// The route exists with other methods.
    MethodNotAllowed(String),
    /// The id is taken, or the credential comes from the config file.
    Conflict {
        /// `duplicate_id` or `config_defined`.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The body (or a query parameter) is invalid.
    Invalid {
        /// The offending field (`""` for the whole body).
        field: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// The body exceeds the cap.
    TooLarge,
    /// The body did not arrive in time.
    Timeout,
    /// The store failed.
    Unavailable,
}

impl ApiError {
    /// A 422 on `field`.
    pub fn invalid(field: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The HTTP response: the one place errors become status codes.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let (status, code, message) = match self {
            Self::Unauthenticated { invalid: false } => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send an operator token: Authorization: Bearer <token>".to_string(),
            ),
            Self::Unauthenticated { invalid: true } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the operator token is not one of [[admin.tokens]]".to_string(),
            ),
            Self::ReadOnlyToken => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this operator token has scope \"read\"; changes need a \"write\" token".into(),
            ),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", what.clone()),
            Self::MethodNotAllowed(allow) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this path answers {allow}"),
            ),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone()),
            Self::Invalid { message, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                message.clone(),
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("bodies are limited to {} bytes", super::MAX_BODY_BYTES),
            ),
            Self::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body did not arrive in time".into(),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the credential store did not answer; nothing was changed, try again".into(),
            ),
        };
        let mut body = json!({"error": code, "message": message});
        if let (Self::Invalid { field, fix, .. }, Some(obj)) = (self, body.as_object_mut()) {
            obj.insert("field".into(), Value::from(field.as_str()));
            obj.insert("fix".into(), Value::from(fix.as_str()));
        }
        let mut resp = json_response(status, &body);
        let h = resp.headers_mut();
        match self {
            Self::Unauthenticated { invalid } => {
                let v = if *invalid {
                    "Bearer realm=\"portcullis-admin\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"portcullis-admin\""
                };
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            Self::ReadOnlyToken => {
                let v = "Bearer realm=\"portcullis-admin\", error=\"insufficient_scope\"";
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            Self::MethodNotAllowed(allow) => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: store call failed");
        Self::Unavailable
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Longest value of a filter parameter (`q`, `id`, `kind`).
pub const MAX_FILTER: usize = 200;

/// `limit`, `cursor` and the filters of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items per page.
    pub limit: usize,
    /// Where the previous page ended (decoded), if any.
    pub after: Option<String>,
    /// The filter parameters the list accepts and the request sent (name, value).
    pub filters: Vec<(String, String)>,
}

impl Page {
    /// Parses `limit` (1..=200, default 50), `cursor` (from a previous `next_cursor`) and the
    /// filter parameters named in `filters`; any other parameter is a 422.
    pub fn parse(query: Option<&str>, filters: &[&str]) -> Result<Self, ApiError> {
        let mut page = Page {
            limit: DEFAULT_LIMIT,
            after: None,
            filters: Vec::new(),
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => page.limit = limit(&v)?,
                "cursor" => page.after = Some(cursor(&v)?),
                f if filters.contains(&f) => page.filters.push((f.to_string(), filter(f, &v)?)),
                other => {
                    let mut known = vec!["limit", "cursor"];
                    known.extend_from_slice(filters);
                    return Err(ApiError::invalid(
                        other,
                        format!("unknown query parameter {other:?}"),
                        format!("this list takes {}", known.join(", ")),
                    ));
                }
            }
        }
        Ok(page)
    }

    /// The value of filter `name`, if sent (the last one wins).
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One page of `items` (sorted by `key`), and the cursor of the next one.
    pub fn cut<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let mut rest: Vec<T> = match &self.after {
            Some(after) => items.into_iter().filter(|i| key(i) > *after).collect(),
            None => items,
        };
        let more = rest.len() > self.limit;
        rest.truncate(self.limit);
        let next = rest.last().filter(|_| more).map(|i| encode_cursor(&key(i)));
        (rest, next)
    }
}

fn limit(v: &str) -> Result<usize, ApiError> {
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "limit",
            format!("limit {v:?} is not a whole number from 1 to {MAX_LIMIT}"),
            format!("send limit=1 .. limit={MAX_LIMIT}, or leave it out for {DEFAULT_LIMIT}"),
        )),
    }
}

fn filter(name: &str, v: &str) -> Result<String, ApiError> {
    if v.chars().count() > MAX_FILTER {
        return Err(ApiError::invalid(
            name,
            format!("{name} is longer than {MAX_FILTER} characters"),
            format!("send at most {MAX_FILTER} characters"),
        ));
    }
    Ok(v.trim().to_string())
}

/// True when `q` is empty or a case-insensitive substring of `id` or `name`.
pub fn matches(q: Option<&str>, id: &str, name: &str) -> bool {
    let Some(q) = q.map(str::to_lowercase).filter(|q| !q.is_empty()) else {
        return true;
    };
    id.to_lowercase().contains(&q) || name.to_lowercase().contains(&q)
}

fn cursor(v: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                "the cursor is not one this API handed out",
                "send the next_cursor of the previous page unchanged, or leave it out",
            )
        })
}

/// An opaque cursor for `key`.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// `{"items": [...], "next_cursor": ...}`.
pub fn page_body(items: Vec<Value>, next: Option<String>) -> Value {
    json!({"items": items, "next_cursor": next})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_after_the_cursor() {
        let p = Page::parse(Some("limit=2"), &[]).unwrap();
        let (items, next) = p.cut(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(items, ["a", "b"]);
        let p = Page::parse(Some(&format!("limit=2&cursor={}", next.unwrap())), &[]).unwrap();
        let (items, next) = p.cut(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!((items, next), (vec!["c"], None));
        assert!(Page::parse(Some("limit=0"), &[]).is_err());
        assert!(Page::parse(Some("cursor=%%%"), &[]).is_err());
    }

    #[test]
    fn filters_are_named_by_each_list_and_others_refused() {
        let p = Page::parse(Some("q=Acme+Rep&limit=5"), &["q"]).unwrap();
        assert_eq!((p.filter("q"), p.limit), (Some("Acme Rep"), 5));
        assert!(Page::parse(Some("q=x"), &[]).is_err());
        assert!(Page::parse(Some(&format!("q={}", "x".repeat(201))), &["q"]).is_err());
        assert!(matches(Some("acme"), "pc_1", "Acme reporting"));
        assert!(matches(Some("PC_"), "pc_1", "x"));
        assert!(matches(None, "a", "b") && matches(Some(""), "a", "b"));
        assert!(!matches(Some("zzz"), "pc_1", "Acme"));
    }
}
