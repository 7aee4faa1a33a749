//! Revocation endpoint: `POST /oauth2/revoke` (RFC 7009), client-authenticated.
//!
//! A refresh token revokes its whole grant family (every refresh token and every unexpired access
//! token issued from it); an access token's `jti` is refused until its `exp`. Tokens that are
//! unknown, invalid, expired or another client's get the same `200` (RFC 7009 section 2.2), and
//! nothing changes for the other client's tokens.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use super::error::{OAuthError, json_response};
use super::token::authenticated;
use super::{REFRESH_PREFIX, TokenService};
use crate::store::{IssuedAccess, token_hash};

/// `POST /oauth2/revoke`.
pub(crate) async fn revoke(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let (params, client) = authenticated(svc, headers, body)?;
    let token = params.require("token")?;
    if token.starts_with(REFRESH_PREFIX) {
        if let Some(status) = svc.store().refresh_status(token_hash(token)).await?
            && status.record.client_id == client.client_id
        {
            let revoked = svc
                .store()
                .revoke_family(status.record.family_id, svc.now())
                .await?;
            svc.notify_revoked(&revoked);
        }
    } else if let Some(claims) = svc.verify_access(token)
        && claims.client_id == client.client_id
    {
        let revoked = IssuedAccess {
            jti: claims.jti,
            exp: claims.exp,
        };
        svc.store()
            .revoke_jti(revoked.jti.clone(), revoked.exp)
            .await?;
        svc.notify_revoked(std::slice::from_ref(&revoked));
    }
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}
