//! Bearer JWT authentication through `Authenticator`, built from TOML configs with keys generated at test time.

mod auth_support;

use auth_support::*;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::auth::{AuthError, AuthMethod, AuthPolicy};
use serde_json::json;

#[tokio::test]
async fn every_algorithm_is_accepted_with_its_key() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-all");
    let rsa = rsa_key();
    let es256 = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let es384 = ec_key(&rcgen::PKCS_ECDSA_P384_SHA384);
    let ed = ed_key();
    let es_jwk = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ed_jwk_key = ed_key();
    // A certificate (not a bare public key) for an EC key.
    let cert_key = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let cert = rcgen::CertificateParams::new(vec!["issuer.test".to_string()])
        .expect("params")
        .self_signed(&cert_key.pair)
        .expect("cert");
    write(&dir, "rsa.pem", &rsa.public_pem);
    write(&dir, "es256.pem", &es256.public_pem);
    write(&dir, "es384.pem", &es384.public_pem);
    write(&dir, "ed.pem", &ed.public_pem);
    write(&dir, "cert.pem", cert.pem());
    write(&dir, "rsa.jwk", rsa_jwk("rsa-jwk", "RS256").to_string());
    write(
        &dir,
        "es.jwk",
        ec_jwk(&es_jwk, "es-jwk", "ES256", "P-256").to_string(),
    );
    write(&dir, "ed.jwk", ed_jwk(&ed_jwk_key, "ed-jwk").to_string());
    write(&dir, "hs256", &SECRET[..32]);
    write(&dir, "hs384", [7u8; 48]);
    write(&dir, "hs512", [9u8; 64]);
    let mut cfg = String::from("[jwt]\n");
    let mut cases: Vec<(Algorithm, &str, EncodingKey)> = vec![
        (
            Algorithm::HS256,
            "hs256",
            EncodingKey::from_secret(&SECRET[..32]),
        ),
        (
            Algorithm::HS384,
            "hs384",
            EncodingKey::from_secret(&[7u8; 48]),
        ),
        (
            Algorithm::HS512,
            "hs512",
            EncodingKey::from_secret(&[9u8; 64]),
        ),
    ];
    for (alg, kid, _) in &cases {
        cfg +=
            &format!("[[jwt.keys]]\nkid = \"{kid}\"\nalg = \"{alg:?}\"\nsecret = \"file:{kid}\"\n");
    }
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        cfg += &format!("[[jwt.keys]]\nkid = \"{alg}\"\nalg = \"{alg}\"\npem_file = \"rsa.pem\"\n");
    }
    cfg += r#"
