//! The raw-upstream harness of the upstream framing tests (`upstream_framing.rs`,
//! `upstream_request_framing.rs`): a TCP upstream that writes exact bytes and records exactly
//! what it read, the config, and client helpers that read answers raw or through reqwest.
#![allow(dead_code)]

pub use std::net::SocketAddr;
pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

pub use crate::common::{client, gateway, json};
pub use sha2::{Digest, Sha256};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::{TcpListener, TcpStream};
pub use tokio::sync::Notify;

/// The bound on every wait.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long an upstream connection waits for its next request before it closes: longer than
/// any test, so that a connection is only ever closed by the gateway (or by a reply that says so).
pub const IDLE: Duration = Duration::from_secs(30);

pub const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
default_class = "open"

[limits]
upstream_response_timeout = "1s"
upstream_connect_timeout = "500ms"
max_body_bytes = "8MiB"

[classes.open]
errors = "partner"

[upstreams.app]
url = "http://{UPSTREAM}"

[[routes]]
path = "/"
class = "open"
upstream = "app"
"#;

// ---------------------------------------------------------------------------------------------
// The raw upstream
// ---------------------------------------------------------------------------------------------

/// One request as the upstream read it off the wire.
#[derive(Debug, Clone, Default)]
pub struct Got {
    /// Which upstream connection (0 = the first accepted).
    pub conn: usize,
    /// Request line and header lines as received, through the blank line.
    pub head: Vec<u8>,
    /// The body as framed on the wire (chunk-size lines and trailers included).
    pub raw_body: Vec<u8>,
    /// The body, decoded.
    pub body: Vec<u8>,
}

impl Got {
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    pub fn request_line(&self) -> String {
        self.head_text()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Header lines as (name, value) exactly as received (value without its surrounding OWS).
    pub fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.head
            .split(|&b| b == b'\n')
            .skip(1)
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(|l| {
                let colon = l.iter().position(|&b| b == b':').expect("a field line");
                (l[..colon].to_vec(), l[colon + 1..].trim_ascii().to_vec())
            })
            .collect()
    }

    /// The values of `name` (case-insensitive), in order, as text.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
            .collect()
    }
}

/// How the upstream answers one request.
pub enum Reply {
    /// Writes the bytes, then reads the next request on the connection.
    Keep(Vec<u8>),
    /// Writes the bytes, then closes the connection.
    Close(Vec<u8>),
    /// Writes the bytes one at a time, `gap` apart, then reads the next request.
    Trickle(Vec<u8>, Duration),
    /// Writes the bytes as soon as the head is read, leaving the body unread, then closes at
    /// once (`linger: false`: unread bytes make the kernel send a reset) or after shutting down
    /// its side and draining what the gateway still sends (`linger: true`, a careful server).
    Early { bytes: Vec<u8>, linger: bool },
    /// Answers nothing and holds the connection until the gateway closes it.
    Silent,
    /// Writes `before`, waits (bounded) until `gate` is notified, writes `after`, then reads the
    /// next request.
    Gated {
        before: Vec<u8>,
        gate: Arc<Notify>,
        after: Vec<u8>,
    },
}

pub fn keep(bytes: &[u8]) -> Reply {
    Reply::Keep(bytes.to_vec())
}

