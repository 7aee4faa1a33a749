//! Refresh tokens: rotation in every encoding and auth style, reuse detection revoking the family,
//! client binding, expiry on the manual clock, concurrent refresh, and restart persistence.

mod oauth_support;

use std::sync::Arc;

use oauth_support::*;

fn refresh_of(body: &serde_json::Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string()
}

#[tokio::test]
async fn rotation_in_every_encoding_and_auth_style() {
    let env = Env::new();
    let mut current = refresh_of(&cc_token(&env, Some("read")).await);
    for (enc, auth) in STYLES {
        env.clock.advance_secs(10);
        let (status, headers, body) = env.call(refresh_req(&current, enc, auth)).await;
        assert_eq!(status, 200, "{enc:?}/{auth:?}: {body}");
        assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
        let next = refresh_of(&body);
        assert_ne!(next, current, "the refresh token rotates");
        assert_eq!(body["scope"], "read", "the grant's scope is kept");
        let claims = verify_with_keys(env.svc(), body["access_token"].as_str().expect("t"));
        assert_eq!(claims["sub"], SVC_ID);
        assert_eq!(claims["iat"], env.clock_now());
        current = next;
    }
}

trait ClockNow {
    fn clock_now(&self) -> u64;
}
impl ClockNow for Env {
    fn clock_now(&self) -> u64 {
        use portcullis::clock::Clock;
        self.clock.unix_secs()
    }
}

#[tokio::test]
async fn reuse_of_a_spent_token_revokes_the_whole_family() {
    let env = Env::new();
    let first = cc_token(&env, None).await;
    let r1 = refresh_of(&first);
    let (status, _, second) = env.call(refresh_req(&r1, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200);
    let r2 = refresh_of(&second);

    // An attacker replays r1: refused, and the family is revoked.
    let (status, _, body) = env.call(refresh_req(&r1, Enc::Json, Auth::Body)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already used"))
    );

    // The legitimate holder's r2 now fails too.
    let (status, _, body) = env.call(refresh_req(&r2, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    // The access tokens issued from the family were handed to the verifier hook.
    let jti = |b: &serde_json::Value| {
        verify_with_keys(env.svc(), b["access_token"].as_str().expect("t"))["jti"]
            .as_str()
            .expect("jti")
            .to_string()
    };
    let revoked = env.revoked_jtis();
    assert!(revoked.contains(&jti(&first)), "{revoked:?}");
    assert!(revoked.contains(&jti(&second)), "{revoked:?}");
    // And introspection agrees.
    let (_, _, intro) = env
        .call(post(
            "/oauth2/introspect",
            Enc::Form,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[("token", second["access_token"].as_str().expect("t"))],
        ))
        .await;
    assert_eq!(intro, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client_and_not_burnt_by_another() {
    let env = Env::new();
    let r = refresh_of(&cc_token(&env, None).await);
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (WEB_ID, WEB_SECRET),
            &[("grant_type", "refresh_token"), ("refresh_token", &r)],
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    // The owner can still use it.
    let (status, _, _) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_invalid_grant() {
    let env = Env::new();
    let (status, _, body) = env
        .call(refresh_req("prt_nope", Enc::Form, Auth::Basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let r = refresh_of(&cc_token(&env, None).await);
    env.clock.advance_secs(30 * 86_400 - 1);
    let (status, _, body) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200, "one second before expiry: {body}");
    let r2 = refresh_of(&body);
    env.clock.advance_secs(30 * 86_400);
    let (status, _, body) = env.call(refresh_req(&r2, Enc::Form, Auth::Basic)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired"))
    );
}

#[tokio::test]
async fn refresh_scope_may_narrow_but_not_widen() {
    let env = Env::new();
    let r = refresh_of(&cc_token(&env, Some("read")).await);
    let (status, _, body) = env
        .call(post(
            "/oauth2/token",
            Enc::Json,
            Auth::Basic,
            (SVC_ID, SVC_SECRET),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r),
                ("scope", "read write"),
            ],
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // Not consumed by the refused attempt.
    let (status, _, body) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refresh_with_one_token_exactly_one_succeeds() {
    let env = Arc::new(Env::new());
    for round in 0..5 {
        let r = refresh_of(&cc_token(&env, None).await);
        let mut tasks = Vec::new();
        for i in 0..2 {
            let env = env.clone();
            let r = r.clone();
            let (enc, auth) = STYLES[i % 4];
            tasks.push(tokio::spawn(async move {
                env.call(refresh_req(&r, enc, auth)).await
            }));
        }
        let mut ok = 0;
        let mut refused = 0;
        for t in tasks {
            let (status, _, body) = t.await.expect("task");
            match status {
                200 => ok += 1,
                400 => {
                    assert_eq!(body["error"], "invalid_grant");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!((ok, refused), (1, 1), "round {round}");
    }
}

#[tokio::test]
async fn restart_keeps_refresh_tokens_and_they_work_once() {
    let mut env = Env::new();
    let r = refresh_of(&cc_token(&env, None).await);
    env.restart(Opts::default());
    let (status, _, body) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 200, "{body}");
    let r2 = refresh_of(&body);

    env.restart(Opts::default());
    let (status, _, body) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 400, "the spent token stays spent across restarts");
    assert_eq!(body["error"], "invalid_grant");
    let (status, _, _) = env.call(refresh_req(&r2, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 400, "and its reuse revoked the family, durably");
}

#[tokio::test]
async fn store_file_is_where_the_config_says() {
    let env = Env::new();
    cc_token(&env, None).await;
    assert!(env.dir.path().join("state/portcullis.db").is_file());
}

#[tokio::test]
async fn reload_keeps_the_open_store_and_its_tokens() {
    use portcullis::config::diagnostic::{Diagnostics, Source};
    let env = Env::new();
    let r = refresh_of(&cc_token(&env, None).await);
    // A reloaded config where k2 signs: built from the running service, sharing its store.
    let text = config_text(&Opts {
        active_kid: "k2",
        ..Opts::default()
    });
    let raw: portcullis::config::raw::RawConfig = toml::from_str(&text).expect("raw");
    let source = Source::new(env.dir.path().join("portcullis.toml"), text.clone());
    let mut diags = Diagnostics::new(&source);
    let reloaded = env
        .svc()
        .reload(&raw, &mut diags, env.clock.clone(), None)
        .expect("reload builds");
    assert!(diags.is_empty());
    let (status, _, body) = split(
        reloaded
            .handle(refresh_req(&r, Enc::Form, Auth::Basic))
            .await,
    );
    assert_eq!(status, 200, "{body}");
    let t = body["access_token"].as_str().expect("t");
    assert_eq!(
        jsonwebtoken::decode_header(t).expect("h").kid.as_deref(),
        Some("k2")
    );
    // The old service sees the rotation (same store).
    let (status, _, _) = env.call(refresh_req(&r, Enc::Form, Auth::Basic)).await;
    assert_eq!(status, 400);

    // Moving the store is refused with a diagnostic.
    let moved = text.replace("state/portcullis.db", "elsewhere.db");
    let raw: portcullis::config::raw::RawConfig = toml::from_str(&moved).expect("raw");
    let source = Source::new(env.dir.path().join("portcullis.toml"), moved.clone());
    let mut diags = Diagnostics::new(&source);
    assert!(
        env.svc()
            .reload(&raw, &mut diags, env.clock.clone(), None)
            .is_none()
    );
    assert_eq!(diags.into_vec()[0].key, "oauth.store");
}
