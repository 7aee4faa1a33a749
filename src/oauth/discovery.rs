//! Discovery: the RFC 8414 authorization-server metadata and the JWKS of public signing keys.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::TokenService;
use super::endpoints::Endpoint;
use super::error::json_response;

/// `none` joins the methods when a public client is registered (RFC 8414 section 2).
fn token_auth_methods(svc: &TokenService) -> Vec<&'static str> {
    let mut methods = vec!["client_secret_basic", "client_secret_post"];
    if svc.settings().clients.iter().any(|c| c.is_public()) {
        methods.push("none");
    }
    methods
}

fn cacheable(mut resp: Response<Bytes>) -> Response<Bytes> {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp.headers_mut().remove(header::PRAGMA);
    resp
}

/// `GET /.well-known/oauth-authorization-server`.
pub(crate) fn metadata(svc: &TokenService) -> Response<Bytes> {
    let iss = svc.issuer();
    let mut scopes: Vec<&str> = Vec::new();
    let mut grants: Vec<&str> = Vec::new();
    for c in &svc.settings().clients {
        for s in &c.scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        for g in &c.grant_types {
            if !grants.contains(&g.as_str()) {
                grants.push(g.as_str());
            }
        }
    }
    scopes.sort_unstable();
    let mut body = serde_json::json!({
        "issuer": iss,
        "token_endpoint": svc.url(Endpoint::Token),
        "jwks_uri": svc.url(Endpoint::Jwks),
        "revocation_endpoint": svc.url(Endpoint::Revoke),
        "introspection_endpoint": svc.url(Endpoint::Introspect),
        "grant_types_supported": grants,
        "response_types_supported": ["code"],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": token_auth_methods(svc),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    });
    if svc.settings().login_url.is_some()
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert(
            "authorization_endpoint".into(),
            serde_json::Value::String(svc.url(Endpoint::Authorize)),
        );
    }
    cacheable(json_response(StatusCode::OK, &body))
}

/// `GET /.well-known/jwks.json`: public keys only.
pub(crate) fn jwks(svc: &TokenService) -> Response<Bytes> {
    let set = svc.settings().signer.jwks();
    let body = serde_json::to_value(&set).unwrap_or_else(|_| serde_json::json!({"keys": []}));
    let mut resp = cacheable(json_response(StatusCode::OK, &body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    resp
}
