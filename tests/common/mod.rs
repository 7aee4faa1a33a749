//! Test harness: a real gateway built through the library and a real recording upstream, both on
//! 127.0.0.1:0. Configs are TOML text with `{UPSTREAM}` replaced by the upstream's address.
#![allow(dead_code)]

mod temp;
pub use temp::temp_dir;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::clock::{SharedClock, SystemClock};
use portcullis::config::{self, Shared, Source};
use portcullis::gateway::Gateway;
use portcullis::server::Server;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body_len: usize,
    /// The body bytes as received (after chunked decoding), up to the first 4 MiB.
    pub body: Vec<u8>,
}

/// A real HTTP/1.1 upstream that records requests. Paths choose behaviour:
/// `/status/NNN` answers NNN with a body; `/slow/MS` waits MS ms first; anything else 200 JSON.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Notified when the first body chunk of a request arrives.
    pub first_chunk: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let first_chunk = Arc::new(Notify::new());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (seen2, notify2) = (seen.clone(), first_chunk.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let (seen, notify) = (seen2.clone(), notify2.clone());
                tokio::spawn(async move {
                    let svc =
                        service_fn(move |req| upstream_handle(req, seen.clone(), notify.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            first_chunk,
            _stop: stop,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.requests().pop().expect("the upstream saw no request")
    }
}

async fn upstream_handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    notify: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let mut len = 0;
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            if len == 0 && !d.is_empty() {
                notify.notify_one();
            }
            len += d.len();
            if bytes.len() < 4 << 20 {
                bytes.extend_from_slice(d);
            }
        }
    }
    let path = parts.uri.path().to_string();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body_len: len,
        body: bytes,
    });
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
    }
    let (status, body) = match path.strip_prefix("/status/") {
        Some(code) => (
            StatusCode::from_bytes(code.as_bytes()).unwrap_or(StatusCode::IM_A_TEAPOT),
            format!("{{\"upstream_error\":{code}}}"),
        ),
        None => (
            StatusCode::OK,
            format!("{{\"ok\":true,\"body_len\":{len}}}"),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream", "yes".parse().unwrap());
    resp.headers_mut()
        .insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(resp)
}

/// A running gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gw: Arc<Gateway>,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops accepting and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

/// Starts a gateway on 127.0.0.1:0 from config text (`{UPSTREAM}` = `upstream` host:port).
pub async fn gateway(toml: &str, upstream: Option<SocketAddr>) -> TestGateway {
    gateway_with_clock(toml, upstream, SystemClock::shared()).await
}

pub async fn gateway_with_clock(
    toml: &str,
    upstream: Option<SocketAddr>,
    clock: SharedClock,
) -> TestGateway {
    portcullis::install_crypto();
    let dir = temp_dir("gw");
    // Without an upstream, `{UPSTREAM}` points at the discard port: nothing listens there.
    let up = upstream.map_or("127.0.0.1:9".to_string(), |a| a.to_string());
    let text = toml.replace("{UPSTREAM}", &up);
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, &text).unwrap();
    let shared = Shared::new(clock);
    let snap = match config::load_str(Source::new(&path, text), &shared) {
        Ok(s) => s,
        Err(d) => panic!(
            "config failed: {}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    let gw = Gateway::from_file_snapshot(snap, shared, &path);
    let server = Server::bind(gw.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestGateway {
        addr,
        gw,
        dir,
        stop: Some(stop),
        done: Some(done),
    }
}

/// Serves `gw`'s admin listener on 127.0.0.1:0; returns its base URL. The task lives as long as
/// the test's runtime.
pub async fn admin_listener(gw: &Arc<Gateway>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(portcullis::admin::serve(gw.clone(), listener));
    url
}

/// A log sink for `tracing_subscriber::fmt().with_writer(...)`: everything written, in memory.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    /// What was written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The JSON log of this test binary: one global subscriber (flattened JSON events), installed
/// by the first call. Call it before the test's first event: a thread-local subscriber can miss
/// events while another test thread registers the same callsite.
pub fn global_json_logs() -> &'static LogBuf {
    static BUF: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

/// Runs `portcullis check` on config text (`{UPSTREAM}` = the discard port) written to
/// `portcullis.toml` in a fresh temp dir: (exit code, stdout, stderr).
pub fn check_text(cfg: &str) -> (i32, String, String) {
    let path = temp_dir("check").join("portcullis.toml");
    std::fs::write(&path, cfg.replace("{UPSTREAM}", "127.0.0.1:9")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain HTTP client (no proxies, no pooling surprises).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The JSON body of a response.
pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends raw bytes on a fresh TCP connection and returns everything read until close or `wait`.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Partner-class config with an http upstream and an echo upstream.
pub const BASIC: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"

[limits]
upstream_response_timeout = "500ms"
upstream_connect_timeout = "500ms"
max_header_bytes = "8KiB"
max_body_bytes = "1MiB"

[classes.user]
errors = "partner"
[classes.admin]
errors = "partner"
[classes.oauth]
errors = "oauth"

[upstreams.app]
url = "http://{UPSTREAM}"
[upstreams.echo]
kind = "echo"

[[routes]]
path = "/v1/partner/user/"
class = "user"
upstream = "app"

[[routes]]
path = "/v1/partner/admin/"
class = "admin"
methods = ["GET", "POST"]
upstream = "echo"

[[routes]]
path = "/oauth2/"
class = "oauth"
methods = ["POST"]
upstream = "app"

[[routes]]
path = "/big/"
class = "user"
max_body_bytes = "2GiB"
upstream = "app"

[[routes]]
path = "/slow/"
class = "user"
upstream = "app"

[[routes]]
path = "/status/"
class = "user"
upstream = "app"
"#;
