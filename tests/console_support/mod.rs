//! Browser harness for the console tests: chromedriver on a free loopback port with a bounded
//! startup wait, a headless Chromium session (fresh profile, no network beyond loopback), page
//! helpers whose every wait is bounded, screenshots under `target/console-screenshots/` (each
//! checks that every visible control has a label), and a TCP relay that takes the admin API down.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for chromedriver to answer, for a page element, or for a condition.
pub const STARTUP: Duration = Duration::from_secs(30);
pub const WAIT: Duration = Duration::from_secs(20);

/// chromedriver (and the Chromium it starts) in its own process group, killed on drop.
pub struct Driver {
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

pub fn installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub async fn start_driver() -> Driver {
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

pub async fn browser(driver: &Driver) -> Client {
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

pub fn shots_dir() -> PathBuf {
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

pub async fn shot(c: &Client, name: &str) {
    let unlabelled = c.execute(UNLABELLED, vec![]).await.unwrap();
    assert_eq!(unlabelled, json!([]), "{name}: every control has a label");
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits for `css` to be on the page.
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {WAIT:?}: {e}"))
}

/// Waits until the text of `css` satisfies `ok`; returns it.
pub async fn text_of(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
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

pub async fn value(c: &Client, css: &str) -> String {
    find(c, css)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

pub async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn type_into(c: &Client, css: &str, text: &str) {
    let el = find(c, css).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// The id (or tag) of the element that has the keyboard focus.
pub async fn focused(c: &Client) -> String {
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
pub async fn sign_in(c: &Client, admin: &str, token: &str) {
    c.goto(&format!("{admin}/console/")).await.unwrap();
    find(c, "#token").await;
    assert_eq!(focused(c).await, "token", "the token field has the focus");
    let el = find(c, "#token").await;
    el.clear().await.unwrap();
    el.send_keys(&format!("{token}\u{E007}")).await.unwrap();
}

/// The secret on screen: acknowledges it and returns `(id, secret)`.
pub async fn take_secret(c: &Client, shot_name: &str) -> (String, String) {
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

/// False (after a loud line) when the browser is missing outside CI; under CI, a failure.
pub fn browser_installed() -> bool {
    if installed() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: {CHROMIUM} and {CHROMEDRIVER} are missing; .ci/run installs chromium chromium-driver"
    );
    eprintln!(
        "\n*** skipped: install chromium chromium-driver (apt-get install chromium chromium-driver) ***\n"
    );
    false
}

/// A loopback TCP relay in front of the admin listener that the test can cut (nothing listens,
/// every connection closed) and restore on the same port: the admin API "goes down".
pub struct Relay {
    addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    tasks: Option<tokio::task::JoinSet<()>>,
}

impl Relay {
    pub async fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").parse().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut relay = Relay {
            addr,
            target,
            tasks: None,
        };
        relay.up().await;
        relay
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the relay cannot listen on {} again: {e}", self.addr),
            }
        };
        let target = self.target;
        let mut set = tokio::task::JoinSet::new();
        set.spawn(async move {
            // Dropped with the accept loop: aborting it closes every relayed connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        self.tasks = Some(set);
    }

    pub fn down(&mut self) {
        self.tasks = None;
    }
}
