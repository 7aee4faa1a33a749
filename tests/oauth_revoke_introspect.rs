//! Revocation (RFC 7009) and introspection (RFC 7662): access tokens by jti until exp, refresh
//! tokens by family, unknown tokens, other clients' tokens, expiry, and suspended clients.

mod oauth_support;

use oauth_support::*;

async fn introspect(env: &Env, client: (&str, &str), token: &str) -> serde_json::Value {
    let (status, headers, body) = env
        .call(post(
            "/oauth2/introspect",
            Enc::Form,
            Auth::Basic,
            client,
            &[("token", token)],
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
    body
}

async fn revoke(
    env: &Env,
    enc: Enc,
    auth: Auth,
    client: (&str, &str),
    token: &str,
) -> (u16, serde_json::Value) {
    let (status, _, body) = env
        .call(post(
            "/oauth2/revoke",
            enc,
            auth,
            client,
            &[("token", token)],
        ))
        .await;
    (status, body)
}

const SVC: (&str, &str) = (SVC_ID, SVC_SECRET);

#[tokio::test]
async fn introspect_active_access_and_refresh_tokens() {
    let env = Env::new();
    let body = cc_token(&env, Some("read")).await;
    let at = body["access_token"].as_str().expect("t");
    let i = introspect(&env, SVC, at).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["scope"], "read");
    assert_eq!(i["client_id"], SVC_ID);
    assert_eq!(i["sub"], SVC_ID);
    assert_eq!(i["exp"], T0 + 3600);
    assert_eq!(i["token_type"], "Bearer");
    let i = introspect(&env, SVC, body["refresh_token"].as_str().expect("r")).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "refresh_token");
}

