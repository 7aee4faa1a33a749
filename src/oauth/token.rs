//! Token endpoint: `POST /oauth2/token` for `client_credentials`, `refresh_token` (rotation with
//! reuse detection, RFC 9700 section 4.14.2) and `authorization_code` (PKCE S256 only).
//!
//! Client authentication: HTTP Basic or `client_id` + `client_secret` in the body, never both.
//! Bodies: `application/x-www-form-urlencoded` or `application/json`. Scope: absent = all the
//! client may have; more than that = `invalid_scope`.
//!
//! Refresh tokens are issued to clients whose `grant_types` list `refresh_token`, for every grant
//! including `client_credentials` (a client that lists only `client_credentials` gets none, as
//! RFC 6749 section 4.4.3 suggests). Each refresh rotates: the presented token is spent, a new one
//! with the same scopes and a fresh `refresh_token_ttl` is returned; presenting a spent token
//! revokes the whole grant family, its unexpired access tokens included.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client::{Client, GrantType};
use super::error::{OAuthError, json_response};
use super::params::{Params, client_credentials, split_scope};
use super::{CODE_PREFIX, REFRESH_PREFIX, TokenService, random_id, random_token};
use crate::store::{NewGrant, RedeemOutcome, RefreshRecord, RotateOutcome, Rotation, token_hash};

/// Parses the body and authenticates the client (shared by token, revoke, introspect, accept).
pub(crate) fn authenticated<'s>(
    svc: &'s TokenService,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, &'s Client), OAuthError> {
    let params = Params::from_body(headers, body)?;
    let Some(creds) = client_credentials(headers, &params)? else {
        return Err(OAuthError::InvalidClient {
            basic: false,
            description: "client authentication is required: HTTP Basic, or client_id and client_secret in the body".into(),
        });
    };
    let client = svc.clients().authenticate(&creds)?;
    Ok((params, client))
}

/// Scopes for a request: `requested` if all are allowed, else `invalid_scope`; absent = `allowed`.
pub(crate) fn grant_scopes(
    requested: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(s) => {
            let scopes = split_scope(s);
            if let Some(bad) = scopes.iter().find(|s| !allowed.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope '{bad}' is not allowed for this client"
                )));
            }
            Ok(scopes)
        }
    }
}

/// `POST /oauth2/token`.
pub(crate) async fn token(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let (params, client) = authenticated(svc, headers, body)?;
    let name = params.require("grant_type")?;
    let Some(grant) = GrantType::parse(name) else {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type '{name}' is not supported; use client_credentials, authorization_code or refresh_token"
        )));
    };
    if !client.allows(grant) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client may not use the {} grant",
            grant.as_str()
        )));
    }
    match grant {
        GrantType::ClientCredentials => client_credentials_grant(svc, client, &params).await,
        GrantType::RefreshToken => refresh_grant(svc, client, &params).await,
        GrantType::AuthorizationCode => code_grant(svc, client, &params).await,
    }
}

/// The success response (RFC 6749 section 5.1).
fn token_response(
    svc: &TokenService,
    access: &str,
    refresh: Option<&str>,
    scopes: &[String],
) -> Response<Bytes> {
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": svc.settings().access_ttl,
        "scope": scopes.join(" "),
    });
    if let (Some(r), Some(obj)) = (refresh, body.as_object_mut()) {
        obj.insert(
            "refresh_token".into(),
            serde_json::Value::String(r.to_string()),
        );
    }
    json_response(StatusCode::OK, &body)
}

/// Issues an access token and, when the client may refresh, a new grant family.
async fn issue_new_grant(
    svc: &TokenService,
    client: &Client,
    subject: &str,
    scopes: Vec<String>,
    family_id: String,
) -> Result<Response<Bytes>, OAuthError> {
    let (access, issued) = svc.mint_access(&client.client_id, subject, &scopes, random_id())?;
    let refresh = if client.allows(GrantType::RefreshToken) {
        let token = random_token(REFRESH_PREFIX);
        let record = RefreshRecord {
            family_id: family_id.clone(),
            client_id: client.client_id.clone(),
            subject: subject.to_string(),
            scopes: scopes.clone(),
            expires_at: svc.now() + svc.settings().refresh_ttl,
            spent: false,
        };
        svc.store()
            .create_grant(NewGrant {
                family_id,
                refresh_hash: token_hash(&token),
                record,
                access: issued,
            })
            .await?;
        Some(token)
    } else {
        None
    };
    Ok(token_response(svc, &access, refresh.as_deref(), &scopes))
}

