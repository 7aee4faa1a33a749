//! Request parameters: the token-service body (form-urlencoded or JSON) or query as one map, and
//! client credentials from HTTP Basic or the body.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};

use super::error::OAuthError;

/// Parameters of one request; each name at most once (RFC 6749 section 3.2).
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` pairs (a body or a query string).
    pub fn from_form(bytes: &[u8]) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::request(format!("parameter '{k}' is repeated")));
            }
        }
        Ok(Self(map))
    }

    /// Parses a JSON object whose values are strings (numbers and booleans are taken as text).
    pub fn from_json(bytes: &[u8]) -> Result<Self, OAuthError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|_| OAuthError::request("the body is not valid JSON"))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(OAuthError::request("the JSON body must be an object"));
        };
        let mut map = BTreeMap::new();
        for (k, v) in obj {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(OAuthError::request(format!(
                        "parameter '{k}' must be a string"
                    )));
                }
            };
            map.insert(k, text);
        }
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
}

/// Client credentials as presented, before checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret.
    pub secret: String,
    /// They came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// Extracts client credentials from HTTP Basic (RFC 6749 section 2.3.1: id and secret are
/// form-urlencoded before base64) or from `client_id` + `client_secret` in the body; both styles
/// at once is `invalid_request`. `Ok(None)` when neither is present.
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
            (Some(id), Some(secret)) => Ok(Some(ClientCredentials {
                client_id: id.to_string(),
                secret: secret.to_string(),
                basic: false,
            })),
            _ => Ok(None),
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
