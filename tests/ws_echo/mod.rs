//! WebSocket test parts: a real echo upstream (tokio-tungstenite) that records every connection
//! and handshake it received, a client, and the gateway config the WebSocket tests share.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async, client_async};

/// Every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

pub const KEY: &str = "pk_live_ws_0123456789abcdef0123456789abcdef0123";

/// What the echo upstream received in one handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub path: String,
    pub headers: http::HeaderMap,
}

/// A WebSocket echo server on 127.0.0.1:0: text and binary messages come back unchanged.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    /// TCP connections accepted (a refused request must leave this at 0).
    pub connections: Arc<AtomicUsize>,
    /// Connections whose WebSocket ended (closed by the peer or broken).
    pub ended: Arc<AtomicUsize>,
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
}

impl EchoUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Self {
            addr,
            connections: Arc::default(),
            ended: Arc::default(),
            handshakes: Arc::default(),
        };
        let (conns, ended, seen) = (
            up.connections.clone(),
            up.ended.clone(),
            up.handshakes.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (ended, seen) = (ended.clone(), seen.clone());
                tokio::spawn(async move {
                    echo(stream, seen).await;
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        up
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Handshake {
        self.handshakes
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no handshake")
    }
}

async fn echo(stream: TcpStream, seen: Arc<Mutex<Vec<Handshake>>>) {
    // The callback's error type is tungstenite's (a whole response), not ours to shrink.
    #[allow(clippy::result_large_err)]
    let record = move |req: &Request, resp: Response| {
        seen.lock().unwrap().push(Handshake {
            path: req.uri().path().to_string(),
            headers: req.headers().clone(),
        });
        Ok(resp)
    };
    let Ok(mut ws) = accept_hdr_async(stream, record).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

pub type Client = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `addr` + `path` with `headers`; `Err` carries a refusal's status and body.
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, http::HeaderMap), (u16, String)> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    match tokio::time::timeout(WAIT, client_async(req, stream)).await {
        Ok(Ok((ws, resp))) => Ok((ws, resp.headers().clone())),
        Ok(Err(WsError::Http(resp))) => {
            let body = resp.body().clone().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        Ok(Err(e)) => panic!("handshake failed: {e}"),
        Err(_) => panic!("handshake timed out"),
    }
}

/// Sends `text` and returns the next message's text (within `WAIT`).
pub async fn round_trip(ws: &mut Client, text: &str) -> String {
    ws.send(Message::text(text)).await.unwrap();
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        other => panic!("no echo of {text:?}: {other:?}"),
    }
}

/// Waits (at most `WAIT`) for the tunnel to end; true when the client saw it end.
pub async fn closed(ws: &mut Client) -> bool {
    let ended = async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, ended).await.is_ok()
}

/// Polls `cond` every 10 ms for at most `WAIT`.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// The app's `key_hash` for [`KEY`].
pub fn key_hash() -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(KEY.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A gateway config: `/ws/` (API key, `websocket = true`) and `/plain/` (no WebSocket) to the
/// echo upstream; `extra` is appended (e.g. a `[tunnels]` table).
pub fn config(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_class = "user"
shutdown_grace = "1s"

[limits]
upstream_response_timeout = "2s"
upstream_connect_timeout = "1s"

[classes.user]
errors = "partner"

[upstreams.ws]
url = "http://{{UPSTREAM}}"

[[apps]]
client_id = "acme"
key_hash = "{hash}"
scopes = ["live:read"]

[[routes]]
path = "/ws/"
class = "user"
auth = "api_key"
scopes = ["live:read"]
upstream = "ws"
websocket = true

[[routes]]
path = "/plain/"
class = "user"
auth = "api_key"
upstream = "ws"
{extra}
"#,
        hash = key_hash()
    )
}

/// The API-key headers of the `acme` app.
pub const ACME: [(&str, &str); 2] = [("x-api-key", KEY), ("x-client-id", "acme")];
