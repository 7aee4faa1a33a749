//! Upstream HTTP/1.1 framing, over the wire: what the upstream side of a forward must do, pinned
//! so that any upstream client the gateway uses behaves like hyper's `client::conn::http1` (and
//! is as strict where hyper is strict).
//!
//! Every upstream here is a raw TCP server that writes exact bytes and records exactly what it
//! read (request head as sent, body as framed and decoded, which connection it came on, and
//! whether the gateway closed a connection). Each test asserts what the client got and what the
//! upstream saw; every wait is bounded.
//!
//! Responses (RFC 9112 section 6): chunked with extensions and trailers, a broken or unfinished
//! chunked body, close-delimited bodies, HTTP/1.0 responses, `Connection: close`, 1xx interim
//! responses, 204 / 304 / HEAD (no body whatever `Content-Length` says), heads over hyper's
//! limits, malformed heads, bytes past the end of a body, a response written a byte at a time,
//! and 1 MiB bodies. Requests: how a body is framed (Content-Length, chunked, none, empty), that
//! the request line and header values arrive byte-exact, an upstream that answers before reading
//! a large upload, `Expect: 100-continue`, and an upstream that never answers.
//!
//! "Current behaviour" in a test's comment marks what hyper does today where the RFC leaves a
//! choice or where hyper is lenient: pinned so that a change is a decision, not an accident.
//!
//! Not repeated here: invalid or conflicting Content-Length, transfer codings other than chunked,
//! TE + CL and a truncated body (`upstream_response.rs`); pooling, stale connections and the idle
//! limit (`upstream_pool.rs`); replaying on a closed pooled connection (`upstream_retry.rs`); the
//! `504` itself for a slow upstream (`forwarding.rs`).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, gateway, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(5);

/// How long an upstream connection waits for its next request before it closes: longer than
/// any test, so that a connection is only ever closed by the gateway (or by a reply that says so).
const IDLE: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
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
struct Got {
    /// Which upstream connection (0 = the first accepted).
    conn: usize,
    /// Request line and header lines as received, through the blank line.
    head: Vec<u8>,
    /// The body as framed on the wire (chunk-size lines and trailers included).
    raw_body: Vec<u8>,
    /// The body, decoded.
    body: Vec<u8>,
}

impl Got {
    fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    fn request_line(&self) -> String {
        self.head_text()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Header lines as (name, value) exactly as received (value without its surrounding OWS).
    fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
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
    fn values(&self, name: &str) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
            .collect()
    }
}

