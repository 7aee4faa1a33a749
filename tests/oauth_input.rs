//! Token-service input rules and client kinds, over the wire: credentials in the URL, repeated
//! parameters (form and JSON), non-string JSON values, the body and parameter caps, the RFC 6749
//! section 5.2 character set of `error_description`; public clients (no secret, PKCE always,
//! rotation) and the unchanged default (PKCE required for confidential clients).

mod recipe_support;
use recipe_support::*;
use sha2::Digest;

const CONF: (&str, &str) = ("conf", "conf-secret-0123456789abcdefghijklmnopqrstuv");
const LOGIN: (&str, &str) = ("login", "login-secret-0123456789abcdefghijklmnopqrstuv");
const PUBLIC: &str = "spa";
const CB: &str = "https://spa.example/cb";

fn hash(s: &str) -> String {
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn config() -> String {
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/oauth-es256.pem");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "oauth"
[classes.oauth]
errors = "oauth"
[upstreams.tokens]
kind = "oauth"
[[routes]]
path = "/oauth2/"
class = "oauth"
upstream = "tokens"

[oauth]
issuer = "https://gw.test"
audience = "api"
store = "store.db"
login_url = "https://login.test/start"

[[oauth.signing_keys]]
kid = "k"
private_key_file = {key:?}
active = true

[[oauth.clients]]
client_id = "{conf}"
secret_hash = "sha256:{conf_hash}"
grant_types = ["client_credentials", "authorization_code", "refresh_token"]
scopes = ["read"]
redirect_uris = ["{CB}"]

[[oauth.clients]]
client_id = "{PUBLIC}"
token_endpoint_auth_method = "none"
grant_types = ["authorization_code", "refresh_token"]
scopes = ["read"]
redirect_uris = ["{CB}"]

[[oauth.clients]]
client_id = "{login}"
secret_hash = "sha256:{login_hash}"
login_provider = true
"#,
        conf = CONF.0,
        conf_hash = hash(CONF.1),
        login = LOGIN.0,
        login_hash = hash(LOGIN.1),
    )
}

async fn gateway() -> TestGateway {
    recipe_support::gateway(&config()).await
}

async fn post(gw: &TestGateway, path: &str, ctype: &str, body: String) -> (u16, serde_json::Value) {
    let resp = client()
        .post(gw.url(path))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

const FORM: &str = "application/x-www-form-urlencoded";

fn conf_cc() -> String {
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", CONF.0),
        ("client_secret", CONF.1),
    ])
}

