//! Introspection endpoint: `POST /oauth2/introspect` (RFC 7662), client-authenticated.
//!
//! A client may introspect the tokens issued to it; anything else (another client's token, an
//! invalid, expired, spent or revoked token, a suspended client's token) is `{"active": false}`.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use super::error::{OAuthError, json_response};
use super::token::authenticated;
use super::{REFRESH_PREFIX, TokenService};
use crate::store::token_hash;

/// `POST /oauth2/introspect`.
pub(crate) async fn introspect(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let (params, client) = authenticated(svc, headers, body)?;
    if client.is_public() {
        // RFC 7662 section 2.1: the endpoint requires client authentication.
        return Err(OAuthError::InvalidClient {
            basic: false,
            description: "a public client cannot introspect tokens".into(),
        });
    }
    let token = params.require("token")?;
    let inactive = || json_response(StatusCode::OK, &serde_json::json!({"active": false}));
    let now = svc.now();
    if token.starts_with(REFRESH_PREFIX) {
        let Some(status) = svc.store().refresh_status(token_hash(token)).await? else {
            return Ok(inactive());
        };
        let r = status.record;
        let live = !status.family_revoked && !r.spent && r.expires_at > now;
        if !live || r.client_id != client.client_id || !svc.client_is_active(&r.client_id) {
            return Ok(inactive());
        }
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": r.scopes.join(" "),
                "client_id": r.client_id,
                "sub": r.subject,
                "exp": r.expires_at,
                "iss": svc.issuer(),
            }),
        ));
    }
    let Some(c) = svc.verify_access(token) else {
        return Ok(inactive());
    };
    if c.client_id != client.client_id
        || !svc.client_is_active(&c.client_id)
        || svc.store().is_jti_revoked(c.jti.clone()).await?
    {
        return Ok(inactive());
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "exp": c.exp,
            "iat": c.iat,
            "iss": c.iss,
            "aud": c.aud,
            "jti": c.jti,
        }),
    ))
}
