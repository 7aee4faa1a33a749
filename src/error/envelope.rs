//! Envelope: renders a `Problem` as the JSON body of the route class's error style.
//!
//! Partner style: `{"error": "<description>", "code": "<code>", "request_id": "<id>"}`.
//! OAuth style (RFC 6749 section 5.2): `{"error": "<code>", "error_description": "<description>"}`.
//!
//! A class may answer some codes in the other style (`envelopes = { rate_limit_exceeded =
//! "oauth" }`) and override the human-readable text of a code (`messages = { code = "..." }`);
//! `Envelope` holds those choices. A partner class keeps `request_id` in every body, whichever
//! style answers.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::Problem;
use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;

/// Every code the gateway itself answers with (DESIGN section 7), for validating overrides.
pub const CODES: [&str; 27] = [
    "invalid_request",
    "unauthorized",
    "missing_authorization",
    "invalid_authorization_format",
    "missing_api_key",
    "missing_client_id",
    "invalid_credentials",
    "forbidden",
    "partner_app_inactive",
    "insufficient_scope",
    "request_timeout",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "uri_too_long",
    "headers_too_large",
    "loop_detected",
    "rate_limit_exceeded",
    "bad_gateway",
    "service_unavailable",
    "upstream_timeout",
    "invalid_signature",
    "invalid_timestamp",
    "timestamp_out_of_window",
    "replayed_webhook",
    "destination_not_allowed",
    "webhook_delivery_failed",
];

/// A class's envelope: its style, the codes answered in another style, overridden texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The class's style.
    pub style: ErrorStyle,
    per_code: Vec<(String, ErrorStyle)>,
    messages: Vec<(String, String)>,
}

impl Envelope {
    /// An envelope answering every code in `style`, with the built-in texts.
    pub fn new(style: ErrorStyle) -> Self {
        Self {
            style,
            per_code: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Compiles a class's `envelopes` and `messages` (`key` = the class's key path).
    pub fn compile(
        style: ErrorStyle,
        envelopes: &BTreeMap<String, SString>,
        messages: &BTreeMap<String, SString>,
        key: &str,
        d: &mut Diagnostics<'_>,
    ) -> Self {
        let mut out = Self::new(style);
        let known = |code: &str, v: &SString, table: &str, d: &mut Diagnostics<'_>| {
            let ok = CODES.contains(&code);
            if !ok {
                d.push(
                    Some(v.span()),
                    format!("{key}.{table}.{code}"),
                    format!("unknown error code '{code}'"),
                    "use a code of the catalogue in README.md, e.g. rate_limit_exceeded",
                );
            }
            ok
        };
        for (code, v) in envelopes {
            if !known(code, v, "envelopes", d) {
                continue;
            }
            match parse_style(v.get_ref()) {
                Some(st) => out.per_code.push((code.clone(), st)),
                None => d.push(
                    Some(v.span()),
                    format!("{key}.envelopes.{code}"),
                    format!("unknown error style \"{}\"", v.get_ref()),
                    "use \"partner\" or \"oauth\"",
                ),
            }
        }
        for (code, v) in messages {
            if !known(code, v, "messages", d) {
                continue;
            }
            if v.get_ref().trim().is_empty() || v.get_ref().chars().any(char::is_control) {
                d.push(
                    Some(v.span()),
                    format!("{key}.messages.{code}"),
                    "a message must be non-empty text on one line",
                    "write the sentence your API documents, e.g. \"Missing API key\"",
                );
                continue;
            }
            out.messages.push((code.clone(), v.get_ref().clone()));
        }
        out
    }

    /// The JSON body for `problem`, in the style chosen for its code, with its text.
    pub fn render(&self, problem: &Problem, request_id: &str) -> Bytes {
        let style = self
            .per_code
            .iter()
            .find(|(c, _)| c == problem.code)
            .map_or(self.style, |(_, s)| *s);
        let text = self
            .messages
            .iter()
            .find(|(c, _)| c == problem.code)
            .map_or(problem.description.as_str(), |(_, m)| m.as_str());
        let body = match (style, self.style) {
            (ErrorStyle::Partner, _) => serde_json::to_vec(&PartnerBody {
                error: text,
                code: problem.code,
                request_id,
            }),
            (ErrorStyle::OAuth, ErrorStyle::Partner) => serde_json::to_vec(&OAuthPartnerBody {
                error: problem.code,
                error_description: &oauth_description(text),
                request_id,
            }),
            (ErrorStyle::OAuth, ErrorStyle::OAuth) => serde_json::to_vec(&OAuthBody {
                error: problem.code,
                error_description: &oauth_description(text),
            }),
        };
        // Serializing string fields cannot fail; an empty object is still valid JSON.
        Bytes::from(body.unwrap_or_else(|_| b"{}".to_vec()))
    }
}

/// Parses `"partner"` or `"oauth"`.
pub fn parse_style(s: &str) -> Option<ErrorStyle> {
    match s {
        "partner" => Some(ErrorStyle::Partner),
        "oauth" => Some(ErrorStyle::OAuth),
        _ => None,
    }
}

/// The OAuth shape answering for a partner class: the request id stays in the body.
#[derive(Serialize)]
struct OAuthPartnerBody<'a> {
    error: &'a str,
    error_description: &'a str,
    request_id: &'a str,
}

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

/// `text` restricted to the characters RFC 6749 section 5.2 allows in `error_description`
/// (%x20-21 / %x23-5B / %x5D-7E): anything else, such as quotes, backslashes, control or
/// non-ASCII characters a request slipped into a message, becomes `?`.
pub fn oauth_description(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| matches!(c, ' '..='!' | '#'..='[' | ']'..='~');
    if text.chars().all(allowed) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if allowed(c) { c } else { '?' })
            .collect(),
    )
}

/// The JSON body for `problem` in `style`.
pub fn render(problem: &Problem, style: ErrorStyle, request_id: &str) -> Bytes {
    Envelope::new(style).render(problem, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            description: "Rate limit exceeded. Retry after 3 seconds.".into(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn per_code_style_and_text_keep_the_request_id_in_partner_classes() {
        let mut env = Envelope::new(ErrorStyle::Partner);
        env.per_code
            .push(("rate_limit_exceeded".into(), ErrorStyle::OAuth));
        env.messages
            .push(("rate_limit_exceeded".into(), "Too many requests.".into()));
        let body: serde_json::Value =
            serde_json::from_slice(&env.render(&problem(), "req_1")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "rate_limit_exceeded", "error_description": "Too many requests.", "request_id": "req_1"})
        );
        let plain: serde_json::Value =
            serde_json::from_slice(&render(&problem(), ErrorStyle::OAuth, "req_1")).unwrap();
        assert!(plain.get("request_id").is_none());
    }

    #[test]
    fn oauth_descriptions_stay_in_the_rfc6749_set() {
        assert_eq!(oauth_description("a \"b\" \\ é\n"), "a ?b? ? ??");
        assert!(matches!(
            oauth_description("plain text: ok"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
