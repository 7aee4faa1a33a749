//! API-key pair authentication (`X-API-Key` + `X-Client-ID`) through `Authenticator`, apps from TOML.

mod auth_support;

use auth_support::*;
use http::{HeaderMap, HeaderValue};
use portcullis::auth::api_key::KeyHash;
use portcullis::auth::{
    AuthError, AuthMethod, AuthPolicy, authorize, generate_api_key, hash_secret,
};

fn pair(client: Option<&str>, key: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(c) = client {
        h.insert("x-client-id", HeaderValue::from_str(c).unwrap());
    }
    if let Some(k) = key {
        h.insert("x-api-key", HeaderValue::from_str(k).unwrap());
    }
    h
}

struct Setup {
    auth: portcullis::auth::Authenticator,
    active_key: String,
    suspended_key: String,
}

fn setup(argon_secret: &str) -> Setup {
    let (_clock, state) = state();
    let dir = temp_dir("apikey");
    let (active_key, active_hash) = generate_api_key();
    let (suspended_key, suspended_hash) = generate_api_key();
    let argon = hash_secret(argon_secret).unwrap();
    let body = format!(
        r#"
[[apps]]
client_id = "reports"
name = "Reports"
key_hash = "{active_hash}"
scopes = ["meetings:read", "reports:write"]

[[apps]]
client_id = "old-partner"
key_hash = "{suspended_hash}"
status = "suspended"

[[apps]]
client_id = "operator"
key_hash = "{argon}"
status = "active"
"#
    );
    Setup {
        auth: build(&dir, &body, &state),
        active_key,
        suspended_key,
    }
}

#[tokio::test]
async fn every_api_key_case() {
    let s = setup("correct horse battery staple");
    let a = &s.auth;
    let p = a
        .authenticate(
            AuthPolicy::ApiKey,
            &pair(Some("reports"), Some(&s.active_key)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.subject(), "reports");
    assert_eq!(p.client_id(), Some("reports"));
    assert_eq!(p.method(), AuthMethod::ApiKey);
    assert_eq!(
        p.scopes(),
        vec!["meetings:read".to_string(), "reports:write".to_string()]
    );

    let cases: Vec<(HeaderMap, AuthError)> = vec![
        (pair(Some("reports"), None), AuthError::MissingApiKey),
        (pair(None, None), AuthError::MissingApiKey),
        (pair(Some("reports"), Some("")), AuthError::MissingApiKey),
        (pair(None, Some(&s.active_key)), AuthError::MissingClientId),
        (
            pair(Some("nobody"), Some(&s.active_key)),
            AuthError::InvalidCredentials,
        ),
        (
            pair(Some("reports"), Some("pk_wrong")),
            AuthError::InvalidCredentials,
        ),
        (
            pair(Some("reports"), Some(&s.suspended_key)),
            AuthError::InvalidCredentials,
        ),
        (
            pair(Some("old-partner"), Some("pk_wrong")),
            AuthError::InvalidCredentials,
        ),
        (
            pair(Some("old-partner"), Some(&s.suspended_key)),
            AuthError::AppInactive,
        ),
        (
            pair(Some("operator"), Some("wrong horse")),
            AuthError::InvalidCredentials,
        ),
    ];
    for (headers, expected) in cases {
        assert_eq!(
            a.authenticate(AuthPolicy::ApiKey, &headers).await,
            Err(expected),
            "{headers:?}"
        );
    }
    // Two X-API-Key headers are not a credential: 400 (RFC 6750-style one credential).
    let mut twice = pair(Some("reports"), Some(&s.active_key));
    twice.append("x-api-key", HeaderValue::from_str(&s.active_key).unwrap());
    assert_eq!(
        a.authenticate(AuthPolicy::ApiKey, &twice).await,
        Err(AuthError::RepeatedCredential("X-API-Key".into()))
    );
}

#[tokio::test]
async fn argon2_secret_verifies_and_is_remembered() {
    let s = setup("correct horse battery staple");
    for _ in 0..3 {
        let p = s
            .auth
            .authenticate(
                AuthPolicy::ApiKey,
                &pair(Some("operator"), Some("correct horse battery staple")),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.subject(), "operator");
    }
}

#[tokio::test]
async fn either_style_route_and_mixed_credentials() {
    let s = setup("some operator secret");
    let a = &s.auth;
    let good = pair(Some("reports"), Some(&s.active_key));
    assert!(
        a.authenticate(AuthPolicy::BearerOrApiKey, &good)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        a.authenticate(AuthPolicy::BearerOrApiKey, &pair(Some("reports"), None))
            .await,
        Err(AuthError::MissingApiKey)
    );
    assert_eq!(
        a.authenticate(AuthPolicy::BearerOrApiKey, &HeaderMap::new())
            .await,
        Err(AuthError::MissingAuthorization {
            realm: "api".into()
        })
    );
    // An API key on a bearer route is not a bearer token.
    assert_eq!(
        a.authenticate(AuthPolicy::Bearer, &good).await,
        Err(AuthError::MissingAuthorization {
            realm: "api".into()
        })
    );
    let mut mixed = good.clone();
    mixed.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer a.b.c"),
    );
    for policy in [
        AuthPolicy::None,
        AuthPolicy::Bearer,
        AuthPolicy::ApiKey,
        AuthPolicy::BearerOrApiKey,
    ] {
        assert_eq!(
            a.authenticate(policy, &mixed).await,
            Err(AuthError::MixedCredentials)
        );
    }
    // Basic auth alongside an API key is not "mixed": the key pair decides.
    let mut basic = good.clone();
    basic.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert!(a.authenticate(AuthPolicy::ApiKey, &basic).await.is_ok());
}

