//! Token endpoint: client_credentials in every body encoding and client-auth style, scopes, every
//! RFC 6749 error code, response headers, and tokens that verify with `verification_keys()`.

mod oauth_support;

use bytes::Bytes;
use http::{Request, header};
use oauth_support::*;

#[tokio::test]
async fn client_credentials_in_every_encoding_and_auth_style() {
    let env = Env::new();
    for (enc, auth) in STYLES {
        let (status, headers, body) = env
            .call(post(
                "/oauth2/token",
                enc,
                auth,
                (SVC_ID, SVC_SECRET),
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 200, "{enc:?}/{auth:?}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read write");
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|r| r.starts_with("prt_"))
        );
        let claims = verify_with_keys(env.svc(), body["access_token"].as_str().expect("token"));
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["sub"], SVC_ID);
        assert_eq!(claims["client_id"], SVC_ID);
        assert_eq!(claims["scope"], "read write");
        assert_eq!(claims["iat"], T0);
        assert_eq!(claims["exp"], T0 + 3600);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    }
}

#[tokio::test]
async fn access_tokens_are_signed_by_the_active_key_with_its_kid() {
    let env = Env::new();
    let body = cc_token(&env, None).await;
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().expect("t")).expect("h");
    assert_eq!(header.kid.as_deref(), Some("k1"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);

    let env = Env::with(Opts {
        active_kid: "k2",
        ..Opts::default()
    });
    let body = cc_token(&env, None).await;
    let token = body["access_token"].as_str().expect("t");
    let header = jsonwebtoken::decode_header(token).expect("h");
    assert_eq!(header.kid.as_deref(), Some("k2"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    verify_with_keys(env.svc(), token);
}

#[tokio::test]
async fn client_without_refresh_grant_gets_no_refresh_token() {
    let env = Env::new();
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Json,
            Auth::Body,
            (CC_ID, CC_SECRET),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], "read");
}

#[tokio::test]
async fn argon2_secrets_authenticate_and_wrong_ones_do_not() {
    let env = Env::new();
    for _ in 0..2 {
        let (status, _, body) = env
            .call(post(
                "/oauth2/token",
                Enc::Form,
                Auth::Basic,
                (ARGON_ID, ARGON_SECRET),
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (ARGON_ID, "correct horse battery stapler"),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn scope_defaults_narrows_and_refuses_more_than_allowed() {
    let env = Env::new();
    assert_eq!(cc_token(&env, None).await["scope"], "read write");
    assert_eq!(cc_token(&env, Some("write")).await["scope"], "write");
    assert_eq!(cc_token(&env, Some("read read")).await["scope"], "read");
    for (enc, auth) in STYLES {
        let (status, _, body) = env
            .call(post(
                "/oauth2/token",
                enc,
                auth,
                (SVC_ID, SVC_SECRET),
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "read admin"),
                ],
            ))
            .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_scope");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("admin"))
        );
    }
}

#[tokio::test]
async fn invalid_client_with_basic_carries_www_authenticate() {
    let env = Env::new();
    let (status, headers, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, "wrong"),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        "Basic realm=\"portcullis\""
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn invalid_client_in_body_has_no_www_authenticate() {
    let env = Env::new();
    for client in [(SVC_ID, "wrong"), ("nobody", "whatever")] {
        let (status, headers, body) = env
            .call(post(
                "/oauth2/token",
                Enc::Json,
                Auth::Body,
                client,
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    }
    // No credentials at all.
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::None,
            (SVC_ID, SVC_SECRET),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    // Secret never echoed.
    assert!(!body.to_string().contains(SVC_SECRET));
}

#[tokio::test]
async fn invalid_request_cases() {
    let env = Env::new();
    // Missing grant_type.
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("grant_type"))
    );

    // Both client-auth styles at once.
    let req = Request::post("https://gw.example/oauth2/token")
        .header(header::AUTHORIZATION, basic_header(SVC_ID, SVC_SECRET))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Bytes::from(format!(
            "grant_type=client_credentials&client_id={SVC_ID}&client_secret={SVC_SECRET}"
        )))
        .expect("req");
    let (status, _, body) = env.call(req).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // A repeated parameter.
    let req = Request::post("https://gw.example/oauth2/token")
        .header(header::AUTHORIZATION, basic_header(SVC_ID, SVC_SECRET))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Bytes::from(
            "grant_type=client_credentials&grant_type=client_credentials",
        ))
        .expect("req");
    let (status, _, body) = env.call(req).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Unsupported content type and broken JSON.
    for (ctype, text) in [
        ("text/plain", "grant_type=client_credentials"),
        ("application/json", "{not json"),
    ] {
        let req = Request::post("https://gw.example/oauth2/token")
            .header(header::AUTHORIZATION, basic_header(SVC_ID, SVC_SECRET))
            .header(header::CONTENT_TYPE, ctype)
            .body(Bytes::from(text))
            .expect("req");
        let (status, _, body) = env.call(req).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{ctype}"
        );
    }

    // Refresh without refresh_token.
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Json,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[("grant_type", "refresh_token")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn unsupported_grant_type_and_unauthorized_client() {
    let env = Env::new();
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Body,
            (SVC_ID, SVC_SECRET),
            &[
                ("grant_type", "password"),
                ("username", "u"),
                ("password", "p"),
            ],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // webapp may not use client_credentials; cc-only may not refresh.
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (WEB_ID, WEB_SECRET),
            &[("grant_type", "client_credentials")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Json,
            Auth::Basic,
            (CC_ID, CC_SECRET),
            &[("grant_type", "refresh_token"), ("refresh_token", "prt_x")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn suspended_client_gets_no_tokens() {
    let env = Env::new();
    for (enc, auth) in STYLES {
        let (status, _, body) = env
            .call(post(
                "/oauth2/token",
                enc,
                auth,
                (SUSP_ID, SUSP_SECRET),
                &[("grant_type", "client_credentials")],
            ))
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(body.get("access_token").is_none());
    }
}

#[tokio::test]
async fn wrong_method_and_unknown_path() {
    let env = Env::new();
    let (status, headers, body) = env.call(get("/oauth2/token")).await;
    assert_eq!(status, 405);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(body["error"], "method_not_allowed");
    let (status, _, body) = env.call(get("/oauth2/nothing")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
}