#[tokio::test]
async fn introspect_invalid_expired_and_foreign_tokens_are_inactive() {
    let env = Env::new();
    let inactive = serde_json::json!({"active": false});
    assert_eq!(introspect(&env, SVC, "garbage").await, inactive);
    assert_eq!(introspect(&env, SVC, "prt_unknown").await, inactive);
    let body = cc_token(&env, None).await;
    let at = body["access_token"].as_str().expect("t");
    // Another client may not read it.
    assert_eq!(introspect(&env, (CC_ID, CC_SECRET), at).await, inactive);
    // Tampered signature.
    let mut bad = at.to_string();
    bad.pop();
    bad.push(if at.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(introspect(&env, SVC, &bad).await, inactive);
    // Expired on the manual clock.
    env.clock.advance_secs(3600);
    assert_eq!(introspect(&env, SVC, at).await, inactive);
}

#[tokio::test]
async fn introspect_requires_client_authentication() {
    let env = Env::new();
    let (status, headers, body) = env
        .call(post(
            "/oauth2/introspect",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, "bad"),
            &[("token", "x")],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(headers.get(http::header::WWW_AUTHENTICATE).is_some());
}

#[tokio::test]
async fn revoking_an_access_token_refuses_its_jti_until_exp() {
    let env = Env::new();
    for (enc, auth) in STYLES {
        let body = cc_token(&env, None).await;
        let at = body["access_token"].as_str().expect("t");
        let claims = verify_with_keys(env.svc(), at);
        let (status, _) = revoke(&env, enc, auth, SVC, at).await;
        assert_eq!(status, 200);
        assert_eq!(introspect(&env, SVC, at).await["active"], false);
        let jti = claims["jti"].as_str().expect("jti").to_string();
        let seen = env.revoked.lock().expect("lock").clone();
        assert!(
            seen.contains(&(jti.clone(), claims["exp"].as_u64().expect("exp"))),
            "{seen:?}"
        );
        // The revocation is in the store for verifiers built later.
        let stored = env.svc().revoked_jtis().await.expect("store");
        assert!(stored.iter().any(|a| a.jti == jti));
        // The refresh token of the same grant is untouched by an access-token revocation.
        assert_eq!(
            introspect(&env, SVC, body["refresh_token"].as_str().expect("r")).await["active"],
            true
        );
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_the_family() {
    let env = Env::new();
    let first = cc_token(&env, None).await;
    let (_, _, second) = env
        .call(refresh_req(
            first["refresh_token"].as_str().expect("r"),
            Enc::Form,
            Auth::Basic,
        ))
        .await;
    let r2 = second["refresh_token"].as_str().expect("r2");
    let (status, _) = revoke(&env, Enc::Json, Auth::Body, SVC, r2).await;
    assert_eq!(status, 200);
    let (status, _, body) = env.call(refresh_req(r2, Enc::Form, Auth::Basic)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Both access tokens of the family are revoked too.
    for b in [&first, &second] {
        assert_eq!(
            introspect(&env, SVC, b["access_token"].as_str().expect("t")).await["active"],
            false
        );
    }
    assert_eq!(env.revoked_jtis().len(), 2);
}

#[tokio::test]
async fn revoking_unknown_or_foreign_tokens_answers_200_and_changes_nothing() {
    let env = Env::new();
    assert_eq!(
        revoke(&env, Enc::Form, Auth::Basic, SVC, "prt_unknown")
            .await
            .0,
        200
    );
    assert_eq!(
        revoke(&env, Enc::Form, Auth::Basic, SVC, "not-a-token")
            .await
            .0,
        200
    );
    let body = cc_token(&env, None).await;
    let at = body["access_token"].as_str().expect("t");
    let rt = body["refresh_token"].as_str().expect("r");
    assert_eq!(
        revoke(&env, Enc::Form, Auth::Basic, (CC_ID, CC_SECRET), at)
            .await
            .0,
        200
    );
    assert_eq!(
        revoke(&env, Enc::Form, Auth::Basic, (CC_ID, CC_SECRET), rt)
            .await
            .0,
        200
    );
    assert_eq!(introspect(&env, SVC, at).await["active"], true);
    assert_eq!(introspect(&env, SVC, rt).await["active"], true);
    assert!(env.revoked_jtis().is_empty());
}

#[tokio::test]
async fn revoke_requires_client_authentication_and_a_token() {
    let env = Env::new();
    let (status, body) = revoke(&env, Enc::Form, Auth::None, SVC, "x").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _, body) = env
        .call(post("/oauth2/revoke", Enc::Form, Auth::Basic, SVC, &[]))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let mut env = Env::new();
    let body = cc_token(&env, None).await;
    let at = body["access_token"].as_str().expect("t").to_string();
    revoke(&env, Enc::Form, Auth::Basic, SVC, &at).await;
    env.restart(Opts::default());
    assert_eq!(introspect(&env, SVC, &at).await["active"], false);
    assert_eq!(env.svc().revoked_jtis().await.expect("store").len(), 1);
    // Expired revocations are not handed out, and purge removes them.
    env.clock.advance_secs(3601);
    assert!(env.svc().revoked_jtis().await.expect("store").is_empty());
    assert!(env.svc().purge_expired().await.expect("purge") >= 1);
}

#[tokio::test]
async fn a_suspended_clients_tokens_become_inactive_and_cannot_refresh() {
    let mut env = Env::new();
    let body = cc_token(&env, None).await;
    let at = body["access_token"].as_str().expect("t").to_string();
    let rt = body["refresh_token"].as_str().expect("r").to_string();
    env.restart(Opts {
        suspend_svc: true,
        ..Opts::default()
    });
    assert!(
        !env.svc().client_active(SVC_ID),
        "the verifier is told to refuse its tokens"
    );
    // The client can no longer authenticate, so it can neither refresh nor introspect...
    let (status, _, body) = env.call(refresh_req(&rt, Enc::Form, Auth::Basic)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // ...and once reactivated, the token still works: suspension did not destroy the grant.
    env.restart(Opts::default());
    assert!(env.svc().client_active(SVC_ID));
    assert_eq!(introspect(&env, SVC, &at).await["active"], true);
    let (status, _, _) = env.call(refresh_req(&rt, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200);
}