[[jwt.keys]]
kid = "es256"
alg = "ES256"
pem_file = "es256.pem"
[[jwt.keys]]
kid = "es384"
alg = "ES384"
pem_file = "es384.pem"
[[jwt.keys]]
kid = "ed"
alg = "EdDSA"
pem_file = "ed.pem"
[[jwt.keys]]
kid = "cert"
alg = "ES256"
pem_file = "cert.pem"
[[jwt.keys]]
kid = "rsa-jwk"
alg = "RS256"
jwk_file = "rsa.jwk"
[[jwt.keys]]
kid = "es-jwk"
alg = "ES256"
jwk_file = "es.jwk"
[[jwt.keys]]
kid = "ed-jwk"
alg = "EdDSA"
jwk_file = "ed.jwk"
"#;
    let auth = build(&dir, &cfg, &state);
    let rsa_enc = || EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).expect("rsa");
    cases.push((Algorithm::RS256, "RS256", rsa_enc()));
    cases.push((Algorithm::RS384, "RS384", rsa_enc()));
    cases.push((Algorithm::RS512, "RS512", rsa_enc()));
    cases.push((Algorithm::PS256, "PS256", rsa_enc()));
    cases.push((Algorithm::PS384, "PS384", rsa_enc()));
    cases.push((Algorithm::PS512, "PS512", rsa_enc()));
    cases.push((Algorithm::ES256, "es256", es256.encoding.clone()));
    cases.push((Algorithm::ES384, "es384", es384.encoding.clone()));
    cases.push((Algorithm::EdDSA, "ed", ed.encoding.clone()));
    cases.push((Algorithm::ES256, "cert", cert_key.encoding.clone()));
    cases.push((Algorithm::RS256, "rsa-jwk", rsa_enc()));
    cases.push((Algorithm::ES256, "es-jwk", es_jwk.encoding.clone()));
    cases.push((Algorithm::EdDSA, "ed-jwk", ed_jwk_key.encoding.clone()));
    for (alg, kid, key) in &cases {
        let token = mint(*alg, Some(kid), key, &claims());
        let p = auth
            .authenticate(AuthPolicy::Bearer, &bearer(&token))
            .await
            .unwrap_or_else(|e| panic!("{alg:?}/{kid}: {e}"))
            .expect("principal");
        assert_eq!(p.subject(), "user-1");
        assert_eq!(p.client_id(), Some("app-1"));
        assert_eq!(p.method(), AuthMethod::Bearer);
        // The same token signed for another key id is refused.
        let other = if *kid == "es256" { "es-jwk" } else { "es256" };
        let wrong = mint(*alg, Some(other), key, &claims());
        assert!(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&wrong))
                .await
                .is_err(),
            "{alg:?}/{kid} accepted under kid {other}"
        );
    }
}

#[tokio::test]
async fn env_secret_and_kidless_single_key() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-env");
    // SAFETY: the variable name is unique to this test; nothing else reads it.
    unsafe {
        std::env::set_var(
            "PORTCULLIS_TEST_JWT_SECRET_1",
            std::str::from_utf8(SECRET).unwrap(),
        )
    };
    let auth = build(
        &dir,
        "[jwt]\n[[jwt.keys]]\nalg = \"HS256\"\nsecret = \"env:PORTCULLIS_TEST_JWT_SECRET_1\"\n",
        &state,
    );
    let key = EncodingKey::from_secret(SECRET);
    for kid in [None, Some("anything")] {
        let t = mint(Algorithm::HS256, kid, &key, &claims());
        assert!(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (_c, auth) = hs_setup();
    for alg in ["none", "None", "NONE"] {
        let h = b64(json!({"alg": alg, "kid": "hs"}).to_string().as_bytes());
        let p = b64(claims().to_string().as_bytes());
        for token in [format!("{h}.{p}."), format!("{h}.{p}.c2ln")] {
            let why = invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&token)).await);
            assert!(why.contains("alg none"), "{why}");
        }
    }
}

#[tokio::test]
async fn rs256_key_refuses_hs256_token_signed_with_its_public_pem() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-confusion");
    let rsa = rsa_key();
    write(&dir, "rsa.pem", &rsa.public_pem);
    let auth = build(
        &dir,
        "[jwt]\n[[jwt.keys]]\nkid = \"r\"\nalg = \"RS256\"\npem_file = \"rsa.pem\"\n",
        &state,
    );
    for kid in [Some("r"), None] {
        let forged = mint(
            Algorithm::HS256,
            kid,
            &EncodingKey::from_secret(rsa.public_pem.as_bytes()),
            &claims(),
        );
        let why = invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&forged))
                .await,
        );
        assert!(why.contains("algorithm") || why.contains("kid"), "{why}");
    }
    let good = mint(Algorithm::RS256, Some("r"), &rsa.encoding, &claims());
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&good))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn tampered_payload_and_signature_are_refused() {
    let (_c, auth) = hs_setup();
    let token = hs(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c["scope"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&tampered))
                .await
        ),
        "signature invalid"
    );
    let mut sig = parts[2].to_string();
    let last = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(last);
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], sig);
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&bad_sig))
                .await
        ),
        "signature invalid"
    );
}