/// How the upstream answers one request.
enum Reply {
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

fn keep(bytes: &[u8]) -> Reply {
    Reply::Keep(bytes.to_vec())
}

/// A keep-alive `200` whose body names the connection and the request's index on it.
fn tagged(conn: usize, index: usize) -> Reply {
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
type Responder = dyn Fn(&Got, usize) -> Reply + Send + Sync;

#[derive(Default)]
struct Log {
    conns: AtomicUsize,
    got: Mutex<Vec<Got>>,
    /// Connections the gateway closed (EOF or reset while the upstream waited for a request).
    closed: Mutex<Vec<usize>>,
    changed: Notify,
}

struct Up {
    addr: SocketAddr,
    log: Arc<Log>,
}

impl Up {
    async fn start(respond: impl Fn(&Got, usize) -> Reply + Send + Sync + 'static) -> Self {
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
    async fn always(bytes: &'static [u8]) -> Self {
        Self::start(move |_, _| keep(bytes)).await
    }

    fn conns(&self) -> usize {
        self.log.conns.load(Ordering::SeqCst)
    }

    fn got(&self) -> Vec<Got> {
        self.log.got.lock().unwrap().clone()
    }

    fn last(&self) -> Got {
        self.got().pop().expect("the upstream read no request")
    }

    /// Which connection each request came on, in order.
    fn conn_of_each(&self) -> Vec<usize> {
        self.got().iter().map(|g| g.conn).collect()
    }

    /// Waits (bounded) until the gateway has closed upstream connection `conn`.
    async fn closed_by_gateway(&self, conn: usize) -> bool {
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
    async fn read_requests(&self, n: usize) -> bool {
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
    fn is_closed(&self, conn: usize) -> bool {
        self.log.closed.lock().unwrap().contains(&conn)
    }
}

impl Log {
    fn push(&self, got: Got) {
        self.got.lock().unwrap().push(got);
        self.changed.notify_waiters();
    }

    fn mark_closed(&self, conn: usize) {
        self.closed.lock().unwrap().push(conn);
        self.changed.notify_waiters();
    }
}

/// Why reading stopped.
enum Stop {
    /// The peer closed (EOF or reset).
    Closed,
    /// Nothing within the bound.
    TimedOut,
}

/// Reads more bytes into `buf`; bounded by `deadline`.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Stop> {
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
async fn take_through(
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
async fn take_n(
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
async fn read_body(
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

async fn serve(mut s: TcpStream, conn: usize, log: Arc<Log>, respond: Arc<Responder>) {
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
struct Answer {
    /// The status, or None when the connection broke before a response head.
    status: Option<u16>,
    headers: reqwest::header::HeaderMap,
    /// The whole body, or how it broke.
    body: Result<Vec<u8>, String>,
}

impl Answer {
    /// A client can only take this for a complete response if it had a head and a whole body
    /// that is not the gateway's own 502.
    fn looks_complete(&self) -> bool {
        self.body.is_ok() && self.status.is_some_and(|s| s != 502)
    }
}

/// Sends `req` and reads the whole response; bounded.
async fn fetch(req: reqwest::RequestBuilder) -> Answer {
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

async fn get(c: &reqwest::Client, url: String) -> Answer {
    fetch(c.get(url)).await
}

/// GETs `path` and expects `200` with `body`.
async fn get_ok(c: &reqwest::Client, url: String, body: &str) {
    let got = get(c, url).await;
    assert_eq!(got.status, Some(200), "{got:?}");
    assert_eq!(text(&got.body.expect("a whole body")), body);
}

/// Sends raw bytes to the gateway on a new connection and reads until it closes (bounded).
async fn raw_client(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_to_close(&mut s).await
}

async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
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
fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// `502 bad_gateway` for the response `bytes`, the upstream having read the request, and the
/// gateway closing that upstream connection.
async fn refused_and_closed(bytes: &'static [u8]) {
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

// ---------------------------------------------------------------------------------------------
// Response framing
// ---------------------------------------------------------------------------------------------

/// Chunk extensions (with whitespace and quoted values) are ignored, hex sizes may be uppercase
/// or zero-padded, chunks are joined; the connection then carries the next request.
#[tokio::test]
async fn chunked_with_extensions_and_several_chunks_is_relayed_exactly_and_reused() {
    let up = Up::always(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1;a=b;c=\"d e\"\r\n \r\n5 ; x\r\nworld\r\nA\r\n0123456789\r\n000\r\n\r\n",
    )
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    get_ok(&c, gw.url("/a"), "hello world0123456789").await;
    get_ok(&c, gw.url("/b"), "hello world0123456789").await;
    assert_eq!(up.conn_of_each(), [0, 0], "one connection for both");
    assert!(!up.is_closed(0));
    gw.stop().await;
}

/// A trailer section ends the body (the client gets the exact bytes), and the trailer fields are
/// not relayed: current behaviour, even to a client that sent `TE: trailers` and with the
/// upstream announcing them in `Trailer`.
#[tokio::test]
async fn a_trailer_section_ends_the_body_and_is_not_relayed() {
    let up = Up::always(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-trailer\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\nx-other: u\r\n\r\n").await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    get_ok(&client(), gw.url("/a"), "hello world").await;
    let raw = raw_client(
        gw.addr,
        b"GET /a HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    .await;
    let raw = text(&raw);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{raw}");
    let (body, trailers) = dechunk(body.as_bytes()).unwrap_or_else(|| panic!("bad chunks: {raw}"));
    assert_eq!(text(&body), "hello world");
    assert_eq!(text(&trailers), "", "no trailer fields: {raw}");
    assert!(!head.contains("x-trailer"), "{raw}");
    gw.stop().await;
}

/// A response whose chunked body ended with trailer fields was read to its end, so its
/// connection can carry the next request.
#[tokio::test]
async fn a_response_with_trailers_leaves_its_connection_reusable() {
    let up = Up::always(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n",
    )
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    get_ok(&c, gw.url("/a"), "hello").await;
    get_ok(&c, gw.url("/b"), "hello").await;
    assert_eq!(up.conn_of_each(), [0, 0], "one connection for both");
    gw.stop().await;
}

/// A chunk-size line that is not hex, or a chunked body whose last chunk never comes before the
/// upstream closes: the client never sees a complete body, and the connection is not reused.
#[tokio::test]
async fn a_broken_or_unfinished_chunked_body_is_never_complete_and_not_reused() {
    for (first, close) in [
        // A bad size line after a good chunk; the upstream keeps the connection open.
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"[..],
            false,
        ),
        // A bad size line as the first chunk.
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"[..],
            false,
        ),
        // A chunk longer than its size says.
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"[..],
            false,
        ),
        // The last chunk never comes: the upstream closes after a good chunk.
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"[..],
            true,
        ),
    ] {
        let first = first.to_vec();
        let label = text(&first);
        let up = Up::start(move |g, i| match (g.conn, i) {
            (0, 0) if close => Reply::Close(first.clone()),
            (0, 0) => Reply::Keep(first.clone()),
            (c, i) => tagged(c, i),
        })
        .await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let c = client();
        let got = get(&c, gw.url("/a")).await;
        assert!(!got.looks_complete(), "{label}: {got:?}");
        if !close {
            assert!(
                up.closed_by_gateway(0).await,
                "{label}: the connection is closed"
            );
        }
        get_ok(&c, gw.url("/b"), "c1r0").await;
        assert_eq!(up.conn_of_each(), [0, 1], "{label}");
        gw.stop().await;
    }
}

/// No Content-Length, no Transfer-Encoding: the body runs to the upstream's close; the client
/// gets all of it and the next request opens a new connection.
#[tokio::test]
async fn a_close_delimited_body_is_relayed_whole_and_not_reused() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => Reply::Close(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello, until the close".to_vec(),
        ),
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    get_ok(&c, gw.url("/a"), "hello, until the close").await;
    get_ok(&c, gw.url("/b"), "c1r0").await;
    assert_eq!(up.conn_of_each(), [0, 1]);
    gw.stop().await;
}

/// An HTTP/1.0 response without `Connection: keep-alive` ends its connection: the gateway closes
/// it (the upstream did not) and opens a new one. With `Connection: keep-alive` the connection
/// is reused (current behaviour). Either way the body is relayed, with `Via: 1.0 portcullis`.
#[tokio::test]
async fn http_1_0_responses_close_unless_keep_alive() {
    for (first, reused) in [
        (
            &b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"[..],
            false,
        ),
        (
            &b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"[..],
            true,
        ),
    ] {
        let first = first.to_vec();
        let label = text(&first);
        let up = Up::start(move |g, i| match (g.conn, i) {
            (0, 0) => Reply::Keep(first.clone()),
            (c, i) => tagged(c, i),
        })
        .await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let c = client();
        let got = get(&c, gw.url("/a")).await;
        assert_eq!(got.status, Some(200), "{label}");
        assert_eq!(got.body.as_deref().unwrap(), b"ok", "{label}");
        assert_eq!(got.headers["via"], "1.0 portcullis", "{label}");
        if reused {
            get_ok(&c, gw.url("/b"), "c0r1").await;
            assert_eq!(up.conn_of_each(), [0, 0], "{label}");
            assert!(!up.is_closed(0), "{label}");
        } else {
            assert!(
                up.closed_by_gateway(0).await,
                "{label}: closed by the gateway"
            );
            get_ok(&c, gw.url("/b"), "c1r0").await;
            assert_eq!(up.conn_of_each(), [0, 1], "{label}");
        }
        gw.stop().await;
    }
}

/// `Connection: close` on an HTTP/1.1 response: relayed (without the field), and the gateway
/// closes the connection itself although the upstream left it open.
#[tokio::test]
async fn connection_close_is_honoured_and_not_relayed() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => keep(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"),
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let got = get(&c, gw.url("/a")).await;
    assert_eq!(got.status, Some(200));
    assert_eq!(got.body.as_deref().unwrap(), b"ok");
    assert!(!got.headers.contains_key("connection"), "{got:?}");
    assert!(up.closed_by_gateway(0).await, "closed by the gateway");
    get_ok(&c, gw.url("/b"), "c1r0").await;
    assert_eq!(up.conn_of_each(), [0, 1]);
    gw.stop().await;
}

/// `100 Continue` and `103 Early Hints` before the final response are read past: the client gets
/// the `200` and its body, no 1xx of the upstream's reaches it (current behaviour for 103: not
/// relayed, its `Link` neither), and the connection is reused.
#[tokio::test]
async fn interim_1xx_responses_are_skipped_and_the_connection_reused() {
    for interim in [
        &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
        &b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n"[..],
        &b"HTTP/1.1 103 Early Hints\r\nlink: </a.js>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"[..],
    ] {
        let mut reply = interim.to_vec();
        reply.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let label = text(interim);
        let up = Up::start(move |_, _| Reply::Keep(reply.clone())).await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let c = client();
        let got = get(&c, gw.url("/a")).await;
        assert_eq!(got.status, Some(200), "{label}");
        assert_eq!(got.body.as_deref().unwrap(), b"ok", "{label}");
        assert!(!got.headers.contains_key("link"), "{label}");
        let raw = raw_client(
            gw.addr,
            b"GET /b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        let raw = text(&raw);
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{label}: {raw}");
        assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "{label}: {raw}");
        assert!(raw.ends_with("\r\n\r\nok"), "{label}: {raw}");
        assert_eq!(up.conn_of_each(), [0, 0], "{label}");
        gw.stop().await;
    }
}

/// An upstream that sends interim responses without end cannot keep the exchange reading: past
/// 16 of them (`proxy::h1::head::MAX_INTERIM`) the answer is `502 bad_gateway` and the
/// connection is closed; 16 are still skipped.
#[tokio::test]
async fn endless_interim_responses_are_502_and_close() {
    let mut endless = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(40);
    endless.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    refused_and_closed(Box::leak(endless.into_boxed_slice())).await;
    let mut sixteen = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(16);
    sixteen.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let up = Up::start(move |_, _| Reply::Keep(sixteen.clone())).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let got = get(&client(), gw.url("/a")).await;
    assert_eq!(got.status, Some(200));
    assert_eq!(got.body.as_deref().unwrap(), b"ok");
    gw.stop().await;
}

/// `204` and `304` (to a conditional GET, with the representation's `Content-Length: 1000`)
/// carry no body: relayed at once with none, and the connection carries the next request.
#[tokio::test]
async fn no_content_and_not_modified_have_no_body_and_keep_the_connection() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => keep(b"HTTP/1.1 204 No Content\r\n\r\n"),
        (0, 1) => {
            keep(b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 1000\r\n\r\n")
        }
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let got = get(&c, gw.url("/a")).await;
    assert_eq!(got.status, Some(204));
    assert_eq!(got.body.unwrap(), b"");
    let got = fetch(c.get(gw.url("/b")).header("if-none-match", "\"v1\"")).await;
    assert_eq!(got.status, Some(304));
    assert_eq!(got.headers["etag"], "\"v1\"");
    assert_eq!(got.body.unwrap(), b"");
    assert_eq!(up.got()[1].values("if-none-match"), ["\"v1\""]);
    get_ok(&c, gw.url("/c"), "c0r2").await;
    assert_eq!(up.conn_of_each(), [0, 0, 0]);
    gw.stop().await;
}

/// A `204` that claims `Content-Length: 5` and sends 5 stray bytes: the client gets the 204 with
/// no body; the stray bytes make the gateway close that connection (current behaviour: hyper
/// sees unexpected bytes on an idle connection), so the next request gets its own correct
/// response on a new connection, never the stray bytes.
#[tokio::test]
async fn stray_bytes_after_a_204_close_the_connection_and_never_reach_the_next_request() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => keep(b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nhello"),
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let got = get(&c, gw.url("/a")).await;
    assert_eq!(got.status, Some(204));
    assert_eq!(got.body.unwrap(), b"");
    assert!(
        up.closed_by_gateway(0).await,
        "the poisoned connection is closed"
    );
    get_ok(&c, gw.url("/b"), "c1r0").await;
    assert_eq!(up.conn_of_each(), [0, 1]);
    gw.stop().await;
}

/// `HEAD` answered with `Content-Length: 1000` and no body: the client gets the field and no
/// body, and the connection carries the next request.
#[tokio::test]
async fn head_with_content_length_has_no_body_and_keeps_the_connection() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (_, 0) | (_, 1) if g.request_line().starts_with("HEAD ") => {
            keep(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\ncontent-type: text/plain\r\n\r\n")
        }
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let got = fetch(c.head(gw.url("/a"))).await;
    assert_eq!(got.status, Some(200));
    assert_eq!(got.headers["content-length"], "1000");
    assert_eq!(got.body.unwrap(), b"");
    let raw = raw_client(
        gw.addr,
        b"HEAD /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let raw = text(&raw);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.contains("\r\ncontent-length: 1000\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\n"), "no body after the head: {raw}");
    get_ok(&c, gw.url("/b"), "c0r2").await;
    assert_eq!(up.conn_of_each(), [0, 0, 0]);
    gw.stop().await;
}

/// A `200` with `n` header fields (`content-length` among them).
fn with_fields(n: usize) -> Vec<u8> {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..n - 1 {
        head.push_str(&format!("x-f{i}: v\r\n"));
    }
    head.push_str("content-length: 2\r\n\r\nok");
    head.into_bytes()
}

/// A `200` with one `x-big` field of `len` bytes.
fn with_big_field(len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\nok",
        "a".repeat(len)
    )
    .into_bytes()
}

/// Heads over the upstream client's limits are `502 bad_gateway` and close the connection:
/// at most 100 header fields in at most 64 KiB (`proxy::h1::head::MAX_HEADERS`, `MAX_HEAD`;
/// Envoy's default is 60 KiB): here 101 and 200 fields, a 100 KiB and a 500 KiB field.
#[tokio::test]
async fn response_heads_over_the_limits_are_502_and_close() {
    for bytes in [
        with_fields(101),
        with_fields(200),
        with_big_field(100 * 1024),
        with_big_field(500 * 1024),
    ] {
        refused_and_closed(Box::leak(bytes.into_boxed_slice())).await;
    }
}

/// Within those limits a head is relayed: exactly 100 fields, and a single 60 KiB field. (A raw client reads the answer: reqwest's own 100-field limit would refuse
/// the 100 fields plus the gateway's `via`, `x-request-id` and `date`.)
#[tokio::test]
async fn response_heads_within_the_limits_are_relayed() {
    for (bytes, marker) in [
        (with_fields(100), "\r\nx-f98: v\r\n".to_string()),
        (
            with_big_field(60 * 1024),
            format!("\r\nx-big: {}\r\n", "a".repeat(60 * 1024)),
        ),
    ] {
        let up = Up::start(move |_, _| Reply::Keep(bytes.clone())).await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let raw = raw_client(
            gw.addr,
            b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        let raw = text(&raw);
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &raw[..100]);
        assert!(raw.contains(&marker));
        assert!(raw.ends_with("\r\n\r\nok"));
        assert!(!up.is_closed(0), "kept");
        gw.stop().await;
    }
}

/// Malformed status lines and heads are `502 bad_gateway`, and the connection is closed.
#[tokio::test]
async fn malformed_heads_are_502_and_close() {
    for bytes in [
        &b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 99 Low\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 1000 High\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"http/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        // A field line without a colon.
        b"HTTP/1.1 200 OK\r\nx-no-colon\r\ncontent-length: 2\r\n\r\nok",
        // Whitespace between the field name and the colon.
        b"HTTP/1.1 200 OK\r\nx-space : v\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nx-tab\t: v\r\ncontent-length: 2\r\n\r\nok",
        // An empty field name.
        b"HTTP/1.1 200 OK\r\n: v\r\ncontent-length: 2\r\n\r\nok",
        // obs-fold: a continuation line.
        b"HTTP/1.1 200 OK\r\nx-fold: a\r\n b\r\ncontent-length: 2\r\n\r\nok",
        // NUL, or a bare CR, inside a field value.
        b"HTTP/1.1 200 OK\r\nx-nul: a\0b\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nx-cr: a\rb\r\ncontent-length: 2\r\n\r\nok",
    ] {
        refused_and_closed(bytes).await;
    }
}

/// What hyper's parser lets through today, relayed as a normal response on a kept connection
/// (current behaviour, recorded for the new client to match or to tighten knowingly): bare LF
/// line endings, a status line without a reason phrase (with or without its space), an empty
/// line before the status line, a status code above 599 (relayed as `600`), and obs-text in a
/// field value.
#[tokio::test]
async fn lenient_heads_are_relayed_as_today() {
    for (bytes, status, field) in [
        (
            &b"HTTP/1.1 200 OK\ncontent-length: 2\nx-lf: v\n\nok"[..],
            200,
            Some(("x-lf", &b"v"[..])),
        ),
        (b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok", 200, None),
        (b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\nok", 200, None),
        (
            b"\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            200,
            None,
        ),
        (
            b"HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nok",
            600,
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\nx-obs: caf\xe9\r\ncontent-length: 2\r\n\r\nok",
            200,
            Some(("x-obs", &b"caf\xe9"[..])),
        ),
    ] {
        let label = text(bytes);
        let up = Up::start(move |g, i| match (g.conn, i) {
            (0, 0) => keep(bytes),
            (c, i) => tagged(c, i),
        })
        .await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let c = client();
        let got = get(&c, gw.url("/a")).await;
        assert_eq!(got.status, Some(status), "{label}: {got:?}");
        assert_eq!(got.body.as_deref().unwrap(), b"ok", "{label}");
        if let Some((name, value)) = field {
            assert_eq!(got.headers[name].as_bytes(), value, "{label}");
        }
        get_ok(&c, gw.url("/b"), "c0r1").await;
        assert_eq!(up.conn_of_each(), [0, 0], "{label}");
        gw.stop().await;
    }
}

/// Bytes after the end of a Content-Length body: the client gets exactly the body, and the
/// stray bytes never become the next request's response, sent at once: that request gets its
/// own answer on a new connection, or a clean `502` if it went out on the poisoned one. The
/// gateway closes the poisoned connection. Current behaviour: hyper finds the bytes on the idle
/// connection and closes it at once, so the next request always goes out on a new connection.
#[tokio::test]
async fn bytes_after_a_content_length_body_never_reach_the_next_request() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => keep(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA"),
        // Were the connection reused, the gateway would read "EXTRA" and then this.
        (0, 1) => keep(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nc0r1"),
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    get_ok(&c, gw.url("/a"), "ok").await;
    let got = get(&c, gw.url("/b")).await;
    let body = text(got.body.as_deref().unwrap_or_default());
    assert!(!body.contains("EXTRA"), "{got:?}");
    match got.status {
        Some(200) => {
            assert_eq!(body, "c1r0", "its own answer, on a new connection");
            assert_eq!(up.conn_of_each(), [0, 1]);
        }
        Some(502) => assert!(body.contains("\"code\":\"bad_gateway\""), "{body}"),
        _ => panic!("neither the right answer nor a clean 502: {got:?}"),
    }
    assert!(
        up.closed_by_gateway(0).await,
        "the poisoned connection is closed"
    );
    gw.stop().await;
}

/// A response written one byte at a time (head, chunk lines, data, last chunk), 1 ms apart:
/// relayed whole, and the connection reused.
#[tokio::test]
async fn a_response_written_a_byte_at_a_time_is_relayed_whole() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => Reply::Trickle(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: b\r\n\r\n5;e=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec(),
            Duration::from_millis(1),
        ),
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let got = get(&c, gw.url("/a")).await;
    assert_eq!(got.status, Some(200));
    assert_eq!(got.headers["x-a"], "b");
    assert_eq!(text(&got.body.unwrap()), "hello world");
    get_ok(&c, gw.url("/b"), "c0r1").await;
    assert_eq!(up.conn_of_each(), [0, 0]);
    gw.stop().await;
}

/// `n` bytes that are not a repeating pattern.
fn noise(n: usize, seed: u64) -> Vec<u8> {
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

/// `body` chunked in pieces of varied sizes (1 byte up to 64 KiB).
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < body.len() {
        let size = [1, 7, 4096, 65536, 1000, 16384][i % 6].min(body.len() - at);
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend_from_slice(&body[at..at + size]);
        out.extend_from_slice(b"\r\n");
        (at, i) = (at + size, i + 1);
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// 1 MiB bodies, by Content-Length and chunked, arrive byte-exact, on one connection.
#[tokio::test]
async fn one_mebibyte_bodies_are_relayed_byte_exact() {
    let (a, b) = (noise(1 << 20, 7), noise(1 << 20, 11));
    let (hash_a, hash_b) = (sha256(&a), sha256(&b));
    let mut by_length = b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n".to_vec();
    by_length.extend_from_slice(&a);
    let mut by_chunks = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    by_chunks.extend_from_slice(&chunked(&b));
    let up = Up::start(move |_, i| match i {
        0 => Reply::Keep(by_length.clone()),
        _ => Reply::Keep(by_chunks.clone()),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    for (path, hash) in [("/a", hash_a), ("/b", hash_b)] {
        let got = get(&c, gw.url(path)).await;
        assert_eq!(got.status, Some(200));
        let body = got.body.unwrap();
        assert_eq!(body.len(), 1 << 20, "{path}");
        assert!(sha256(&body) == hash, "{path}: the body differs");
    }
    assert_eq!(up.conn_of_each(), [0, 0]);
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Request framing (what the upstream receives)
// ---------------------------------------------------------------------------------------------

/// A 1 MiB request body with Content-Length arrives with exactly one `content-length` and no
/// `transfer-encoding`, byte for byte; the connection then carries the next request (so nothing
/// was sent past the body).
#[tokio::test]
async fn a_content_length_request_body_arrives_with_one_content_length() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let body = noise(1 << 20, 3);
    let got = fetch(c.post(gw.url("/p")).body(body.clone())).await;
    assert_eq!(text(&got.body.unwrap()), "c0r0");
    let seen = up.last();
    assert!(seen.request_line().starts_with("POST /p HTTP/1.1"));
    assert_eq!(seen.values("content-length"), ["1048576"]);
    assert!(
        seen.values("transfer-encoding").is_empty(),
        "{}",
        seen.head_text()
    );
    assert!(
        sha256(&seen.raw_body) == sha256(&body),
        "the body arrives as sent"
    );
    get_ok(&c, gw.url("/next"), "c0r1").await;
    assert_eq!(up.last().request_line(), "GET /next HTTP/1.1");
    assert_eq!(up.conn_of_each(), [0, 0]);
}

/// A body of unknown length (streamed by the client, chunked to the gateway) arrives chunked:
/// `transfer-encoding: chunked`, no `content-length`, chunks that decode to the sent bytes, and
/// an empty piece of the stream does not end the body early; the connection then carries the
/// next request.
#[tokio::test]
async fn a_streamed_request_body_arrives_chunked() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let pieces: Vec<Vec<u8>> = vec![
        b"ab".to_vec(),
        Vec::new(),
        b"cdef".to_vec(),
        noise(70_000, 5),
        b"z".to_vec(),
    ];
    let sent: Vec<u8> = pieces.concat();
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    let c = client();
    let got = fetch(
        c.post(gw.url("/p"))
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(got.status, Some(200), "{got:?}");
    let seen = up.last();
    assert_eq!(seen.values("transfer-encoding"), ["chunked"]);
    assert!(
        seen.values("content-length").is_empty(),
        "{}",
        seen.head_text()
    );
    assert!(seen.body == sent, "the chunks decode to the sent bytes");
    assert!(
        seen.raw_body.ends_with(b"\r\n0\r\n\r\n"),
        "one last chunk, no trailers"
    );
    get_ok(&c, gw.url("/next"), "c0r1").await;
    assert_eq!(up.last().request_line(), "GET /next HTTP/1.1");
    assert_eq!(up.conn_of_each(), [0, 0]);
}

/// A GET without a body carries neither `content-length` nor `transfer-encoding`; a POST with
/// `Content-Length: 0` arrives with `content-length: 0`; a POST with no framing at all (empty by
/// RFC 9112 section 6.3) arrives with neither (current behaviour).
#[tokio::test]
async fn bodyless_and_empty_requests_are_framed_as_such() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    for (request, cl) in [
        (
            &b"GET /g HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"[..],
            None,
        ),
        (
            b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            Some("0"),
        ),
        (
            b"POST /q HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            None,
        ),
        (
            b"DELETE /d HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            None,
        ),
    ] {
        let label = text(request);
        let raw = text(&raw_client(gw.addr, request).await);
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{label}: {raw}");
        let seen = up.last();
        let line = label.lines().next().unwrap();
        assert_eq!(seen.request_line(), line, "{label}");
        assert_eq!(
            seen.values("content-length"),
            cl.into_iter().collect::<Vec<_>>(),
            "{label}: {}",
            seen.head_text()
        );
        assert!(seen.values("transfer-encoding").is_empty(), "{label}");
        assert!(seen.raw_body.is_empty(), "{label}");
    }
}

/// The request line goes out as `METHOD /path?query HTTP/1.1` with the query byte-exact, and
/// header values byte-exact (case, inner whitespace, tabs, obs-text, repeated fields in order).
/// Names arrive lowercased (current behaviour: hyper's `HeaderMap`), `Host` is the upstream's,
/// and the gateway's client adds no `connection`, `keep-alive`, `te` or framing fields of its own.
#[tokio::test]
async fn the_request_line_and_field_values_arrive_byte_exact() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let query = "q=a%20b&Sort=DESC&e=&x=%C3%A9&p=a+b;c&t=%7E~!$'()*,:@/?&z=%25";
    let request = format!(
        "GET /items/v1?{query} HTTP/1.1\r\nHost: gw.example\r\nX-Mixed-Case: VaLuE  With   Spaces\r\nx-tab: a\tb\r\nX-Multi: 1\r\nx-multi: two, Three\r\nconnection: close\r\n\r\n"
    );
    let mut request = request.into_bytes();
    let at = request.len() - 2;
    request.splice(at..at, b"x-obs: caf\xe9\r\n".iter().copied());
    let raw = text(&raw_client(gw.addr, &request).await);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let seen = up.last();
    assert_eq!(
        seen.request_line(),
        format!("GET /items/v1?{query} HTTP/1.1")
    );
    let fields = seen.fields();
    let names: Vec<String> = fields.iter().map(|(n, _)| text(n)).collect();
    for name in ["x-mixed-case", "x-tab", "x-multi", "x-obs", "host"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(
        names.iter().all(|n| *n == n.to_ascii_lowercase()),
        "names lowercased: {names:?}"
    );
    assert_eq!(seen.values("x-mixed-case"), ["VaLuE  With   Spaces"]);
    assert_eq!(seen.values("x-tab"), ["a\tb"]);
    assert_eq!(seen.values("x-multi"), ["1", "two, Three"]);
    let obs: Vec<_> = fields.iter().filter(|(n, _)| n == b"x-obs").collect();
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0].1, b"caf\xe9");
    assert_eq!(
        seen.values("host"),
        [up.addr.to_string()],
        "exactly one host"
    );
    for hop in [
        "connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "content-length",
    ] {
        assert!(seen.values(hop).is_empty(), "{hop}: {}", seen.head_text());
    }
    assert_eq!(seen.values("x-forwarded-host"), ["gw.example"]);
}

/// Reads one response head from `s` (through its blank line); bounded.
async fn read_response_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    match take_through(s, buf, b"\r\n\r\n", Instant::now() + WAIT).await {
        Ok(head) => text(&head),
        Err(Stop::Closed) => panic!("closed before a response head: {}", text(buf)),
        Err(Stop::TimedOut) => panic!("no response head within the bound: {}", text(buf)),
    }
}

/// Posts a 4 MiB body on a raw connection (written by a task that stops at the first error) and
/// reads what the gateway answers until it closes: (answer, bytes the client managed to write).
async fn post_large_raw(addr: SocketAddr) -> (String, usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 4194304\r\n\r\n")
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        let mut wrote = 0;
        for _ in 0..64 {
            if w.write_all(&piece).await.is_err() {
                break;
            }
            wrote += piece.len();
        }
        wrote
    });
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline.into(), r.read_buf(&mut out)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the gateway neither finished nor closed: {}", text(&out)),
        }
    }
    let wrote = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the upload stops within the bound")
        .unwrap();
    (text(&out), wrote)
}

/// An upstream that answers `413` as soon as it has the head of a 4 MiB upload, leaves the body
/// unread and closes: nothing hangs, the gateway closes the client connection, and the upstream
/// connection is not reused. When the upstream closes carefully (shuts down its side and drains
/// what still comes) the client gets the `413` and its body. When it closes at once, the kernel
/// resets the connection under the unread upload: the client gets the `413` or a
/// `502 bad_gateway` (current behaviour: `502`, every run so far).
#[tokio::test]
async fn an_early_answer_to_a_large_upload_is_relayed_or_502_and_nothing_hangs() {
    for linger in [true, false] {
        let up = Up::start(move |g, i| match (g.conn, i) {
            (0, 0) => Reply::Early {
                bytes: b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbig!".to_vec(),
                linger,
            },
            (c, i) => tagged(c, i),
        })
        .await;
        let gw = gateway(CONFIG, Some(up.addr)).await;
        let started = Instant::now();
        let (answer, wrote) = post_large_raw(gw.addr).await;
        assert!(started.elapsed() < WAIT, "linger {linger}");
        assert!(
            wrote < 4 << 20,
            "the gateway stopped reading the upload (linger {linger})"
        );
        let status = &answer[..answer.find("\r\n").unwrap_or(answer.len())];
        if linger {
            assert_eq!(status, "HTTP/1.1 413 Payload Too Large", "{answer}");
            assert!(answer.ends_with("\r\n\r\nbig!"), "{answer}");
        } else {
            assert!(
                status == "HTTP/1.1 413 Payload Too Large" || status == "HTTP/1.1 502 Bad Gateway",
                "{answer}"
            );
            if status.contains("502") {
                assert!(answer.contains("\"code\":\"bad_gateway\""), "{answer}");
            }
        }
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(up.got()[0].request_line().starts_with("POST /up HTTP/1.1"));
        get_ok(&client(), gw.url("/b"), "c1r0").await;
        assert_eq!(up.conn_of_each(), [0, 1], "linger {linger}");
        gw.stop().await;
    }
}

/// `Expect: 100-continue`: the client gets one `100 Continue` (the gateway's own) before it
/// sends the body, then the upstream's final response; the upstream gets the body and, today,
/// the `expect` field too (it answers its own `100 Continue`, which the gateway reads past).
#[tokio::test]
async fn expect_100_continue_gets_one_100_then_the_final_response() {
    let up = Up::start(|g, i| tagged(g.conn, i)).await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let interim = read_response_head(&mut s, &mut buf).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut rest = buf;
    rest.extend_from_slice(&read_to_close(&mut s).await);
    let rest = text(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(rest.ends_with("\r\n\r\nc0r0"), "{rest}");
    assert!(!rest.contains(" 100 "), "only one 100: {rest}");
    let seen = up.last();
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.values("content-length"), ["5"]);
    assert_eq!(seen.values("expect"), ["100-continue"]);
}

/// An upstream that reads the request and never answers: `504 upstream_timeout` after
/// `upstream_response_timeout`, and that connection is closed by the gateway, never reused (a
/// late answer on it would be taken for the next request's). `forwarding.rs` covers the 504.
#[tokio::test]
async fn an_upstream_that_never_answers_is_504_and_its_connection_closed() {
    let up = Up::start(|g, i| match (g.conn, i) {
        (0, 0) => Reply::Silent,
        (c, i) => tagged(c, i),
    })
    .await;
    let config = CONFIG.replace(
        "upstream_response_timeout = \"1s\"",
        "upstream_response_timeout = \"300ms\"",
    );
    let gw = gateway(&config, Some(up.addr)).await;
    let c = client();
    let started = Instant::now();
    let resp = tokio::time::timeout(WAIT, c.get(gw.url("/a")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(json(resp).await["code"], "upstream_timeout");
    assert!(
        up.closed_by_gateway(0).await,
        "the silent connection is closed"
    );
    get_ok(&c, gw.url("/b"), "c1r0").await;
    assert_eq!(up.conn_of_each(), [0, 1]);
    assert_eq!(up.conns(), 2);
    gw.stop().await;
}

/// While a response is still coming (head and part of the body relayed, the rest held back),
/// its connection carries no second request: one sent meanwhile goes out on a new connection
/// (no pipelining), and each gets its own answer.
#[tokio::test]
async fn a_busy_connection_never_carries_a_second_request() {
    let gate = Arc::new(Notify::new());
    let held = gate.clone();
    let up = Up::start(move |g, i| match (g.conn, i) {
        (0, 0) => Reply::Gated {
            before: b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nfirs".to_vec(),
            gate: held.clone(),
            after: b"t-c0".to_vec(),
        },
        (c, i) => tagged(c, i),
    })
    .await;
    let gw = gateway(CONFIG, Some(up.addr)).await;
    let c = client();
    let first = tokio::time::timeout(WAIT, c.get(gw.url("/a")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), 200);
    assert!(up.read_requests(1).await);
    get_ok(&c, gw.url("/b"), "c1r0").await;
    gate.notify_one();
    let body = tokio::time::timeout(WAIT, first.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&body[..], b"first-c0");
    assert_eq!(up.conn_of_each(), [0, 1]);
    // Both connections are idle now, and either carries the next request.
    let got = get(&c, gw.url("/c")).await;
    let body = text(&got.body.unwrap());
    assert!(body == "c0r1" || body == "c1r1", "{body}");
    assert_eq!(up.conns(), 2);
    gw.stop().await;
}
