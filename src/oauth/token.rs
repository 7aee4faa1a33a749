//! Token endpoint: `POST /oauth2/token` (or its configured paths) for `client_credentials`, `refresh_token` (rotation with
//! reuse detection, RFC 9700 section 4.14.2) and `authorization_code` (PKCE S256 only).
//!
//! Client authentication: HTTP Basic or `client_id` + `client_secret` in the body, never both;
//! a public client sends `client_id` alone. Bodies: `application/x-www-form-urlencoded` or
//! `application/json`. Scope: absent = all the client may have; more than that = `invalid_scope`.
//! A path's dialect may let `grant_type` be left out (`default_grant`), and may let a client that
//! opted in refresh with the refresh token alone; it may also add `expires_at` to responses.
//!
//! PKCE at redemption: a challenge made at authorize time is always enforced; a `code_verifier`
//! for a code issued without a challenge is refused (a downgrade, RFC 9700 section 2.1.1).
//!
//! Refresh tokens are issued to clients whose `grant_types` list `refresh_token`, for every grant
//! including `client_credentials` (a client that lists only `client_credentials` gets none, as
//! RFC 6749 section 4.4.3 suggests). Each refresh rotates: the presented token is spent, a new one
//! with the same scopes and a fresh `refresh_token_ttl` is returned; presenting a spent token
//! revokes the whole grant family, its unexpired access tokens included.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::client::{Client, GrantType};
use super::endpoints::Dialect;
use super::error::{OAuthError, json_response};
use super::params::{Params, client_credentials, shown, split_scope};
use super::{CODE_PREFIX, REFRESH_PREFIX, TokenService, random_id, random_token};
use crate::log_limit::LogLimit;
use crate::store::{NewGrant, RedeemOutcome, RefreshRecord, RotateOutcome, Rotation, token_hash};

/// Parses the body and authenticates the client (shared by token, revoke, introspect, accept).
pub(crate) fn authenticated(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, Arc<Client>), OAuthError> {
    let params = Params::from_body(headers, body)?;
    let Some(creds) = client_credentials(headers, &params)? else {
        return Err(authentication_required());
    };
    let client = svc.authenticate(&creds)?;
    Ok((params, client))
}

fn authentication_required() -> OAuthError {
    OAuthError::InvalidClient {
        basic: false,
        description: "client authentication is required: HTTP Basic, or client_id and client_secret in the body".into(),
    }
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
                    "scope '{}' is not allowed for this client",
                    shown(bad)
                )));
            }
            Ok(scopes)
        }
    }
}

/// `POST /oauth2/token` (at any configured token path; `dialect` says what may be left out).
pub(crate) async fn token(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
    dialect: Dialect,
) -> Result<Response<Bytes>, OAuthError> {
    let mut params = Params::from_body(headers, body)?;
    let creds = client_credentials(headers, &params)?;
    let refresh_alone =
        creds.is_none() && dialect.default_grant_type && params.get("refresh_token").is_some();
    let client = match &creds {
        Some(c) => Some(svc.authenticate(c)?),
        None if refresh_alone => None,
        None => return Err(authentication_required()),
    };
    if dialect.default_grant_type {
        default_grant(&mut params, creds.is_some());
    }
    let grant = grant_type(&params)?;
    let client = match client {
        Some(c) => c,
        None => refresh_owner(svc, &params, grant).await?,
    };
    if !client.allows(grant) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client may not use the {} grant",
            grant.as_str()
        )));
    }
    let issued = match grant {
        GrantType::ClientCredentials => client_credentials_grant(svc, &client, &params).await?,
        GrantType::RefreshToken => refresh_grant(svc, &client, &params).await?,
        GrantType::AuthorizationCode => code_grant(svc, &client, &params).await?,
    };
    crate::metrics::token_issued(grant.as_str());
    Ok(token_response(svc, &issued, dialect))
}

/// The grant a request without `grant_type` means: the one whose parameters it carries
/// (`code`, `refresh_token`), else `client_credentials` when it authenticates.
fn default_grant(params: &mut Params, authenticated: bool) {
    if params.get("code").is_some() {
        params.default_to("grant_type", "authorization_code");
    } else if params.get("refresh_token").is_some() {
        params.default_to("grant_type", "refresh_token");
    } else if authenticated {
        params.default_to("grant_type", "client_credentials");
    }
}