async fn client_credentials_grant(
    svc: &TokenService,
    client: &Client,
    params: &Params,
) -> Result<Response<Bytes>, OAuthError> {
    let scopes = grant_scopes(params.get("scope"), &client.scopes)?;
    issue_new_grant(svc, client, &client.client_id, scopes, random_id()).await
}

async fn refresh_grant(
    svc: &TokenService,
    client: &Client,
    params: &Params,
) -> Result<Response<Bytes>, OAuthError> {
    let presented = params.require("refresh_token")?;
    let requested = params.get("scope").map(split_scope);
    let new_token = random_token(REFRESH_PREFIX);
    let jti = random_id();
    let now = svc.now();
    let access_exp = now + svc.settings().access_ttl;
    let outcome = svc
        .store()
        .rotate_refresh(Rotation {
            old_hash: token_hash(presented),
            client_id: client.client_id.clone(),
            requested_scopes: requested.clone(),
            new_hash: token_hash(&new_token),
            new_expires_at: now + svc.settings().refresh_ttl,
            access: crate::store::IssuedAccess {
                jti: jti.clone(),
                exp: access_exp,
            },
            now,
        })
        .await?;
    let old = match outcome {
        RotateOutcome::Rotated(old) => old,
        RotateOutcome::NotFound => return Err(OAuthError::grant("the refresh token is invalid")),
        RotateOutcome::WrongClient => {
            return Err(OAuthError::grant(
                "the refresh token was issued to another client",
            ));
        }
        RotateOutcome::ScopeExceeded => {
            return Err(OAuthError::InvalidScope(
                "the requested scope exceeds the scope of the original grant".into(),
            ));
        }
        RotateOutcome::Expired => return Err(OAuthError::grant("the refresh token has expired")),
        RotateOutcome::Revoked => {
            return Err(OAuthError::grant("the refresh token has been revoked"));
        }
        RotateOutcome::Reused(revoked) => {
            svc.notify_revoked(&revoked);
            tracing::warn!(client_id = %client.client_id, "refresh token reuse: grant family revoked");
            return Err(OAuthError::grant(
                "the refresh token was already used; the grant has been revoked",
            ));
        }
    };
    // The access token may be narrower than the grant, and never wider than the client now allows.
    let scopes: Vec<String> = requested
        .unwrap_or_else(|| old.scopes.clone())
        .into_iter()
        .filter(|s| client.scopes.contains(s))
        .collect();
    let (access, _) = svc.mint_access(&client.client_id, &old.subject, &scopes, jti)?;
    Ok(token_response(svc, &access, Some(&new_token), &scopes))
}

/// True when `verifier` is a valid RFC 7636 verifier whose S256 is `challenge`.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

async fn code_grant(
    svc: &TokenService,
    client: &Client,
    params: &Params,
) -> Result<Response<Bytes>, OAuthError> {
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.require("code_verifier")?;
    if !code.starts_with(CODE_PREFIX) {
        return Err(OAuthError::grant("the authorization code is invalid"));
    }
    let record = match svc.store().redeem_code(token_hash(code), svc.now()).await? {
        RedeemOutcome::Redeemed(r) => r,
        RedeemOutcome::NotFound => {
            return Err(OAuthError::grant(
                "the authorization code is invalid or has expired",
            ));
        }
        RedeemOutcome::Reused(revoked) => {
            svc.notify_revoked(&revoked);
            return Err(OAuthError::grant(
                "the authorization code was already used; tokens issued from it are revoked",
            ));
        }
    };
    if record.client_id != client.client_id {
        return Err(OAuthError::grant(
            "the authorization code was issued to another client",
        ));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::grant(
            "redirect_uri does not match the one of the authorization request",
        ));
    }
    if !pkce_s256_matches(verifier, &record.code_challenge) {
        return Err(OAuthError::grant(
            "the PKCE code_verifier does not match the code_challenge",
        ));
    }
    let scopes: Vec<String> = record
        .scopes
        .into_iter()
        .filter(|s| client.scopes.contains(s))
        .collect();
    issue_new_grant(svc, client, &record.subject, scopes, record.family_id).await
}
