//! Discovery (RFC 8414), the JWKS (public keys only), key rotation, config diagnostics, and the
//! `new-client` helper.

mod oauth_support;

use http::header;
use oauth_support::*;
use portcullis::clock::ManualClock;

#[tokio::test]
async fn metadata_names_every_endpoint() {
    let env = Env::new();
    let (status, headers, m) = env
        .call(get("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .expect("cc")
            .contains("max-age")
    );
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(
        m["authorization_endpoint"],
        format!("{ISSUER}/oauth2/authorize")
    );
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/oauth2/revoke"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{ISSUER}/oauth2/introspect")
    );
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    let grants = m["grant_types_supported"].as_array().expect("grants");
    for g in ["client_credentials", "refresh_token", "authorization_code"] {
        assert!(grants.iter().any(|v| v == g), "{g}");
    }
    assert!(
        m["scopes_supported"]
            .as_array()
            .expect("scopes")
            .iter()
            .any(|s| s == "profile")
    );
}

#[tokio::test]
async fn jwks_has_every_key_public_only() {
    let env = Env::new();
    let (status, headers, jwks) = env.call(get("/.well-known/jwks.json")).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_TYPE], "application/jwk-set+json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    let k1 = keys.iter().find(|k| k["kid"] == "k1").expect("k1");
    assert_eq!(
        (k1["kty"].as_str(), k1["alg"].as_str(), k1["crv"].as_str()),
        (Some("EC"), Some("ES256"), Some("P-256"))
    );
    let k2 = keys.iter().find(|k| k["kid"] == "k2").expect("k2");
    assert_eq!(
        (k2["kty"].as_str(), k2["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    for k in keys {
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "private parameter {private} published"
            );
        }
    }
    // A token verifies with the published JWK alone.
    let body = cc_token(&env, None).await;
    let token = body["access_token"].as_str().expect("t");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).expect("jwk set");
    let jwk = set.find("k1").expect("k1");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[AUDIENCE]);
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).expect("verifies with the JWKS");
}

#[tokio::test]
async fn rotated_out_key_still_verifies_its_tokens() {
    let mut env = Env::new();
    let old = cc_token(&env, None).await;
    env.restart(Opts {
        active_kid: "k2",
        ..Opts::default()
    });
    let new = cc_token(&env, None).await;
    for (b, kid) in [(&old, "k1"), (&new, "k2")] {
        let t = b["access_token"].as_str().expect("t");
        assert_eq!(
            jsonwebtoken::decode_header(t).expect("h").kid.as_deref(),
            Some(kid)
        );
        verify_with_keys(env.svc(), t);
        let (_, _, i) = env
            .call(post(
                "/oauth2/introspect",
                Enc::Form,
                Auth::Basic,
                (SVC_ID, SVC_SECRET),
                &[("token", t)],
            ))
            .await;
        assert_eq!(i["active"], true, "{kid}");
    }
    // verification_keys exposes kid and a pinned algorithm for both.
    let keys = env.svc().verification_keys();
    let mut kids: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.alg)).collect();
    kids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kids,
        vec![
            ("k1".to_string(), jsonwebtoken::Algorithm::ES256),
            ("k2".to_string(), jsonwebtoken::Algorithm::RS256)
        ]
    );
}

#[test]
fn config_problems_are_all_reported_with_key_paths() {
    let dir = TempDir::new();
    write_keys(dir.path());
    let text = config_text(&Opts::default())
        .replace("access_token_ttl = \"1h\"", "access_token_ttl = \"1 hour\"")
        .replace("issuer = \"https://auth.example.test\"", "issuer = \"auth.example.test\"")
        .replace("private_key_file = \"k2.pem\"", "private_key_file = \"missing.pem\"")
        .replace(&sha256_hash(CC_SECRET), "cc-secret-in-the-clear")
        .replace("grant_types = [\"client_credentials\"]\nscopes = [\"read\"]\n\n[[oauth.clients]]\nclient_id = \"webapp\"", "grant_types = [\"password\"]\nscopes = [\"read\"]\n\n[[oauth.clients]]\nclient_id = \"webapp\"");
    let errs = try_build(dir.path(), &text, ManualClock::new(T0), None).expect_err("refused");
    let keys: Vec<&str> = errs.iter().map(|d| d.key.as_str()).collect();
    for want in [
        "oauth.issuer",
        "oauth.access_token_ttl",
        "oauth.signing_keys[1].private_key_file",
        "oauth.clients[1].secret_hash",
    ] {
        assert!(keys.contains(&want), "{want} missing from {keys:?}");
    }
    for d in &errs {
        assert!(d.line > 0 && !d.fix.is_empty(), "{d}");
        assert!(
            !d.to_string().contains("cc-secret-in-the-clear"),
            "secret echoed: {d}"
        );
    }
}

#[test]
fn two_active_keys_and_unknown_grant_are_refused() {
    let dir = TempDir::new();
    write_keys(dir.path());
    let text = config_text(&Opts::default())
        .replace("active = false", "active = true")
        .replace("grant_types = [\"client_credentials\"]\nscopes = [\"read\"]\n\n[[oauth.clients]]\nclient_id = \"webapp\"", "grant_types = [\"password\"]\nscopes = [\"read\"]\n\n[[oauth.clients]]\nclient_id = \"webapp\"");
    let errs = try_build(dir.path(), &text, ManualClock::new(T0), None).expect_err("refused");
    let keys: Vec<&str> = errs.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"oauth.signing_keys"), "{keys:?}");
    assert!(keys.contains(&"oauth.clients[1].grant_types"), "{keys:?}");
}

#[tokio::test]
async fn new_client_block_pastes_into_a_working_config() {
    let created =
        portcullis::oauth::new_client("Nightly CI", &["client_credentials"], &["read"], &[]);
    assert!(created.client_id.starts_with("pc_"));
    assert!(created.secret.len() >= 43);
    assert!(
        !created.config_block.contains(&created.secret),
        "the secret is never in the block"
    );
    assert!(created.config_block.contains("secret_hash = \"sha256:"));

    let dir = TempDir::new();
    write_keys(dir.path());
    let text = format!(
        "{}\n{}",
        config_text(&Opts::default()),
        created.config_block
    );
    let svc = try_build(dir.path(), &text, ManualClock::new(T0), None).expect("builds");
    let (status, _, body) = split(
        svc.handle(post(
            "/oauth2/token",
            Enc::Form,
            Auth::Basic,
            (&created.client_id, &created.secret),
            &[("grant_type", "client_credentials")],
        ))
        .await,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read");
}

#[test]
fn no_oauth_section_means_no_service_and_no_diagnostics() {
    let text = "[server]\nlisten = \"127.0.0.1:0\"\n";
    let dir = TempDir::new();
    match try_build(dir.path(), text, ManualClock::new(T0), None) {
        Err(d) => assert!(d.is_empty(), "{d:?}"),
        Ok(_) => panic!("no service expected"),
    }
}