/// A keep-alive `200` whose body names the connection and the request's index on it.
pub fn tagged(conn: usize, index: usize) -> Reply {
    let body = format!("c{conn}r{index}");
    Reply::Keep(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Decides the reply from the request head (body not yet read), the connection and the
/// request's index on that connection.
pub type Responder = dyn Fn(&Got, usize) -> Reply + Send + Sync;

#[derive(Default)]
pub struct Log {
    pub conns: AtomicUsize,
    pub got: Mutex<Vec<Got>>,
    /// Connections the gateway closed (EOF or reset while the upstream waited for a request).
    pub closed: Mutex<Vec<usize>>,
    pub changed: Notify,
}

pub struct Up {
    pub addr: SocketAddr,
    pub log: Arc<Log>,
}

impl Up {
    pub async fn start(respond: impl Fn(&Got, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let respond: Arc<Responder> = Arc::new(respond);
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let conn = log2.conns.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, conn, log2.clone(), respond.clone()));
            }
        });
        Self { addr, log }
    }

    /// Answers every request with the same reply.
    pub async fn always(bytes: &'static [u8]) -> Self {
        Self::start(move |_, _| keep(bytes)).await
    }

    pub fn conns(&self) -> usize {
        self.log.conns.load(Ordering::SeqCst)
    }

    pub fn got(&self) -> Vec<Got> {
        self.log.got.lock().unwrap().clone()
    }

    pub fn last(&self) -> Got {
        self.got().pop().expect("the upstream read no request")
    }

    /// Which connection each request came on, in order.
    pub fn conn_of_each(&self) -> Vec<usize> {
        self.got().iter().map(|g| g.conn).collect()
    }

    /// Waits (bounded) until the gateway has closed upstream connection `conn`.
    pub async fn closed_by_gateway(&self, conn: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            let changed = self.log.changed.notified();
            if self.log.closed.lock().unwrap().contains(&conn) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            if tokio::time::timeout(left, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Waits (bounded) until the upstream has read `n` requests.
    pub async fn read_requests(&self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            let changed = self.log.changed.notified();
            if self.log.got.lock().unwrap().len() >= n {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            if tokio::time::timeout(left, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Whether the gateway has closed `conn` by now (no wait: for "kept open" assertions, made
    /// after a later exchange has shown where the gateway sent its next request).
    pub fn is_closed(&self, conn: usize) -> bool {
        self.log.closed.lock().unwrap().contains(&conn)
    }
}

impl Log {
    pub fn push(&self, got: Got) {
        self.got.lock().unwrap().push(got);
        self.changed.notify_waiters();
    }

    pub fn mark_closed(&self, conn: usize) {
        self.closed.lock().unwrap().push(conn);
        self.changed.notify_waiters();
    }
}

/// Why reading stopped.
pub enum Stop {
    /// The peer closed (EOF or reset).
    Closed,
    /// Nothing within the bound.
    TimedOut,
}

/// Reads more bytes into `buf`; bounded by `deadline`.
pub async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Stop> {
    let mut chunk = [0u8; 16 * 1024];
    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or(Stop::TimedOut)?;
    match tokio::time::timeout(left, s.read(&mut chunk)).await {
        Err(_) => Err(Stop::TimedOut),
        Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Closed),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Takes bytes from `buf` up to and including `delim`, reading more as needed.
pub async fn take_through(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    delim: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>, Stop> {
    loop {
        if let Some(i) = buf.windows(delim.len()).position(|w| w == delim) {
            return Ok(buf.drain(..i + delim.len()).collect());
        }
        fill(s, buf, deadline).await?;
    }
}

/// Takes exactly `n` bytes from `buf`, reading more as needed.
pub async fn take_n(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, Stop> {
    while buf.len() < n {
        fill(s, buf, deadline).await?;
    }
    Ok(buf.drain(..n).collect())
}

/// Reads the request body as the head frames it: (as framed, decoded).
pub async fn read_body(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    got: &Got,
) -> Result<(Vec<u8>, Vec<u8>), Stop> {
    let deadline = Instant::now() + WAIT;
    let chunked = got
        .values("transfer-encoding")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("chunked"));
    if !chunked {
        let len = got
            .values("content-length")
            .first()
            .map_or(0, |v| v.parse().expect("a numeric content-length"));
        let body = take_n(s, buf, len, deadline).await?;
        return Ok((body.clone(), body));
    }
    let (mut raw, mut body) = (Vec::new(), Vec::new());
    loop {
        let line = take_through(s, buf, b"\r\n", deadline).await?;
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let size = text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size, 16)
            .unwrap_or_else(|_| panic!("a bad chunk-size line from the gateway: {text:?}"));
        if size == 0 {
            // Trailer section, through its blank line.
            loop {
                let line = take_through(s, buf, b"\r\n", deadline).await?;
                raw.extend_from_slice(&line);
                if line == b"\r\n" {
                    return Ok((raw, body));
                }
            }
        }
        let data = take_n(s, buf, size + 2, deadline).await?;
        assert!(data.ends_with(b"\r\n"), "a chunk not followed by CRLF");
        raw.extend_from_slice(&data);
        body.extend_from_slice(&data[..size]);
    }
}

pub async fn serve(mut s: TcpStream, conn: usize, log: Arc<Log>, respond: Arc<Responder>) {
    let mut buf = Vec::new();
    for index in 0.. {
        let head = match take_through(&mut s, &mut buf, b"\r\n\r\n", Instant::now() + IDLE).await {
            Ok(head) => head,
            Err(Stop::Closed) => return log.mark_closed(conn),
            Err(Stop::TimedOut) => return,
        };
        let mut got = Got {
            conn,
            head,
            ..Got::default()
        };
        let reply = respond(&got, index);
        if let Reply::Early { bytes, linger } = reply {
            log.push(got);
            let _ = s.write_all(&bytes).await;
            if linger {
                let _ = s.shutdown().await;
                let deadline = Instant::now() + WAIT;
                while fill(&mut s, &mut buf, deadline).await.is_ok() {
                    buf.clear();
                }
            }
            return;
        }
        if got
            .values("expect")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
        match read_body(&mut s, &mut buf, &got).await {
            Ok((raw, body)) => (got.raw_body, got.body) = (raw, body),
            Err(Stop::Closed) => return log.mark_closed(conn),
            Err(Stop::TimedOut) => return,
        }
        log.push(got);
        match reply {
            Reply::Keep(bytes) => {
                if s.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Close(bytes) => {
                let _ = s.write_all(&bytes).await;
                return;
            }
            Reply::Trickle(bytes, gap) => {
                for b in bytes {
                    if s.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(gap).await;
                }
            }
            Reply::Silent => {
                let deadline = Instant::now() + WAIT;
                loop {
                    match fill(&mut s, &mut buf, deadline).await {
                        Ok(()) => buf.clear(),
                        Err(Stop::Closed) => return log.mark_closed(conn),
                        Err(Stop::TimedOut) => return,
                    }
                }
            }
            Reply::Gated {
                before,
                gate,
                after,
            } => {
                let _ = s.write_all(&before).await;
                let _ = tokio::time::timeout(WAIT, gate.notified()).await;
                if s.write_all(&after).await.is_err() {
                    return;
                }
            }
            Reply::Early { .. } => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------------------------

/// What a client got for one request.
#[derive(Debug)]
pub struct Answer {
    /// The status, or None when the connection broke before a response head.
    pub status: Option<u16>,
    pub headers: reqwest::header::HeaderMap,
    /// The whole body, or how it broke.
    pub body: Result<Vec<u8>, String>,
}

impl Answer {
    /// A client can only take this for a complete response if it had a head and a whole body
    /// that is not the gateway's own 502.
    pub fn looks_complete(&self) -> bool {
        self.body.is_ok() && self.status.is_some_and(|s| s != 502)
    }
}

/// Sends `req` and reads the whole response; bounded.
pub async fn fetch(req: reqwest::RequestBuilder) -> Answer {
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("a response head (or an error) within the bound");
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: None,
                headers: Default::default(),
                body: Err(format!("{e:?}")),
            };
        }
    };
    let (status, headers) = (Some(resp.status().as_u16()), resp.headers().clone());
    let body = tokio::time::timeout(WAIT, resp.bytes())
        .await
        .expect("the body ends (or breaks) within the bound")
        .map(|b| b.to_vec())
        .map_err(|e| format!("{e:?}"));
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(c: &reqwest::Client, url: String) -> Answer {
    fetch(c.get(url)).await
}

/// GETs `path` and expects `200` with `body`.
pub async fn get_ok(c: &reqwest::Client, url: String, body: &str) {
    let got = get(c, url).await;
    assert_eq!(got.status, Some(200), "{got:?}");
    assert_eq!(text(&got.body.expect("a whole body")), body);
}

/// Sends raw bytes to the gateway on a new connection and reads until it closes (bounded).
pub async fn raw_client(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_to_close(&mut s).await
}

pub async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match fill(s, &mut out, deadline).await {
            Ok(()) => {}
            Err(Stop::Closed) => return out,
            Err(Stop::TimedOut) => panic!(
                "the gateway did not close within the bound; read so far: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Decodes a whole chunked body: (data, trailer section without its blank line); None when the
/// framing is broken or does not end exactly at the end of `b`.
pub fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            let end = b.windows(2).position(|w| w == b"\r\n")?;
            if end == 0 {
                return (b.len() == 2).then_some((data, Vec::new()));
            }
            let end = b.windows(4).position(|w| w == b"\r\n\r\n")?;
            return (b.len() == end + 4).then(|| (data, b[..end].to_vec()));
        }
        if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
            return None;
        }
        data.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// `502 bad_gateway` for the response `bytes`, the upstream having read the request, and the
/// gateway closing that upstream connection.
pub async fn refused_and_closed(bytes: &'static [u8]) {
    let up = Up::always(bytes).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let resp = tokio::time::timeout(WAIT, client().get(gw.url("/r")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 502, "{}", text(bytes));
    assert_eq!(json(resp).await["code"], "bad_gateway", "{}", text(bytes));
    assert_eq!(up.got().len(), 1, "sent once, not retried: {}", text(bytes));
    assert!(up.last().request_line().starts_with("GET /r HTTP/1.1"));
    assert!(
        up.closed_by_gateway(0).await,
        "the upstream connection must be closed: {}",
        text(bytes)
    );
    gw.stop().await;
}

/// `n` bytes that are not a repeating pattern.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
