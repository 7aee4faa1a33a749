//! Authorization code with PKCE: the login hand-off (authorize -> login page -> accept), code
//! redemption in every encoding and auth style, bad verifiers, redirect URIs, reuse and expiry.

mod oauth_support;

use http::header;
use oauth_support::*;

fn authorize_url(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("/oauth2/authorize?{}", q.finish())
}

#[tokio::test]
async fn code_flow_in_every_encoding_and_auth_style() {
    let env = Env::new();
    for (enc, auth) in STYLES {
        let (code, verifier, _) = authorization_code(&env, Some("read profile"), "xyz-state").await;
        assert!(code.starts_with("pac_"));
        let (status, headers, body) = env
            .call(code_req(&code, &verifier, REDIRECT, enc, auth))
            .await;
        assert_eq!(status, 200, "{enc:?}/{auth:?}: {body}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["scope"], "read profile");
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|r| r.starts_with("prt_"))
        );
        let claims = verify_with_keys(env.svc(), body["access_token"].as_str().expect("t"));
        assert_eq!(claims["sub"], "user-42");
        assert_eq!(claims["client_id"], WEB_ID);

        // The refresh token from a code grant rotates like any other, for its own client.
        let (status, _, body) = env
            .call(post(
                "/oauth2/token",
                enc,
                auth,
                (WEB_ID, WEB_SECRET),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", body["refresh_token"].as_str().expect("r")),
                ],
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            verify_with_keys(env.svc(), body["access_token"].as_str().expect("t"))["sub"],
            "user-42"
        );
    }
}