#[tokio::test]
async fn wrong_kid_is_refused() {
    let (_c, auth) = hs_setup();
    let t = mint(
        Algorithm::HS256,
        Some("other"),
        &EncodingKey::from_secret(SECRET),
        &claims(),
    );
    assert_eq!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&t)).await),
        "unknown signing key (kid)"
    );
    // Without kid the token is tried against its issuer's keys of its algorithm: the one
    // HS256 key verifies it; a kid-less token signed with another secret is refused.
    let no_kid = mint(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET),
        &claims(),
    );
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&no_kid))
            .await
            .is_ok()
    );
    let forged = mint(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another-secret-another-secret-another-secret!!"),
        &claims(),
    );
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&forged))
                .await
        ),
        "signature invalid"
    );
}

#[tokio::test]
async fn claim_checks() {
    let (_c, auth) = hs_setup();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("exp", json!(NOW - 3600), "token expired"),
        ("nbf", json!(NOW + 3600), "token not yet valid (nbf)"),
        ("iss", json!("https://evil.test"), "issuer not accepted"),
        (
            "iss",
            json!(["https://issuer.test"]),
            "token claim iss must be a single string",
        ),
        ("aud", json!("api://other"), "audience not accepted"),
        (
            "aud",
            json!(["api://a", "api://b"]),
            "audience not accepted",
        ),
        ("exp", json!("tomorrow"), "token claim exp must be a number"),
    ];
    for (claim, value, expected) in cases {
        let mut c = claims();
        c[claim] = value;
        let why = invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
                .await,
        );
        assert_eq!(why, expected, "{claim}");
    }
    for (claim, expected) in [
        ("exp", "token has no expiry (exp)"),
        ("iss", "token has no issuer (iss)"),
        ("aud", "token has no audience (aud)"),
    ] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        let why = invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
                .await,
        );
        assert_eq!(why, expected);
    }
    // aud as an array with one accepted value is fine; azp stands in for client_id.
    let mut c = claims();
    c["aud"] = json!(["api://other", "api://gateway"]);
    c.as_object_mut().unwrap().remove("client_id");
    c["azp"] = json!("azp-client");
    let p = auth
        .authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.client_id(), Some("azp-client"));
}

#[tokio::test]
async fn leeway_boundary_on_the_manual_clock() {
    let (clock, auth) = hs_setup();
    let mut c = claims();
    c["exp"] = json!(NOW);
    c["nbf"] = json!(NOW + 30);
    let t = hs(&c);
    // nbf = now + 30 is inside the 30 s leeway; exp = now is valid until now + 30.
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_ok()
    );
    clock.advance_secs(29);
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_ok()
    );
    clock.advance_secs(1);
    assert_eq!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&t)).await),
        "token expired"
    );
    let mut early = claims();
    early["nbf"] = json!(NOW + 30 + 31);
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&hs(&early)))
                .await
        ),
        "token not yet valid (nbf)"
    );
}

#[tokio::test]
async fn leeway_and_require_exp_are_configurable() {
    let (clock, state) = state();
    let dir = temp_dir("jwt-leeway");
    write(&dir, "hs.secret", SECRET);
    let auth = build(
        &dir,
        "[jwt]\nleeway = \"5s\"\nrequire_exp = false\n[[jwt.keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret = \"file:hs.secret\"\n",
        &state,
    );
    let mut c = claims();
    c["exp"] = json!(NOW);
    let t = hs(&c);
    clock.advance_secs(4);
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_ok()
    );
    clock.advance_secs(1);
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&t))
            .await
            .is_err()
    );
    c.as_object_mut().unwrap().remove("exp");
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
            .await
            .is_ok()
    );
}

