//! Auth: operator tokens of the credential API (`Authorization: Bearer <token>`), compared by
//! SHA-256 in constant time against every configured hash.
//!
//! No token: 401 with `WWW-Authenticate: Bearer realm="portcullis-admin"`; a token that matches
//! none: 401 with `error="invalid_token"`; a `read` token asking for a change: 403.

use http::{HeaderMap, Method, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::ApiError;
use super::settings::{AdminApiSettings, Scope};

/// The operator a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The token's name (audit records and logs).
    pub name: String,
    /// The token's scope.
    pub scope: Scope,
}

/// Finds the operator token of a request and checks it may use `method`.
pub fn authorize(
    settings: &AdminApiSettings,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Operator, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::Unauthenticated { invalid: false });
    };
    let text = value.to_str().unwrap_or("");
    let token = match text.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(ApiError::Unauthenticated { invalid: false }),
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Compare with every token, so timing does not tell how far down the list a match was.
    let mut found = None;
    for t in &settings.tokens {
        if bool::from(t.digest.ct_eq(&digest)) {
            found = Some(t);
        }
    }
    let Some(t) = found else {
        return Err(ApiError::Unauthenticated { invalid: true });
    };
    let reads = method == Method::GET || method == Method::HEAD;
    if !reads && t.scope == Scope::Read {
        return Err(ApiError::ReadOnlyToken);
    }
    Ok(Operator {
        name: t.name.clone(),
        scope: t.scope,
    })
}
