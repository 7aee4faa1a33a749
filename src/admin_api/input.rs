//! Input: request bodies of the credential API read as JSON objects and checked field by field,
//! so every mistake is a 422 naming the field and the fix (never a 500, never a partial write).
//!
//! Redirect URIs follow RFC 9700 section 2.1: absolute, compared exactly (no wildcards), no
//! fragment, `https` except on a loopback host (`127.0.0.1`, `[::1]`, `localhost`).

use serde_json::{Map, Value};

use super::problem::ApiError;
use crate::oauth::client::GrantType;
use crate::store::CredentialStatus;

/// Longest display name.
const MAX_NAME: usize = 200;
/// Longest client id.
const MAX_ID: usize = 64;
/// Most entries in a list field.
const MAX_ITEMS: usize = 100;
/// Longest overlap a rotation may keep the old secret (30 days).
pub const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

/// A JSON object body.
#[derive(Debug)]
pub struct Body(Map<String, Value>);

impl Body {
    /// Parses `bytes` as a JSON object whose keys are all in `known` (empty body = `{}`).
    pub fn parse(bytes: &[u8], known: &[&str]) -> Result<Self, ApiError> {
        let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(bytes).map_err(|e| {
                ApiError::invalid(
                    "",
                    format!("the body is not valid JSON: {e}"),
                    "send a JSON object, e.g. {\"name\": \"reports\"}",
                )
            })?
        };
        let Value::Object(map) = value else {
            return Err(ApiError::invalid(
                "",
                "the body must be a JSON object",
                "send a JSON object, e.g. {\"name\": \"reports\"}",
            ));
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::invalid(
                k,
                format!("unknown field {k:?}"),
                format!("remove it; this request takes {}", known.join(", ")),
            ));
        }
        Ok(Self(map))
    }

    /// True when no field was sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the fields sent.
    pub fn fields(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// A string field.
    pub fn string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(field, "a string")),
        }
    }

    /// A list-of-strings field.
    pub fn strings(&self, field: &str) -> Result<Option<Vec<String>>, ApiError> {
        let Some(v) = self.0.get(field) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(wrong_type(field, "an array of strings"));
        };
        if items.len() > MAX_ITEMS {
            return Err(ApiError::invalid(
                field,
                format!("{field} has more than {MAX_ITEMS} entries"),
                "send fewer entries",
            ));
        }
        items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| wrong_type(field, "an array of strings"))
    }

    /// A non-negative whole-number field.
    pub fn u64(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong_type(field, "a whole number of seconds (0 or more)")),
        }
    }
}

fn wrong_type(field: &str, want: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!("{field} must be {want}"),
        format!("send {field} as {want}"),
    )
}

/// A display name: 1 to 200 characters, no control characters.
pub fn name(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > MAX_NAME || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 200 characters without control characters",
            "send a short display name, e.g. \"Acme reporting\"",
        ));
    }
    Ok(v.to_string())
}

/// A client id chosen by the operator: 3 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn id(v: &str) -> Result<String, ApiError> {
    let ok = (3..=MAX_ID).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(ApiError::invalid(
            "client_id",
            "client_id must be 3 to 64 letters, digits, '.', '_' or '-'",
            "choose an id like \"acme-reports\", or leave client_id out to get a generated one",
        ));
    }
    Ok(v.to_string())
}

/// Scope tokens: non-empty, no spaces, quotes or backslashes, no duplicates.
pub fn scopes(v: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
        {
            return Err(ApiError::invalid(
                "scopes",
                format!("invalid scope {s:?}"),
                "scopes are tokens without spaces or quotes, e.g. \"meetings:read\"",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// `active` or `suspended`.
pub fn status(v: &str) -> Result<CredentialStatus, ApiError> {
    match v {
        "active" => Ok(CredentialStatus::Active),
        "suspended" => Ok(CredentialStatus::Suspended),
        _ => Err(ApiError::invalid(
            "status",
            format!("unknown status {v:?}"),
            "send \"active\" or \"suspended\" (DELETE removes a credential)",
        )),
    }
}

/// Grant type names, each known, no duplicates.
pub fn grant_types(v: Vec<String>) -> Result<Vec<GrantType>, ApiError> {
    let mut out = Vec::new();
    for g in v {
        let Some(t) = GrantType::parse(&g) else {
            return Err(ApiError::invalid(
                "grant_types",
                format!("unknown grant type {g:?}"),
                "use client_credentials, authorization_code and/or refresh_token",
            ));
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid(
            "grant_types",
            "grant_types is empty",
            "list at least one grant, e.g. [\"client_credentials\"]",
        ));
    }
    Ok(out)
}

/// Redirect URIs per RFC 9700 section 2.1 (see the module docs).
pub fn redirect_uris(v: Vec<String>) -> Result<Vec<String>, ApiError> {
    for u in &v {
        if let Err(why) = redirect_uri(u) {
            return Err(ApiError::invalid(
                "redirect_uris",
                format!("redirect URI {u:?} {why}"),
                "register the exact absolute URL, https (http only on 127.0.0.1, [::1] or localhost), without a fragment or wildcard",
            ));
        }
    }
    Ok(v)
}

fn redirect_uri(u: &str) -> Result<(), &'static str> {
    if u.contains('#') {
        return Err("has a fragment");
    }
    if u.contains('*') {
        return Err("has a wildcard; redirect URIs are compared exactly");
    }
    let uri: http::Uri = u.parse().map_err(|_| "is not a valid URI")?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err("is not absolute");
    };
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost");
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("uses http on a host other than loopback"),
        _ => Err("is not an https URL"),
    }
}

/// The rotation overlap: 0 to 30 days, default 0.
pub fn overlap(v: Option<u64>) -> Result<u64, ApiError> {
    match v {
        Some(s) if s > MAX_OVERLAP_SECS => Err(ApiError::invalid(
            "overlap_seconds",
            format!("overlap_seconds {s} is longer than 30 days"),
            format!("send 0 to {MAX_OVERLAP_SECS}"),
        )),
        v => Ok(v.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_9700() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example/cb#x",
            "http://app.example/cb",
            "/cb",
            "https://*.example/cb",
            "ftp://app.example/",
            "app.example/cb",
        ] {
            assert!(redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
