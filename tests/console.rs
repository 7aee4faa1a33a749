//! The console over plain HTTP: every asset is served from the binary at `/console/` without a
//! token and with the strict CSP, `X-Frame-Options: DENY`, `nosniff` and `no-referrer`; every
//! module the page imports is served as JavaScript; assets revalidate by ETag; the API the
//! console calls still needs the operator token; the console is not on the public listener;
//! the dashboard's 429-per-class series is in `/metrics`; the shipped example config with the
//! README's demo operator token goes from start to a working client credential.

mod admin_api_support;
mod common;

use admin_api_support::*;
use common::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn assert_secured(h: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(h["content-security-policy"], CSP, "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert!(
        h.get("set-cookie").is_none(),
        "{what}: the console never sets a cookie"
    );
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = c.get(url).send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.text().await.unwrap())
}

/// The files `text` references as `src="..."`, `href="..."` or `from "./..."`.
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["src=\"", "href=\"", "from \"./"] {
        for part in text.split(marker).skip(1) {
            let name = part.split('"').next().unwrap_or("");
            if !name.starts_with('#') && !name.is_empty() && !name.contains('$') {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_page_and_every_asset_it_loads_are_served_without_a_token_with_the_security_headers() {
    let e = env().await;
    let base = format!("{}/console/", e.admin);
    let (s, h, html) = get(&e.c, &base).await;
    assert_eq!(s, 200);
    assert_secured(&h, "index");
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-store");
    assert!(html.contains("<script type=\"module\" src=\"app.js\"></script>"));
    // Walk everything the page loads, transitively: each is served, typed and secured.
    let mut todo = references(&html);
    let mut seen = Vec::new();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let (s, h, text) = get(&e.c, &format!("{base}{name}")).await;
        assert_eq!(s, 200, "{name}");
        assert_secured(&h, &name);
        assert_eq!(h["cache-control"], "no-cache", "{name}");
        assert!(h.contains_key("etag"), "{name}");
        let ct = h["content-type"].to_str().unwrap();
        match name.rsplit('.').next() {
            Some("js") => {
                assert_eq!(ct, "text/javascript; charset=utf-8");
                todo.extend(references(&text));
            }
            Some("css") => assert_eq!(ct, "text/css; charset=utf-8"),
            Some("svg") => assert_eq!(ct, "image/svg+xml"),
            other => panic!("unexpected asset {name} ({other:?})"),
        }
        for r in references(&text) {
            assert!(
                !r.contains("//"),
                "{name} loads {r}: no CDN, no network at run time"
            );
        }
        assert!(
            !text.contains("url(http"),
            "{name}: no external style resource"
        );
        seen.push(name);
    }
    for module in [
        "app.js",
        "api.js",
        "dashboard.js",
        "applications.js",
        "create.js",
        "detail.js",
        "audit.js",
    ] {
        assert!(
            seen.iter().any(|s| s == module),
            "{module} is loaded: {seen:?}"
        );
    }
    // The token goes in a header and in sessionStorage, never in a cookie.
    let (_, _, api) = get(&e.c, &format!("{base}api.js")).await;
    assert!(api.contains("Authorization") && api.contains("sessionStorage"));
    assert!(!api.contains("document.cookie"));
}

#[tokio::test]
async fn assets_revalidate_by_etag_and_odd_requests_get_clear_answers() {
    let e = env().await;
    let url = format!("{}/console/app.js", e.admin);
    let (_, h, body) = get(&e.c, &url).await;
    let tag = h["etag"].to_str().unwrap().to_string();
    let r =
        e.c.get(&url)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 304);
    assert_secured(r.headers(), "304");
    assert!(r.bytes().await.unwrap().is_empty());
    let r =
        e.c.get(&url)
            .header("if-none-match", "\"other\"")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), body);
    // /console redirects to /console/; unknown files are 404; changes are 405; all secured.
    let r = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console", e.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), &r.headers()["location"]),
        (
            301,
            &"/console/".parse::<reqwest::header::HeaderValue>().unwrap()
        )
    );
    let (s, h, _) = get(&e.c, &format!("{}/console/../admin/v1/operator", e.admin)).await;
    assert_ne!(s, 200, "no way out of the console's files");
    let _ = h;
    let (s, h, _) = get(&e.c, &format!("{}/console/nope.js", e.admin)).await;
    assert_eq!(s, 404);
    assert_secured(&h, "404");
    let r =
        e.c.post(format!("{}/console/", e.admin))
            .send()
            .await
            .unwrap();
    assert_eq!(
        (r.status().as_u16(), &r.headers()["allow"]),
        (
            405,
            &"GET, HEAD".parse::<reqwest::header::HeaderValue>().unwrap()
        )
    );
    let r =
        e.c.head(format!("{}/console/", e.admin))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_secured(r.headers(), "HEAD");
}