#[tokio::test]
async fn client_credentials_in_the_url_are_refused() {
    let gw = gateway().await;
    let path = with_query("/oauth2/token", &[("client_secret", CONF.1)]);
    let (status, e) = post(&gw, &path, FORM, conf_cc()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(!e["error_description"].as_str().unwrap().contains(CONF.1));
    let path = with_query("/oauth2/token", &[("client_id", CONF.0)]);
    let (status, _) = post(&gw, &path, FORM, conf_cc()).await;
    assert_eq!(status, 400);
    // The same request without the query succeeds.
    assert_eq!(post(&gw, "/oauth2/token", FORM, conf_cc()).await.0, 200);
    // A secret in an authorize URL is refused too.
    let url = with_query(
        "/oauth2/authorize",
        &[("client_id", CONF.0), ("client_secret", CONF.1)],
    );
    let resp = client().get(gw.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn repeated_and_non_string_parameters_are_invalid_request() {
    let gw = gateway().await;
    let repeated = format!("{}&grant_type=client_credentials", conf_cc());
    let (status, e) = post(&gw, "/oauth2/token", FORM, repeated).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("grant_type")
    );
    let dup_json = format!(
        r#"{{"grant_type":"client_credentials","client_id":"{}","client_secret":"{}","client_id":"other"}}"#,
        CONF.0, CONF.1
    );
    let (status, e) = post(&gw, "/oauth2/token", "application/json", dup_json).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    for value in ["42", "true", "null", "[\"read\"]", "{\"a\":1}"] {
        let body = format!(
            r#"{{"grant_type":"client_credentials","client_id":"{}","client_secret":"{}","scope":{value}}}"#,
            CONF.0, CONF.1
        );
        let (status, e) = post(&gw, "/oauth2/token", "application/json", body).await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_request")),
            "{value}"
        );
    }
    let (status, _) = post(&gw, "/oauth2/token", "application/json", "[1]".into()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn body_and_parameter_caps() {
    let gw = gateway().await;
    // The token service's own cap (16 KiB by default) answers 413, far below the route's 10 MiB.
    let big = format!("{}&pad={}", conf_cc(), "a".repeat(17 * 1024));
    let (status, e) = post(&gw, "/oauth2/token", FORM, big).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let mut many = conf_cc();
    for i in 0..40 {
        many.push_str(&format!("&p{i}=x"));
    }
    let (status, e) = post(&gw, "/oauth2/token", FORM, many).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn error_description_never_echoes_characters_outside_rfc6749() {
    let gw = gateway().await;
    let allowed = |c: char| matches!(c, ' '..='!' | '#'..='[' | ']'..='~');
    let nasty = "x\"y\\z\u{e9}\u{7}<\n>";
    for (name, value) in [("grant_type", nasty), ("scope", nasty)] {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", CONF.0),
            ("client_secret", CONF.1),
        ];
        pairs.retain(|(k, _)| *k != name);
        pairs.push((name, value));
        let (status, e) = post(&gw, "/oauth2/token", FORM, form(&pairs)).await;
        assert_eq!(status, 400);
        let d = e["error_description"].as_str().unwrap();
        assert!(d.chars().all(allowed), "{name}: {d:?}");
    }
    let body = format!(r#"{{"{nasty}":1}}"#).replace('\n', "\\n");
    let (_, e) = post(&gw, "/oauth2/token", "application/json", body).await;
    let d = e["error_description"].as_str().unwrap();
    assert!(d.chars().all(allowed), "{d:?}");
}

fn authorize(client_id: &str, challenge: Option<&str>) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("state", "s1"),
    ];
    if let Some(c) = challenge {
        pairs.push(("code_challenge", c));
        pairs.push(("code_challenge_method", "S256"));
    }
    with_query("/oauth2/authorize", &pairs)
}

async fn redirect_error(gw: &TestGateway, url: &str) -> String {
    let resp = client().get(gw.url(url)).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(CB), "{location}");
    query_of(&location)["error"].clone()
}

#[tokio::test]
async fn pkce_stays_required_by_default_and_always_for_public_clients() {
    let gw = gateway().await;
    assert_eq!(
        redirect_error(&gw, &authorize(CONF.0, None)).await,
        "invalid_request"
    );
    assert_eq!(
        redirect_error(&gw, &authorize(PUBLIC, None)).await,
        "invalid_request"
    );
}

#[tokio::test]
async fn public_client_code_flow_without_a_secret_and_rotating_refresh() {
    let gw = gateway().await;
    let (verifier, challenge) = pkce();
    let to = login(&gw, &authorize(PUBLIC, Some(&challenge)), LOGIN, "u1").await;
    let code = query_of(&to)["code"].clone();
    let exchange = |extra: Vec<(&'static str, String)>| {
        let mut pairs: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", CB.into()),
            ("code_verifier", verifier.clone()),
        ];
        pairs.extend(extra);
        form(
            &pairs
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    // A public client presenting a secret is invalid_client (the code is not spent).
    let body = exchange(vec![
        ("client_id", PUBLIC.into()),
        ("client_secret", "guess".into()),
    ]);
    let (status, e) = post(&gw, "/oauth2/token", FORM, body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    let (status, t) = post(
        &gw,
        "/oauth2/token",
        FORM,
        exchange(vec![("client_id", PUBLIC.into())]),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let refresh_body = |token: &str| {
        form(&[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC),
            ("refresh_token", token),
        ])
    };
    let (status, t2) = post(&gw, "/oauth2/token", FORM, refresh_body(&refresh)).await;
    assert_eq!(status, 200);
    assert_ne!(t2["refresh_token"].as_str().unwrap(), refresh, "rotated");
    let (status, e) = post(&gw, "/oauth2/token", FORM, refresh_body(&refresh)).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    // Public clients cannot introspect.
    let body = form(&[("client_id", PUBLIC), ("token", &refresh)]);
    let (status, e) = post(&gw, "/oauth2/introspect", FORM, body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn a_confidential_client_without_its_secret_is_invalid_client() {
    let gw = gateway().await;
    let body = form(&[("grant_type", "client_credentials"), ("client_id", CONF.0)]);
    let (status, e) = post(&gw, "/oauth2/token", FORM, body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    // client_credentials is never allowed for a public client.
    let body = form(&[("grant_type", "client_credentials"), ("client_id", PUBLIC)]);
    let (status, e) = post(&gw, "/oauth2/token", FORM, body).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let meta = json(client().get(gw.url("/oauth2/token")).send().await.unwrap()).await;
    assert_eq!(meta["error"], "method_not_allowed");
}
