//! Bearer request handling through `Authenticator`: Authorization header rules, mixed credentials, scopes, the verified-token cache and revocation.

mod auth_support;

use auth_support::*;
use http::HeaderValue;
use jsonwebtoken::Algorithm;
use portcullis::auth::{AuthError, AuthPolicy, authorize};
use serde_json::json;

#[tokio::test]
async fn authorization_header_rules() {
    let (_c, auth) = hs_setup();
    let token = hs(&claims());
    let none = http::HeaderMap::new();
    assert_eq!(
        auth.authenticate(AuthPolicy::Bearer, &none).await,
        Err(AuthError::MissingAuthorization {
            realm: "api".into()
        })
    );
    let mut two = bearer(&token);
    two.append(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    assert_eq!(
        auth.authenticate(AuthPolicy::Bearer, &two).await,
        Err(AuthError::RepeatedCredential("Authorization".into()))
    );
    for value in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Token abc",
        &token,
        "Bearer a b",
    ] {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
        assert_eq!(
            auth.authenticate(AuthPolicy::Bearer, &h).await,
            Err(AuthError::InvalidAuthorizationFormat),
            "{value:?}"
        );
    }
    let mut lower = http::HeaderMap::new();
    lower.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bearer {token}")).unwrap(),
    );
    assert!(auth.authenticate(AuthPolicy::Bearer, &lower).await.is_ok());
    assert_eq!(auth.authenticate(AuthPolicy::None, &none).await, Ok(None));
    assert_eq!(
        auth.authenticate(AuthPolicy::BearerOrApiKey, &none).await,
        Err(AuthError::MissingAuthorization {
            realm: "api".into()
        })
    );
}

#[tokio::test]
async fn mixed_credentials_are_refused_under_every_policy() {
    let (_c, auth) = hs_setup();
    let mut h = bearer(&hs(&claims()));
    h.insert("x-api-key", HeaderValue::from_static("pk_something"));
    h.insert("x-client-id", HeaderValue::from_static("app"));
    for policy in [
        AuthPolicy::None,
        AuthPolicy::Bearer,
        AuthPolicy::ApiKey,
        AuthPolicy::BearerOrApiKey,
    ] {
        assert_eq!(
            auth.authenticate(policy, &h).await,
            Err(AuthError::MixedCredentials),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn scopes_from_scope_or_scp() {
    let (_c, auth) = hs_setup();
    let need = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let p = auth
        .authenticate(AuthPolicy::Bearer, &bearer(&hs(&claims())))
        .await
        .unwrap();
    assert!(authorize(p.as_deref(), &need(&["meetings:read"])).is_ok());
    assert_eq!(
        authorize(p.as_deref(), &need(&["meetings:read", "admin"])),
        Err(AuthError::InsufficientScope("meetings:read admin".into()))
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["admin", "meetings:read"]);
    let p = auth
        .authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
        .await
        .unwrap();
    assert!(authorize(p.as_deref(), &need(&["meetings:read", "admin"])).is_ok());
    assert_eq!(p.unwrap().scopes(), need(&["admin", "meetings:read"]));
    assert!(authorize(None, &need(&["x"])).is_err());
}

#[tokio::test]
async fn cache_serves_hits_and_revoke_jti_evicts() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-cache");
    let auth = build(&dir, &hs_config(&dir), &state);
    let mut c = claims();
    c["jti"] = json!("jti-1");
    let t1 = hs(&c);
    let t2 = hs(&claims());
    assert_eq!(state.cached_tokens(), 0);
    for _ in 0..3 {
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t1))
            .await
            .unwrap();
    }
    auth.authenticate(AuthPolicy::Bearer, &bearer(&t2))
        .await
        .unwrap();
    assert_eq!(state.cached_tokens(), 2, "one entry per distinct token");
    state.revoke_jti("jti-1", NOW + 600);
    assert_eq!(
        state.cached_tokens(),
        1,
        "revocation evicts the cached entry"
    );
    assert_eq!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&t1)).await),
        "token revoked"
    );
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t2))
            .await
            .is_ok()
    );
    // A reload with other rules does not trust entries verified under the old ones.
    let stricter = hs_config(&dir).replace("api://gateway", "api://elsewhere");
    let reloaded = build(&dir, &stricter, &state);
    assert_eq!(
        invalid_why(
            reloaded
                .authenticate(AuthPolicy::Bearer, &bearer(&t2))
                .await
        ),
        "audience not accepted"
    );
    // A revoked jti is refused by every later snapshot too.
    let mut fresh = claims();
    fresh["jti"] = json!("jti-1");
    fresh["aud"] = json!("api://elsewhere");
    assert_eq!(
        invalid_why(
            reloaded
                .authenticate(AuthPolicy::Bearer, &bearer(&hs(&fresh)))
                .await
        ),
        "token revoked"
    );
}

#[tokio::test]
async fn cache_entries_die_at_exp() {
    let (clock, state) = state();
    let dir = temp_dir("jwt-cache-exp");
    let auth = build(&dir, &hs_config(&dir), &state);
    let mut c = claims();
    c["exp"] = json!(NOW + 10);
    let t = hs(&c);
    auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
        .await
        .unwrap();
    clock.advance_secs(39);
    auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
        .await
        .unwrap();
    clock.advance_secs(1);
    assert_eq!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&t)).await),
        "token expired"
    );
}

#[tokio::test]
async fn add_key_accepts_extra_keys() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-add");
    let mut auth = build(&dir, &hs_config(&dir), &state);
    let ed = ed_key();
    let t = mint(Algorithm::EdDSA, Some("gw-1"), &ed.encoding, &claims());
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_err()
    );
    auth.add_key(portcullis::auth::VerifyKey::new(
        Some("gw-1".into()),
        Algorithm::EdDSA,
        jsonwebtoken::DecodingKey::from_ed_pem(ed.public_pem.as_bytes()).unwrap(),
    ));
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_ok()
    );
}