#[tokio::test]
async fn app_scopes_are_authorized() {
    let s = setup("another operator secret");
    let p = s
        .auth
        .authenticate(
            AuthPolicy::ApiKey,
            &pair(Some("reports"), Some(&s.active_key)),
        )
        .await
        .unwrap();
    let need = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(authorize(p.as_deref(), &need(&["reports:write"])).is_ok());
    assert_eq!(
        authorize(p.as_deref(), &need(&["admin:all"])),
        Err(AuthError::AppScopeMissing("admin:all".into()))
    );
}

#[test]
fn generated_keys_and_hashes() {
    let (k1, h1) = generate_api_key();
    let (k2, _) = generate_api_key();
    assert_ne!(k1, k2);
    assert!(k1.starts_with("pk_") && k1.len() == 3 + 43, "{k1}");
    assert!(
        k1[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(h1.starts_with("sha256:") && h1.len() == 7 + 64);
    let phc = hash_secret("s3cret").unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(matches!(KeyHash::parse(&phc), Ok(KeyHash::Argon2(_))));
    assert_ne!(hash_secret("s3cret").unwrap(), phc, "salted");
}

#[test]
fn app_config_problems_are_reported() {
    let (_clock, state) = state();
    let dir = temp_dir("apikey-diag");
    let (_, hash) = generate_api_key();
    let body = format!(
        r#"
[[apps]]
client_id = "a"
key_hash = "plaintext-key"

[[apps]]
client_id = "b"
key_hash = "{hash}"
status = "paused"

[[apps]]
client_id = "b"
key_hash = "{hash}"

[[apps]]
client_id = "c"
key_hash = "sha256:1234"
scopes = ["has space"]

[[apps]]
client_id = "d"
key_hash = "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
"#
    );
    let problems = try_build(&dir, &body, &state).expect_err("refused");
    let all = problems.join("\n");
    for needle in [
        "apps[0].key_hash",
        "apps[1].status",
        "apps[2].client_id",
        "apps[3].key_hash",
        "apps[3].scopes[0]",
        "apps[4].key_hash",
    ] {
        assert!(all.contains(needle), "missing {needle}:\n{all}");
    }
    assert!(!all.contains("plaintext-key"), "key echoed:\n{all}");
}
