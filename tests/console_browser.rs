//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver on a
//! free loopback port) through sign-in, the dashboard, the applications list and its search,
//! create with an inline validation message, the secret shown once (copy, "I have stored it"),
//! a token obtained over HTTP with the new credentials, rotate (the old secret refused), suspend
//! (the live token refused), the audit trail, delete behind its confirmation (the credential
//! refused), a phone-width list, and the refused-token, read-only-token and API-off states.
//! A PNG of each page goes to `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test fails under CI (the
//! `CI` variable set) and otherwise prints a loud skip line.

mod admin_api_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_api_support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for chromedriver to answer, for a page element, or for a condition.
const STARTUP: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver (and the Chromium it starts) in its own process group, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on the process group this test created; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn start_driver() -> Driver {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let profile = common::temp_dir("chromium-profile");
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        port,
        profile,
    };
    let c = common::client();
    let deadline = Instant::now() + STARTUP;
    loop {
        let status = c
            .get(format!("http://127.0.0.1:{port}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(r) = status
            && r.status().is_success()
        {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on 127.0.0.1:{port} within {STARTUP:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--user-data-dir={}", driver.profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({
        "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        "pageLoadStrategy": "normal",
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{}", driver.port);
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(caps);
    tokio::time::timeout(STARTUP, builder.connect(&url))
        .await
        .expect("a WebDriver session within the startup bound")
        .expect("a WebDriver session")
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Form controls on the page without a label (by `<label>`, `aria-label` or `aria-labelledby`;
/// buttons by their text): a description of each.
const UNLABELLED: &str = "return [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120));";

async fn shot(c: &Client, name: &str) {
    let unlabelled = c.execute(UNLABELLED, vec![]).await.unwrap();
    assert_eq!(unlabelled, json!([]), "{name}: every control has a label");
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits for `css` to be on the page.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {WAIT:?}: {e}"))
}

/// Waits until the text of `css` satisfies `ok`; returns it.
async fn text_of(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: text never matched within {WAIT:?}; last {last:?}");
}

async fn value(c: &Client, css: &str) -> String {
    find(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let el = find(c, css).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// The id (or tag) of the element that has the keyboard focus.
async fn focused(c: &Client) -> String {
    let v = c
        .execute(
            "const a = document.activeElement; return a.id || a.tagName;",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or("").to_string()
}

/// Signs in with the keyboard only: the token field has the focus, Enter submits.
async fn sign_in(c: &Client, admin: &str, token: &str) {
    c.goto(&format!("{admin}/console/")).await.unwrap();
    find(c, "#token").await;
    assert_eq!(focused(c).await, "token", "the token field has the focus");
    let el = find(c, "#token").await;
    el.clear().await.unwrap();
    el.send_keys(&format!("{token}\u{E007}")).await.unwrap();
}

/// The secret on screen: acknowledges it and returns `(id, secret)`.
async fn take_secret(c: &Client, shot_name: &str) -> (String, String) {
    let secret = value(c, "#new-secret").await;
    let id = value(c, "#new-id").await;
    text_of(c, ".warning", |t| t.contains("shown once")).await;
    let done = find(c, ".actions button.primary").await;
    assert!(
        !done.is_enabled().await.unwrap(),
        "Done waits for 'I have stored it'"
    );
    click(c, "button[aria-describedby=new-secret-copied]").await;
    text_of(c, "#new-secret-copied", |t| !t.is_empty()).await;
    shot(c, shot_name).await;
    click(c, "#stored").await;
    assert!(done.is_enabled().await.unwrap());
    done.click().await.unwrap();
    find(c, "#toggle-status").await;
    (id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_uses_rotates_suspends_and_deletes_a_client_in_the_browser() {
    if !installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {CHROMIUM} and {CHROMEDRIVER} are missing; .ci/run installs chromium chromium-driver"
        );
        eprintln!(
            "\n*** skipped: install chromium chromium-driver (apt-get install chromium chromium-driver) ***\n"
        );
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