#[test]
fn config_problems_are_all_reported_with_positions() {
    let (_clock, state) = state();
    let dir = temp_dir("jwt-diag");
    write(&dir, "short.secret", "tooshort");
    write(&dir, "garbage.pem", "not a pem");
    let ec = ec_key(&rcgen::PKCS_ECDSA_P384_SHA384);
    write(&dir, "p384.pem", &ec.public_pem);
    let body = r#"[jwt]
leeway = "30 parsecs"
[[jwt.keys]]
alg = "none"
secret = "env:X"
[[jwt.keys]]
alg = "HS256"
secret = "inline-secret-in-config"
[[jwt.keys]]
alg = "HS256"
secret = "file:short.secret"
[[jwt.keys]]
alg = "RS256"
pem_file = "missing.pem"
[[jwt.keys]]
alg = "RS256"
pem_file = "garbage.pem"
[[jwt.keys]]
alg = "ES256"
pem_file = "p384.pem"
[[jwt.keys]]
alg = "ES256"
secret = "env:Y"
[[jwt.jwks]]
url = "ftp://nope"
min_refresh = "2h"
"#;
    let problems = try_build(&dir, body, &state).expect_err("refused");
    let all = problems.join("\n");
    for needle in [
        "jwt.leeway",
        "jwt.keys[0].alg",
        "jwt.keys[1].secret",
        "jwt.keys[2].secret",
        "jwt.keys[3].pem_file",
        "jwt.keys[4].pem_file",
        "jwt.keys[5].pem_file",
        "jwt.keys[6].secret",
        "jwt.jwks[0].url",
        "jwt.jwks[0].min_refresh",
    ] {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
    assert!(problems.len() >= 10, "{all}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("gateway.toml:") && p.contains("fix:")),
        "{all}"
    );
    assert!(
        !all.contains("inline-secret-in-config"),
        "secret echoed:\n{all}"
    );
    // line:col of the bad leeway value (line 5 after the 3-line [server] prefix).
    assert!(all.contains("gateway.toml:5:10: jwt.leeway"), "{all}");
}

#[test]
fn header_is_minted_as_expected() {
    // Guard for the helpers: a jsonwebtoken header with crit serializes it.
    let mut h = Header::new(Algorithm::HS256);
    h.crit = Some(vec!["b64".into()]);
    let t = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
    assert!(jsonwebtoken::decode_header(&t).unwrap().crit.is_some());
}

#[tokio::test]
async fn oversized_malformed_and_crit_tokens() {
    let (_c, auth) = hs_setup();
    let mut c = claims();
    c["pad"] = json!("x".repeat(9000));
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&hs(&c)))
                .await
        ),
        "token too large"
    );
    let good = hs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let bad_b64 = format!("{}~~.{}.{}", parts[0], parts[1], parts[2]);
    assert_eq!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&bad_b64))
                .await
        ),
        "token header is not valid base64url"
    );
    let bad_payload = format!("{}.%%%.{}", parts[0], parts[2]);
    // '%' is not a token character at all: the header is malformed.
    assert_eq!(
        auth.authenticate(AuthPolicy::Bearer, &bearer_raw(&bad_payload))
            .await,
        Err(AuthError::InvalidAuthorizationFormat)
    );
    let two_parts = format!("{}.{}", parts[0], parts[1]);
    assert!(
        invalid_why(
            auth.authenticate(AuthPolicy::Bearer, &bearer(&two_parts))
                .await
        )
        .contains("not a JWT")
    );
    let crit = mint_raw_hs256(
        &json!({"alg": "HS256", "kid": "hs", "crit": ["urn:example:unknown"], "urn:example:unknown": true}),
        &claims(),
        SECRET,
    );
    assert!(
        invalid_why(auth.authenticate(AuthPolicy::Bearer, &bearer(&crit)).await).contains("crit")
    );
    // The same construction without crit is accepted (the refusal is the crit header).
    let plain = mint_raw_hs256(&json!({"alg": "HS256", "kid": "hs"}), &claims(), SECRET);
    assert!(
        auth.authenticate(AuthPolicy::Bearer, &bearer(&plain))
            .await
            .is_ok()
    );
}

fn bearer_raw(value_after_scheme: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {value_after_scheme}")).unwrap(),
    );
    h
}
