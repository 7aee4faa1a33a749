//! Wire helpers for the slow-client, limit and flood tests: raw sockets, raw upstreams, h2 frames,
//! and the process's memory. Every wait here is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// This process's resident memory, KiB (the gateway under test runs in it).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads until the peer closes (EOF or reset); `Some((bytes, elapsed))`, or None past `bound`.
pub async fn read_until_closed<S: AsyncRead + Unpin>(
    s: &mut S,
    bound: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = bound.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((out, started.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one request or response head (through the blank line); None on close or after 5 s.
pub async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !head.ends_with(b"\r\n\r\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// `Content-Length` of a head, 0 when absent.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// What a raw upstream saw: connections accepted, request heads per connection, whether the
/// gateway closed a connection it held.
#[derive(Debug, Default)]
pub struct RawLog {
    pub connections: AtomicUsize,
    pub heads: Mutex<Vec<(usize, String)>>,
    pub closed_by_gateway: AtomicUsize,
}

impl RawLog {
    pub fn heads(&self) -> Vec<(usize, String)> {
        self.heads.lock().unwrap().clone()
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn closed_by_gateway(&self) -> usize {
        self.closed_by_gateway.load(Ordering::SeqCst)
    }
}

/// A raw TCP upstream on 127.0.0.1:0: each accepted connection is handed to `serve` with its
/// index and the shared log.
pub async fn raw_upstream<F, Fut>(serve: F) -> (SocketAddr, Arc<RawLog>)
where
    F: Fn(TcpStream, usize, Arc<RawLog>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(RawLog::default());
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = log2.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, n, log2.clone()));
        }
    });
    (addr, log)
}

/// Holds `s` open until the gateway closes it (counted in the log) or 30 s pass.
pub async fn hold_until_closed(mut s: TcpStream, log: &RawLog) {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                log.closed_by_gateway.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(Ok(_)) => {}
            Err(_) => return,
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `bound` passes; returns whether it held.
pub async fn eventually(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A HEADERS frame (END_HEADERS | END_STREAM) for `GET path` with HPACK literals only.
pub fn h2_get(stream: u32, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    block.push(0x04); // :path, literal without indexing
    block.push(path.len() as u8);
    block.extend_from_slice(path.as_bytes());
    block.push(0x01); // :authority, literal without indexing
    block.push(1);
    block.push(b't');
    h2_frame(0x1, 0x4 | 0x1, stream, &block)
}

/// Parses frames out of `bytes`: (type, flags, stream, payload).
pub fn h2_frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len =
            (bytes[at] as usize) << 16 | (bytes[at + 1] as usize) << 8 | bytes[at + 2] as usize;
        if at + 9 + len > bytes.len() {
            break;
        }
        let stream =
            u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]])
                & 0x7fff_ffff;
        out.push((
            bytes[at + 3],
            bytes[at + 4],
            stream,
            bytes[at + 9..at + 9 + len].to_vec(),
        ));
        at += 9 + len;
    }
    out
}

pub const GOAWAY: u8 = 0x7;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;

/// Connects to `addr` from the loopback address `from` (127.0.0.x).
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    sock.connect(addr).await.unwrap()
}

/// Writes all of `bytes`, ignoring a peer that already closed.
pub async fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes).await;
}