fn grant_type(params: &Params) -> Result<GrantType, OAuthError> {
    let name = params.require("grant_type")?;
    GrantType::parse(name).ok_or_else(|| {
        OAuthError::UnsupportedGrantType(format!(
            "grant_type '{}' is not supported; use client_credentials, authorization_code or refresh_token",
            shown(name)
        ))
    })
}

/// The client of a refresh token presented alone (a `default_grant_type` path): it must be active
/// and have opted in with `refresh_without_credentials`; anything else needs client auth.
async fn refresh_owner(
    svc: &TokenService,
    params: &Params,
    grant: GrantType,
) -> Result<Arc<Client>, OAuthError> {
    let presented = params.require("refresh_token")?;
    if grant != GrantType::RefreshToken {
        return Err(authentication_required());
    }
    let status = svc.store().refresh_status(token_hash(presented)).await?;
    let Some(status) = status else {
        return Err(OAuthError::grant("the refresh token is invalid"));
    };
    match svc.client(&status.record.client_id) {
        Some(c) if c.active && c.refresh_without_credentials => Ok(c),
        _ => Err(authentication_required()),
    }
}

/// What a grant issued.
struct Issued {
    access: String,
    refresh: Option<String>,
    scopes: Vec<String>,
}

/// The success response (RFC 6749 section 5.1), with `expires_at` when the path's dialect asks.
fn token_response(svc: &TokenService, issued: &Issued, dialect: Dialect) -> Response<Bytes> {
    let ttl = svc.settings().access_ttl;
    let mut body = serde_json::json!({
        "access_token": issued.access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": issued.scopes.join(" "),
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(r) = &issued.refresh {
            obj.insert("refresh_token".into(), serde_json::Value::from(r.as_str()));
        }
        if dialect.expires_at {
            obj.insert(
                "expires_at".into(),
                serde_json::Value::from(svc.now() + ttl),
            );
        }
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
) -> Result<Issued, OAuthError> {
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
    Ok(Issued {
        access,
        refresh,
        scopes,
    })
}

async fn client_credentials_grant(
    svc: &TokenService,
    client: &Client,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let scopes = grant_scopes(params.get("scope"), &client.scopes)?;
    issue_new_grant(svc, client, &client.client_id, scopes, random_id()).await
}

async fn refresh_grant(
    svc: &TokenService,
    client: &Client,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let presented = params.require("refresh_token")?;
    let requested = params.get("scope").map(split_scope);
    let new_token = random_token(REFRESH_PREFIX);
    let jti = random_id();
    // Public clients' refresh tokens rotate too: every refresh token is single-use here
    // (RFC 9700 section 2.2.2).
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
            static REUSE: LogLimit = LogLimit::per_secs(10);
            if let Some(suppressed) = REUSE.admit() {
                tracing::warn!(client_id = %client.client_id, suppressed, "refresh token reuse: grant family revoked");
            }
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
    Ok(Issued {
        access,
        refresh: Some(new_token),
        scopes,
    })
}

/// PKCE at redemption: a challenge is always enforced; a verifier without a challenge is refused,
/// since it means the authorization request was stripped of its challenge (RFC 9700 section
/// 2.1.1, PKCE downgrade).
fn check_pkce(challenge: &str, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge.is_empty(), verifier) {
        (true, None) => Ok(()),
        (true, Some(_)) => Err(OAuthError::grant(
            "a code_verifier was sent, but the authorization request carried no code_challenge",
        )),
        (false, None) => Err(OAuthError::grant(
            "the authorization request carried a code_challenge: send its code_verifier",
        )),
        (false, Some(v)) if pkce_s256_matches(v, challenge) => Ok(()),
        (false, Some(_)) => Err(OAuthError::grant(
            "the PKCE code_verifier does not match the code_challenge",
        )),
    }
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
) -> Result<Issued, OAuthError> {
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.get("code_verifier");
    if client.require_pkce && verifier.is_none() {
        // Checked before redemption, so a forgotten verifier does not burn the code.
        return Err(OAuthError::request("missing parameter 'code_verifier'"));
    }
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
    check_pkce(&record.code_challenge, verifier)?;
    let scopes: Vec<String> = record
        .scopes
        .into_iter()
        .filter(|s| client.scopes.contains(s))
        .collect();
    issue_new_grant(svc, client, &record.subject, scopes, record.family_id).await
}
