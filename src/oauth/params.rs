//! Request parameters: the token-service body (form-urlencoded or JSON) or query as one map, and
//! the client credentials a request presents (HTTP Basic, the body, or a client id alone).
//!
//! Input rules (RFC 6749): a parameter sent twice, in a form or as a duplicate JSON key, is
//! `invalid_request` (section 3.2); JSON values must be strings; at most `MAX_PARAMS` parameters;
//! client credentials never travel in the request URI (section 2.3.1).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};
use serde::de::{Deserializer, MapAccess, Visitor};

use super::error::OAuthError;

/// Most parameters one request may carry (the largest grant needs about ten).
pub const MAX_PARAMS: usize = 32;

/// Parameters of one request; each name at most once (RFC 6749 section 3.2).
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

fn too_many() -> OAuthError {
    OAuthError::request(format!(
        "too many parameters (at most {MAX_PARAMS} are accepted)"
    ))
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` pairs (a body or a query string).
    pub fn from_form(bytes: &[u8]) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.len() == MAX_PARAMS {
                return Err(too_many());
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::request(format!(
                    "parameter '{}' is repeated",
                    shown(&k)
                )));
            }
        }
        Ok(Self(map))
    }

    /// Parses a JSON object whose values are all strings; a duplicate key, a non-string value or
    /// more than `MAX_PARAMS` members is `invalid_request`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, OAuthError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let map = de
            .deserialize_map(ObjectVisitor)
            .and_then(|m| de.end().map(|()| m))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => OAuthError::request(data_error(&e)),
                _ => OAuthError::request("the body is not a valid JSON object"),
            })?;
        Ok(Self(map))
    }

    /// Parses a POST body by its `Content-Type` (form or JSON; anything else is refused).
    pub fn from_body(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => Self::from_form(body),
            "application/json" => Self::from_json(body),
            "" if body.is_empty() => Ok(Self::default()),
            _ => Err(OAuthError::request(
                "send the body as application/x-www-form-urlencoded or application/json",
            )),
        }
    }

    /// A parameter, `None` when absent or empty (RFC 6749: empty = omitted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::request(format!("missing parameter '{name}'")))
    }

    /// Sets a parameter the request left out (a dialect's default); never overrides one sent.
    pub fn default_to(&mut self, name: &str, value: &str) {
        if self.get(name).is_none() {
            self.0.insert(name.to_string(), value.to_string());
        }
    }
}

/// Marks the visitor's own messages, so they are told apart from serde_json's (which quote input).
const OWN: &str = "portcullis: ";

fn data_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.strip_prefix(OWN) {
        // serde_json appends " at line L column C".
        Some(own) => own.split(" at line ").next().unwrap_or(own).to_string(),
        None => "the JSON body must be an object whose values are strings".to_string(),
    }
}

/// A parameter name as it may appear in a description: short, and only plain characters.
pub fn shown(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        .take(40)
        .collect()
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of string parameters")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut map = BTreeMap::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.len() == MAX_PARAMS {
                return Err(A::Error::custom(format!(
                    "{OWN}too many parameters (at most {MAX_PARAMS} are accepted)"
                )));
            }
            let value = access.next_value::<serde_json::Value>()?;
            let serde_json::Value::String(text) = value else {
                return Err(A::Error::custom(format!(
                    "{OWN}parameter '{}' must be a string",
                    shown(&key)
                )));
            };
            if map.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "{OWN}parameter '{}' is repeated",
                    shown(&key)
                )));
            }
            map.insert(key, text);
        }
        Ok(map)
    }
}

/// Refuses client credentials (`names`) in the request URI (RFC 6749 section 2.3.1: they travel
/// in the body or in HTTP Basic only).
pub fn refuse_in_query(query: Option<&str>, names: &[&str]) -> Result<(), OAuthError> {
    let Some(q) = query else { return Ok(()) };
    if form_urlencoded::parse(q.as_bytes()).any(|(k, _)| names.contains(&k.as_ref())) {
        return Err(OAuthError::request(
            "client credentials must not be sent in the URL; use HTTP Basic or the request body",
        ));
    }
    Ok(())
}

/// Client credentials as presented, before checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret; empty when the client sent none (a public client, RFC 6749 section 2.1).
    pub secret: String,
    /// They came in an `Authorization: Basic` header.
    pub basic: bool,
}

impl ClientCredentials {
    /// True when a secret was sent.
    pub fn has_secret(&self) -> bool {
        !self.secret.is_empty()
    }
}

/// Extracts client credentials from HTTP Basic (RFC 6749 section 2.3.1: id and secret are
/// form-urlencoded before base64) or from `client_id` (+ `client_secret`) in the body; both
/// styles at once is `invalid_request`. `Ok(None)` when the request names no client at all; a
/// `client_id` without a secret comes back with an empty secret (how public clients identify).
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let basic = match (auth.next(), auth.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(OAuthError::request("Authorization header sent twice")),
        (Some(v), None) => {
            let text = v.to_str().unwrap_or("");
            let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::InvalidClient {
                    basic: true,
                    description: "client authentication must use the Basic scheme".into(),
                });
            }
            Some(parse_basic(rest.trim())?)
        }
    };
    let body_secret = params.get("client_secret");
    match basic {
        Some(creds) => {
            if body_secret.is_some() {
                return Err(OAuthError::request(
                    "use one client authentication method: HTTP Basic or client_secret in the body, not both",
                ));
            }
            if let Some(id) = params.get("client_id")
                && id != creds.client_id
            {
                return Err(OAuthError::request(
                    "client_id in the body differs from the HTTP Basic client id",
                ));
            }
            Ok(Some(creds))
        }
        None => match (params.get("client_id"), body_secret) {
            (Some(id), secret) => Ok(Some(ClientCredentials {
                client_id: id.to_string(),
                secret: secret.unwrap_or("").to_string(),
                basic: false,
            })),
            (None, Some(_)) => Err(OAuthError::request(
                "client_secret was sent without client_id",
            )),
            (None, None) => Ok(None),
        },
    }
}

fn parse_basic(b64: &str) -> Result<ClientCredentials, OAuthError> {
    let bad = || OAuthError::InvalidClient {
        basic: true,
        description: "malformed HTTP Basic credentials".into(),
    };
    let raw = STANDARD.decode(b64).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(ClientCredentials {
        client_id: decode(id),
        secret: decode(secret),
        basic: true,
    })
}

/// Splits a space-separated `scope` parameter, dropping duplicates, keeping order.
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Params, OAuthError>) -> String {
        match r {
            Err(OAuthError::InvalidRequest(d)) => d,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn json_objects_of_unique_strings_only() {
        let p = Params::from_json(br#"{"a":"1","b":"2"}"#).unwrap();
        assert_eq!((p.get("a"), p.get("b")), (Some("1"), Some("2")));
        assert!(err(Params::from_json(br#"{"a":"1","a":"2"}"#)).contains("'a' is repeated"));
        assert!(err(Params::from_json(br#"{"a":1}"#)).contains("must be a string"));
        assert!(err(Params::from_json(br#"{"a":null}"#)).contains("must be a string"));
        assert!(!err(Params::from_json(br#""secret-text""#)).contains("secret-text"));
        assert!(Params::from_json(br#"{"a":"1"} x"#).is_err());
        assert!(err(Params::from_form(b"a=1&a=2")).contains("repeated"));
    }

    #[test]
    fn parameter_count_is_capped() {
        let form: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=x&")).collect();
        assert!(err(Params::from_form(form.as_bytes())).contains("too many"));
        let body: Vec<String> = (0..=MAX_PARAMS)
            .map(|i| format!("\"p{i}\":\"x\""))
            .collect();
        let json = format!("{{{}}}", body.join(","));
        assert!(err(Params::from_json(json.as_bytes())).contains("too many"));
    }
}
