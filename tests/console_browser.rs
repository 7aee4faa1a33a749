//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver on a
//! free loopback port) through sign-in, the dashboard, the applications list and its search,
//! create with an inline validation message, the secret shown once (copy, "I have stored it"),
//! a token obtained over HTTP with the new credentials, rotate (the old secret refused), suspend
//! (the live token refused), the audit trail, delete behind its confirmation (the credential
//! refused), a phone-width list, and the refused-token, read-only-token, API-off and
//! API-down states.
//! A PNG of each page goes to `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test fails under CI (the
//! `CI` variable set) and otherwise prints a loud skip line.

mod admin_api_support;
mod common;
mod console_support;

use std::time::{Duration, Instant};

use admin_api_support::*;
use console_support::*;
use fantoccini::{Client, Locator};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_says_when_the_admin_api_stops_answering_and_recovers() {
    if !browser_installed() {
        return;
    }
    let e = env().await;
    let mut relay = Relay::start(&e.admin).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let run = async {
        sign_in(&c, &relay.url(), OPS).await;
        text_of(&c, "#who-name", |t| t.contains("ops")).await;
        click(&c, "#nav a[data-page=applications]").await;
        text_of(&c, "table.list", |t| t.contains(CONFIG_CLIENT)).await;
        relay.down();
        click(&c, "#nav a[data-page=audit]").await;
        text_of(&c, ".error-box", |t| t.contains("did not answer")).await;
        shot(&c, "14-admin-api-down").await;
        relay.up().await;
        click(&c, ".error-box button").await;
        text_of(&c, "h1", |t| t == "Audit trail").await;
        find(&c, "#audit-body").await;
    };
    let result = tokio::time::timeout(Duration::from_secs(120), run).await;
    let _ = c.close().await;
    result.expect("the flow finished within 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_uses_rotates_suspends_and_deletes_a_client_in_the_browser() {
    if !browser_installed() {
        return;
    }
    let e = env().await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let result = tokio::time::timeout(Duration::from_secs(240), flow(&e, &c)).await;
    let _ = c.close().await;
    result.expect("the browser flow finished within 240 s");
}

async fn flow(e: &Env, c: &Client) {
    let admin = e.admin.as_str();
    // Traffic for the dashboard while it samples: tokens and refused calls, bounded in time
    // and count.
    let (http, public) = (e.c.clone(), e.public());
    let traffic = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(14);
        for i in 0..400 {
            if Instant::now() > until {
                break;
            }
            if i % 3 == 0 {
                meetings(&http, &public, "not-a-token").await;
            } else {
                cc_token(&http, &public, CONFIG_CLIENT, CONFIG_SECRET).await;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });

    // A wrong token is refused on the sign-in page.
    sign_in(c, admin, "not-an-operator-token").await;
    text_of(c, "#token-error", |t| t.contains("not accepted")).await;
    shot(c, "01-sign-in-refused").await;

    sign_in(c, admin, OPS).await;
    text_of(c, "#who-name", |t| t.contains("ops")).await;
    text_of(c, "#tile-rate .tile-value", |t| {
        t.ends_with("/s") && t != "0.00 /s"
    })
    .await;
    text_of(c, "#tile-errors .tile-value", |t| {
        t.ends_with('%') && t != "0 %"
    })
    .await;
    // A few more samples, so the chart has a line to show.
    tokio::time::timeout(Duration::from_secs(20), traffic)
        .await
        .expect("the traffic loop ends within its bound")
        .unwrap();
    text_of(c, "#tile-429", |t| {
        t.contains("user") && t.contains("oauth")
    })
    .await;
    find(c, "svg.chart polyline").await;
    shot(c, "02-dashboard").await;

    click(c, "#nav a[data-page=applications]").await;
    let list = text_of(c, "table.list", |t| t.contains(CONFIG_CLIENT)).await;
    assert!(
        list.contains(CONFIG_APP) && list.contains("config file"),
        "{list}"
    );
    shot(c, "03-applications").await;
    type_into(c, "#search", "config-app").await;
    click(c, "form[role=search] button").await;
    text_of(c, "table.list caption", |t| t.contains("config-app")).await;
    let rows = c
        .find_all(Locator::Css("table.list tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the search keeps config-app only");

    // Create: the API's validation message lands beside the field.
    click(c, "a[href='#/applications/new']").await;
    type_into(c, "#name", "Acme reporting").await;
    type_into(c, "#scopes", "meetings:read \"oops").await;
    click(c, "form button[type=submit]").await;
    let msg = text_of(c, "#scopes-error", |t| !t.is_empty()).await;
    assert!(msg.contains("invalid scope"), "{msg}");
    assert_eq!(
        find(c, "#scopes")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    shot(c, "04-create-invalid").await;
    type_into(c, "#scopes", "meetings:read").await;
    click(c, "form button[type=submit]").await;
    let (id, secret) = take_secret(c, "05-secret-shown-once").await;
    assert!(id.starts_with("pc_") && secret.len() >= 43, "{id}");

    // The new credentials get a token over HTTP, and it reaches the upstream.
    let token = e.token(&id, &secret).await;
    assert_eq!(meetings(&e.c, &e.public(), &token).await, 200);
    assert_eq!(e.up.last().headers["x-auth-client-id"], id.as_str());
    text_of(c, "dl.facts", |t| t.contains(&id) && t.contains("active")).await;
    shot(c, "06-detail").await;

    // An API-key app through the same form: its key works on the API-key route.
    click(c, "a[href='#/applications']").await;
    click(c, "a[href='#/applications/new']").await;
    click(c, "input[name=kind][value=app]").await;
    assert!(
        !find(c, "#client-fields")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    type_into(c, "#name", "Billing export").await;
    type_into(c, "#scopes", "reports:read").await;
    click(c, "form button[type=submit]").await;
    let (app, key) = take_secret(c, "06a-api-key-shown-once").await;
    assert!(app.starts_with("app_") && key.starts_with("pk_"), "{app}");
    let (s, _) = reports(&e.c, &e.public(), &app, &key).await;
    assert_eq!(s, 200);
    assert_eq!(e.up.last().headers["x-auth-client-id"], app.as_str());
    click(c, "a[href='#/applications']").await;
    let list = text_of(c, "table.list", |t| t.contains(&app) && t.contains(&id)).await;
    assert!(
        list.contains("run time") && list.contains("config file"),
        "{list}"
    );
    shot(c, "06b-applications").await;
    click(c, &format!("a[href='#/applications/client/{id}']")).await;

    // Rotate without overlap: the old secret stops, the new one works.
    find(c, "#overlap")
        .await
        .select_by_value("0")
        .await
        .unwrap();
    click(c, "#rotate").await;
    let (_, rotated) = take_secret(c, "07-rotated-secret").await;
    assert_ne!(rotated, secret);
    assert_eq!(cc_token(&e.c, &e.public(), &id, &secret).await.0, 401);
    let token = e.token(&id, &rotated).await;
    assert_eq!(meetings(&e.c, &e.public(), &token).await, 200);

    // Suspend: the live token and the secret are refused, nothing more reaches the upstream.
    let before = e.up.count();
    click(c, "#toggle-status").await;
    text_of(c, "#toggle-status", |t| t == "Reactivate").await;
    assert_eq!(meetings(&e.c, &e.public(), &token).await, 401);
    assert_eq!(cc_token(&e.c, &e.public(), &id, &rotated).await.0, 401);
    assert_eq!(e.up.count(), before);
    let trail = text_of(c, "#trail", |t| {
        t.contains("rotate") && t.contains("update")
    })
    .await;
    assert!(trail.contains("create") && trail.contains("ops"), "{trail}");
    shot(c, "08-suspended-with-audit-trail").await;

    // Delete behind a confirmation that names what stops working.
    click(c, "#delete").await;
    let what = text_of(c, "#delete-what", |t| !t.is_empty()).await;
    assert!(what.contains("refused") && what.contains(&id), "{what}");
    let confirm = find(c, "dialog button.danger").await;
    assert!(
        !confirm.is_enabled().await.unwrap(),
        "typing the id comes first"
    );
    type_into(c, "#confirm-id", &id).await;
    shot(c, "09-delete-confirmation").await;
    confirm.click().await.unwrap();
    text_of(c, "table.list", |t| {
        t.contains(CONFIG_CLIENT) && !t.contains(&id)
    })
    .await;
    assert_eq!(
        e.api("GET", &format!("/admin/v1/clients/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(cc_token(&e.c, &e.public(), &id, &rotated).await.0, 401);

    click(c, "#nav a[data-page=audit]").await;
    text_of(c, "table.audit", |t| t.contains("delete")).await;
    shot(c, "10-audit-trail").await;

    // Pages of 20: Next and Previous walk the list; focus lands on each page's heading.
    for i in 0..21 {
        let body = json!({"name": format!("Batch {i:02}"), "client_id": format!("batch-{i:02}")});
        assert_eq!(e.api("POST", "/admin/v1/apps", Some(body)).await.0, 201);
    }
    click(c, "#nav a[data-page=applications]").await;
    text_of(c, "table.list", |t| t.contains("batch-00")).await;
    assert_eq!(
        focused(c).await,
        "H1",
        "a new page moves the focus to its heading"
    );
    let first = c
        .find_all(Locator::Css("table.list tbody tr"))
        .await
        .unwrap();
    assert_eq!(first.len(), 20);
    click(c, ".pager button").await;
    let second = text_of(c, "table.list", |t| !t.contains("batch-00")).await;
    assert!(second.contains(CONFIG_CLIENT), "{second}");
    click(c, ".pager button").await;
    text_of(c, "table.list", |t| t.contains("batch-00")).await;

    // Phone width: the list is still readable.
    c.set_window_size(390, 844).await.unwrap();
    click(c, "#nav a[data-page=applications]").await;
    text_of(c, "table.list", |t| t.contains("batch-00")).await;
    shot(c, "11-applications-phone").await;
    c.set_window_size(1280, 900).await.unwrap();

    // A read-only token: a banner, and no way to create.
    click(c, "#signout").await;
    sign_in(c, admin, AUDITOR).await;
    text_of(c, "#banner", |t| t.contains("Read-only")).await;
    c.goto(&format!("{admin}/console/#/applications"))
        .await
        .unwrap();
    text_of(c, "main", |t| t.contains("creating needs a write token")).await;
    assert!(
        c.find(Locator::Css("a[href='#/applications/new']"))
            .await
            .is_err()
    );
    shot(c, "12-read-only-token").await;

    // A gateway without [[admin.tokens]]: the console says the credential API is off.
    click(c, "#signout").await;
    let off = env_with(false).await;
    sign_in(c, &off.admin, OPS).await;
    text_of(c, "#token-error", |t| t.contains("credential API is off")).await;
    shot(c, "13-credential-api-off").await;
}