#[tokio::test]
async fn default_scope_is_the_clients_allowed() {
    let env = Env::new();
    let (code, verifier, _) = authorization_code(&env, None, "s").await;
    let (status, _, body) = env
        .call(code_req(&code, &verifier, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "read write profile");
}

#[tokio::test]
async fn wrong_pkce_verifier_is_invalid_grant_and_burns_the_code() {
    let env = Env::new();
    let (code, verifier, _) = authorization_code(&env, None, "s").await;
    let (other, _) = pkce();
    let (status, _, body) = env
        .call(code_req(&code, &other, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("code_verifier"))
    );
    // The code was single use even though the attempt failed.
    let (status, _, body) = env
        .call(code_req(&code, &verifier, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn missing_verifier_is_invalid_request() {
    let env = Env::new();
    let (code, _, _) = authorization_code(&env, None, "s").await;
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Json,
            Auth::Basic,
            (WEB_ID, WEB_SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn redirect_uri_must_match_exactly_at_the_token_endpoint() {
    let env = Env::new();
    // Another registered URI, a prefix and a trailing slash all fail.
    for wrong in [
        "https://app.example/other",
        "https://app.example/cb/",
        "https://app.example/c",
    ] {
        let (code, verifier, _) = authorization_code(&env, None, "s").await;
        let (status, _, body) = env
            .call(code_req(&code, &verifier, wrong, Enc::Form, Auth::Basic))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn code_reuse_revokes_the_tokens_issued_from_it() {
    let env = Env::new();
    let (code, verifier, _) = authorization_code(&env, None, "s").await;
    let (status, _, first) = env
        .call(code_req(&code, &verifier, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = env
        .call(code_req(&code, &verifier, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let jti = verify_with_keys(env.svc(), first["access_token"].as_str().expect("t"))["jti"]
        .as_str()
        .expect("jti")
        .to_string();
    assert!(env.revoked_jtis().contains(&jti));
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (WEB_ID, WEB_SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().expect("r")),
            ],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn code_expires_after_code_ttl() {
    let env = Env::new();
    let (code, verifier, _) = authorization_code(&env, None, "s").await;
    env.clock.advance_secs(301);
    let (status, _, body) = env
        .call(code_req(&code, &verifier, REDIRECT, Enc::Form, Auth::Basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn code_of_another_client_is_refused() {
    let env = Env::new();
    let (code, verifier, _) = authorization_code(&env, None, "s").await;
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        ))
        .await;
    // svc is not allowed the authorization_code grant at all.
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn authorize_refuses_unknown_client_and_unregistered_redirect_without_redirecting() {
    let env = Env::new();
    let (_, challenge) = pkce();
    for (client, redirect) in [
        ("nobody", REDIRECT),
        (WEB_ID, "https://evil.example/cb"),
        (WEB_ID, "https://app.example/cb?x=1"),
    ] {
        let (status, headers, body) = env
            .call(get(&authorize_url(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])))
            .await;
        assert_eq!(status, 400, "{client} {redirect}");
        assert!(headers.get(header::LOCATION).is_none());
        assert_eq!(body["error"], "invalid_request");
    }
}

#[tokio::test]
async fn authorize_errors_after_redirect_validation_go_back_to_the_client() {
    let env = Env::new();
    let (_, challenge) = pkce();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("response_type", "token"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (vec![("response_type", "code")], "invalid_request"),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
    ];
    for (extra, code) in cases {
        let mut pairs = vec![
            ("client_id", WEB_ID),
            ("redirect_uri", REDIRECT),
            ("state", "st8"),
        ];
        pairs.extend(extra);
        let (status, headers, _) = env.call(get(&authorize_url(&pairs))).await;
        assert_eq!(status, 302, "{code}");
        let location = headers[header::LOCATION].to_str().expect("loc");
        assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
        let q = query_of(location);
        assert_eq!(q["error"], code);
        assert_eq!(q["state"], "st8");
    }
}

#[tokio::test]
async fn accept_requires_a_login_provider_and_a_fresh_challenge() {
    let env = Env::new();
    let (_, challenge) = pkce();
    let (_, headers, _) = env
        .call(get(&authorize_url(&[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])))
        .await;
    let login =
        query_of(headers[header::LOCATION].to_str().expect("loc"))["login_challenge"].clone();
    let accept = |client: (&'static str, &'static str), ch: String| {
        post(
            "/oauth2/authorize/accept",
            Enc::Form,
            Auth::Basic,
            client,
            &[("login_challenge", &ch), ("subject", "u1")],
        )
    };

    // The OAuth client itself cannot confirm its own user.
    let (status, _, body) = env.call(accept((WEB_ID, WEB_SECRET), login.clone())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // Unauthenticated: 401.
    let (status, _, body) = env
        .call(post(
            "/oauth2/authorize/accept",
            Enc::Form,
            Auth::None,
            (LOGIN_ID, LOGIN_SECRET),
            &[("login_challenge", &login), ("subject", "u1")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A tampered challenge.
    let mut tampered = login.clone();
    tampered.insert(5, 'A');
    let (status, _, body) = env.call(accept((LOGIN_ID, LOGIN_SECRET), tampered)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // The real one works once.
    let (status, _, body) = env
        .call(accept((LOGIN_ID, LOGIN_SECRET), login.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(query_of(body["redirect_to"].as_str().expect("to")).contains_key("code"));
    let (status, _, body) = env
        .call(accept((LOGIN_ID, LOGIN_SECRET), login.clone()))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn challenge_expires_and_reject_sends_access_denied() {
    let env = Env::new();
    let (_, challenge) = pkce();
    let url = authorize_url(&[
        ("response_type", "code"),
        ("client_id", WEB_ID),
        ("redirect_uri", REDIRECT),
        ("state", "abc"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let login_of = |h: &http::HeaderMap| {
        query_of(h[header::LOCATION].to_str().expect("loc"))["login_challenge"].clone()
    };

    let (_, headers, _) = env.call(get(&url)).await;
    let old = login_of(&headers);
    env.clock.advance_secs(301);
    let (status, _, body) = env
        .call(post(
            "/oauth2/authorize/accept",
            Enc::Json,
            Auth::Body,
            (LOGIN_ID, LOGIN_SECRET),
            &[("login_challenge", &old), ("subject", "u")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let (_, headers, _) = env.call(get(&url)).await;
    let fresh = login_of(&headers);
    let (status, _, body) = env
        .call(post(
            "/oauth2/authorize/reject",
            Enc::Json,
            Auth::Body,
            (LOGIN_ID, LOGIN_SECRET),
            &[("login_challenge", &fresh)],
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let q = query_of(body["redirect_to"].as_str().expect("to"));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "abc");
    assert!(!q.contains_key("code"));
}
