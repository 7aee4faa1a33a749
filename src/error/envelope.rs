//! Envelope: renders a `Problem` as the JSON body of the route class's error style.
//!
//! Partner style: `{"error": "<description>", "code": "<code>", "request_id": "<id>"}`.
//! OAuth style (RFC 6749 section 5.2): `{"error": "<code>", "error_description": "<description>"}`.

use bytes::Bytes;
use serde::Serialize;

use super::Problem;

/// Which envelope a route class answers errors in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error","code","request_id"}`.
    Partner,
    /// `{"error","error_description"}`.
    OAuth,
}

#[derive(Serialize)]
struct PartnerBody<'a> {
    error: &'a str,
    code: &'a str,
    request_id: &'a str,
}

#[derive(Serialize)]
struct OAuthBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// The JSON body for `problem` in `style`.
pub fn render(problem: &Problem, style: ErrorStyle, request_id: &str) -> Bytes {
    let body = match style {
        ErrorStyle::Partner => serde_json::to_vec(&PartnerBody {
            error: &problem.description,
            code: problem.code,
            request_id,
        }),
        ErrorStyle::OAuth => serde_json::to_vec(&OAuthBody {
            error: problem.code,
            error_description: &problem.description,
        }),
    };
    // Serializing two string fields cannot fail; an empty object is still valid JSON.
    Bytes::from(body.unwrap_or_else(|_| b"{}".to_vec()))
}
