//! Authorization endpoint and login hand-off: `GET /oauth2/authorize`, then
//! `POST /oauth2/authorize/accept` or `/reject` from the operator's login backend.
//!
//! The flow (after Ory Hydra's login hand-off):
//! 1. The browser arrives at `GET /oauth2/authorize?response_type=code&client_id&redirect_uri&
//!    scope&state&code_challenge&code_challenge_method=S256`. The client must be active and allowed
//!    `authorization_code`, and `redirect_uri` must equal a registered URI exactly; until both are
//!    known good, errors are shown as JSON (never redirected). After that, errors go back to the
//!    client's redirect URI as `error` + `state`. PKCE S256 is required for public clients and
//!    for confidential clients unless their `require_pkce = false`; `plain` is refused.
//! 2. The gateway answers `302` to `login_url?login_challenge=...`. The challenge is opaque to the
//!    login page: the request's parameters and an expiry (`code_ttl`), MACed with HMAC-SHA256
//!    under a key derived from the active signing key, so nothing is stored until a user is
//!    confirmed and every instance sharing the key accepts it.
//! 3. The login page authenticates the user its own way, then its backend calls
//!    `POST /oauth2/authorize/accept` with `login_challenge` and `subject`, authenticated as a
//!    client whose config has `login_provider = true` (HTTP Basic or body, like the token
//!    endpoint). Each challenge is accepted (or rejected) once. The answer is
//!    `{"redirect_to": "<redirect_uri>?code=...&state=..."}`; the login page sends the browser
//!    there. `POST /oauth2/authorize/reject` answers the same shape with `error=access_denied`.
//! 4. The client redeems the code at `/oauth2/token` with its `code_verifier` and the same
//!    `redirect_uri`, within `code_ttl`, once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::client::{Client, GrantType};
use super::endpoints::Dialect;
use super::error::{OAuthError, json_response};
use super::params::{Params, shown};
use super::token::{authenticated, grant_scopes};
use super::{CODE_PREFIX, TokenService, random_id, random_token};
use crate::store::{CodeRecord, token_hash};

/// What a login challenge carries.
#[derive(Debug, Serialize, Deserialize)]
struct Challenge {
    /// Client id.
    cid: String,
    /// Redirect URI (exact, already checked).
    ru: String,
    /// Granted scopes.
    sc: Vec<String>,
    /// The client's `state`, if any.
    st: Option<String>,
    /// PKCE S256 challenge; empty when the client sent none (allowed by its `require_pkce`).
    cc: String,
    /// Expiry, Unix seconds.
    exp: u64,
    /// One-time id.
    n: String,
}

fn mac(key: &[u8; 32]) -> Result<Hmac<Sha256>, OAuthError> {
    Hmac::<Sha256>::new_from_slice(key).map_err(|e| OAuthError::Server(e.to_string()))
}