#[tokio::test]
async fn every_api_call_the_console_makes_still_needs_the_operator_token() {
    let e = env().await;
    let (id, _) = e.new_client().await;
    let calls = [
        ("GET", "/admin/v1/operator".to_string(), None),
        ("GET", "/admin/v1/applications?q=acme".to_string(), None),
        ("GET", format!("/admin/v1/clients/{id}"), None),
        ("GET", format!("/admin/v1/audit?kind=client&id={id}"), None),
        (
            "POST",
            "/admin/v1/clients".to_string(),
            Some(r#"{"name":"x"}"#),
        ),
        (
            "POST",
            format!("/admin/v1/clients/{id}/rotate"),
            Some(r#"{"overlap_seconds":0}"#),
        ),
        (
            "PATCH",
            format!("/admin/v1/clients/{id}"),
            Some(r#"{"status":"suspended"}"#),
        ),
        ("DELETE", format!("/admin/v1/clients/{id}"), None),
    ];
    for (m, path, body) in &calls {
        let (s, h, v) = call(&e.c, &e.admin, m, path, None, *body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("unauthorized")),
            "{m} {path}"
        );
        assert!(h.contains_key("www-authenticate"));
        // A cookie is no credential here.
        let r =
            e.c.request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}{path}", e.admin),
            )
            .header("cookie", format!("token={OPS}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{m} {path} with a cookie");
    }
    // A read token may look but not change.
    let (s, _, v) = call(
        &e.c,
        &e.admin,
        "PATCH",
        &format!("/admin/v1/clients/{id}"),
        Some(AUDITOR),
        Some(r#"{"status":"suspended"}"#),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")));
    // Nothing above changed the client.
    let (_, v) = e.api("GET", &format!("/admin/v1/clients/{id}"), None).await;
    assert_eq!(v["status"], "active");
}

#[tokio::test]
async fn the_console_is_only_on_the_admin_listener() {
    let e = env().await;
    let (s, h, body) = get(&e.c, &format!("{}/console/", e.public())).await;
    assert_eq!(s, 404, "{body}");
    assert!(h.get("content-security-policy").is_none());
    assert_eq!(e.up.count(), 0, "nothing was forwarded");
}

#[tokio::test]
async fn the_dashboard_reads_429s_per_class_from_metrics() {
    let up = Upstream::start().await;
    let toml = "[server]\nlisten = \"127.0.0.1:0\"\n[classes.consoletiles]\nlimit = \"2/1m\"\n\
                errors = \"partner\"\n[upstreams.app]\nurl = \"http://{UPSTREAM}\"\n\
                [[routes]]\npath = \"/\"\nclass = \"consoletiles\"\nupstream = \"app\"\n";
    let gw = gateway(toml, Some(up.addr)).await;
    let admin = admin_listener(&gw.gw).await;
    let c = client();
    let metric = "portcullis_too_many_requests_total{class=\"consoletiles\"}";
    let read = |text: &str| {
        text.lines()
            .find(|l| l.starts_with(metric))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (_, _, before) = get(&c, &format!("{admin}/metrics")).await;
    assert_eq!(
        read(&before),
        Some(0.0),
        "registered before the first 429: {before}"
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(c.get(gw.url("/x")).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (s, _, after) = get(&c, &format!("{admin}/metrics")).await;
    assert_eq!(s, 200);
    assert_eq!(read(&after), Some(1.0), "{after}");
    assert_eq!(up.count(), 2);
}

/// The demo operator token the README prints (`OPS=...` in the quick start).
fn readme_demo_token() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("OPS=pat_"))
        .expect("the README quick start prints OPS=<demo operator token>");
    line["OPS=".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_example_config_takes_a_new_user_from_serve_to_a_working_client_credential() {
    // config/portcullis.toml as shipped, on free ports, its store in a temp dir.
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = temp_dir("example-console");
    let text = std::fs::read_to_string(format!("{root}/config/portcullis.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "\"demo/oauth-es256.pem\"",
            &format!("\"{root}/config/demo/oauth-es256.pem\""),
        )
        .replace(
            "\"data/portcullis.db\"",
            &format!("\"{}/portcullis.db\"", dir.display()),
        );
    assert!(
        text.contains("[admin]\nlisten = \"127.0.0.1:9091\""),
        "the example has the admin listener"
    );
    let gw = gateway(&text, None).await;
    let admin = admin_listener(&gw.gw).await;
    let c = client();
    let ops = readme_demo_token();
    // The console is there, and the README's demo token signs in with write scope.
    let (s, _, _) = get(&c, &format!("{admin}/console/")).await;
    assert_eq!(s, 200);
    let (s, _, v) = call(&c, &admin, "GET", "/admin/v1/operator", Some(&ops), None).await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("write")), "{v}");
    // What the console's create form sends, then the README's curl for a token.
    let body = r#"{"name":"Acme reporting","scopes":["meetings:read"],"type":"confidential","grant_types":["client_credentials"],"redirect_uris":[]}"#;
    let (s, _, v) = call(
        &c,
        &admin,
        "POST",
        "/admin/v1/clients",
        Some(&ops),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (id, secret) = (
        v["client_id"].as_str().unwrap(),
        v["client_secret"].as_str().unwrap(),
    );
    let r = c
        .post(gw.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=meetings:read")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = json(r).await["access_token"].as_str().unwrap().to_string();
    let r = c
        .get(gw.url("/v1/partner/user/meetings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = json(r).await;
    assert!(
        echo.to_string().contains(id),
        "the echo backend sees the new client: {echo}"
    );
}