fn seal(key: &[u8; 32], c: &Challenge) -> Result<String, OAuthError> {
    let payload = serde_json::to_vec(c).map_err(|e| OAuthError::Server(e.to_string()))?;
    let mut m = mac(key)?;
    m.update(&payload);
    let tag = m.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

fn open(key: &[u8; 32], text: &str, now: u64) -> Result<Challenge, OAuthError> {
    let bad = || OAuthError::request("the login challenge is invalid or has expired");
    let (p, t) = text.split_once('.').ok_or_else(bad)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
    let tag = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
    let mut m = mac(key)?;
    m.update(&payload);
    m.verify_slice(&tag).map_err(|_| bad())?;
    let c: Challenge = serde_json::from_slice(&payload).map_err(|_| bad())?;
    if c.exp <= now {
        return Err(bad());
    }
    Ok(c)
}

/// `redirect_uri` with extra query parameters appended.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

fn redirect(location: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An error sent back to the client's (validated) redirect URI.
fn redirect_error(uri: &str, state: Option<&str>, e: &OAuthError) -> Response<Bytes> {
    let problem = e.problem();
    let mut pairs = vec![
        ("error", problem.code),
        ("error_description", problem.description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    redirect(&with_query(uri, &pairs))
}

/// `GET /oauth2/authorize`.
pub(crate) fn authorize(
    svc: &TokenService,
    query: &str,
    dialect: Dialect,
) -> Result<Response<Bytes>, OAuthError> {
    let Some(login_url) = svc.settings().login_url.as_deref() else {
        return Err(OAuthError::request(
            "this gateway has no login page configured (oauth.login_url)",
        ));
    };
    let mut q = Params::from_form(query.as_bytes())?;
    if dialect.default_response_type {
        q.default_to("response_type", "code");
    }
    let client_id = q.require("client_id")?;
    let client = svc
        .client(client_id)
        .filter(|c| c.active)
        .ok_or_else(|| OAuthError::request("unknown or suspended client_id"))?;
    let redirect_uri = q.require("redirect_uri")?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(OAuthError::request(
            "redirect_uri is not registered for this client (it must match exactly)",
        ));
    }
    let state = q.get("state");
    match check_request(&client, &q) {
        Ok((scopes, challenge)) => {
            let c = Challenge {
                cid: client.client_id.clone(),
                ru: redirect_uri.to_string(),
                sc: scopes,
                st: state.map(str::to_string),
                cc: challenge,
                exp: svc.now() + svc.settings().code_ttl,
                n: random_id(),
            };
            let sealed = seal(&svc.settings().login_key, &c)?;
            Ok(redirect(&with_query(
                login_url,
                &[("login_challenge", &sealed)],
            )))
        }
        Err(e) => Ok(redirect_error(redirect_uri, state, &e)),
    }
}

/// The checks whose failures go back to the client: response type, grant, scope, PKCE.
fn check_request(client: &Client, q: &Params) -> Result<(Vec<String>, String), OAuthError> {
    match q.require("response_type")? {
        "code" => {}
        other => {
            return Err(OAuthError::UnsupportedResponseType(format!(
                "response_type '{}' is not supported; use code",
                shown(other)
            )));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the authorization_code grant".into(),
        ));
    }
    let scopes = grant_scopes(q.get("scope"), &client.scopes)?;
    let challenge = pkce_challenge(client, q)?;
    Ok((scopes, challenge))
}

/// The S256 challenge, or `""` when a client that does not require PKCE sent none. Public
/// clients always need one (RFC 9700 section 2.1.1); `plain` is refused.
fn pkce_challenge(client: &Client, q: &Params) -> Result<String, OAuthError> {
    let Some(challenge) = q.get("code_challenge") else {
        if client.require_pkce {
            return Err(OAuthError::request(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        if q.get("code_challenge_method").is_some() {
            return Err(OAuthError::request(
                "code_challenge_method was sent without code_challenge",
            ));
        }
        return Ok(String::new());
    };
    if q.get("code_challenge_method") != Some("S256") {
        return Err(OAuthError::request(
            "code_challenge_method must be S256 (plain is refused)",
        ));
    }
    let ok = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(OAuthError::request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_string())
}

/// Authenticates the login backend and opens the challenge, once.
async fn login_backend_challenge(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Params, Challenge), OAuthError> {
    let (params, caller) = authenticated(svc, headers, body)?;
    if !caller.login_provider {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not a login provider (login_provider = true)".into(),
        ));
    }
    let c = open(
        &svc.settings().login_key,
        params.require("login_challenge")?,
        svc.now(),
    )?;
    if !svc.store().use_nonce(c.n.clone(), c.exp).await? {
        return Err(OAuthError::request("the login challenge was already used"));
    }
    Ok((params, c))
}

/// `POST /oauth2/authorize/accept`: `login_challenge` + `subject` -> `{"redirect_to"}` with a code.
pub(crate) async fn accept(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let (params, c) = login_backend_challenge(svc, headers, body).await?;
    let subject = params.require("subject")?;
    if !svc.client_is_active(&c.cid) {
        return Err(OAuthError::request(
            "the client of this login has been suspended",
        ));
    }
    let code = random_token(CODE_PREFIX);
    let record = CodeRecord {
        client_id: c.cid,
        redirect_uri: c.ru.clone(),
        subject: subject.to_string(),
        scopes: c.sc,
        code_challenge: c.cc,
        expires_at: svc.now() + svc.settings().code_ttl,
        family_id: random_id(),
        used: false,
    };
    svc.store().put_code(token_hash(&code), record).await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = c.st.as_deref() {
        pairs.push(("state", s));
    }
    let to = with_query(&c.ru, &pairs);
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "redirect_to": to }),
    ))
}

/// `POST /oauth2/authorize/reject`: `login_challenge` -> `{"redirect_to"}` with `access_denied`.
pub(crate) async fn reject(
    svc: &TokenService,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Bytes>, OAuthError> {
    let (_, c) = login_backend_challenge(svc, headers, body).await?;
    let mut pairs = vec![
        ("error", "access_denied"),
        (
            "error_description",
            "the user or the login service denied the request",
        ),
    ];
    if let Some(s) = c.st.as_deref() {
        pairs.push(("state", s));
    }
    let to = with_query(&c.ru, &pairs);
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "redirect_to": to }),
    ))
}
