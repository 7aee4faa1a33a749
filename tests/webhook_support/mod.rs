//! Webhook test support: the reference algorithms written independently of the gateway (plain
//! HMAC-SHA256 as the partner guide and the Standard Webhooks specification describe them),
//! secret files, and a raw-socket POST.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The test clock's start (Unix seconds).
pub const T0: u64 = 1_700_000_000;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Contio's guide: hex HMAC-SHA256 of `timestamp + "." + body` under the secret's UTF-8 bytes.
pub fn contio_signature(secret: &str, ts: &str, body: &[u8]) -> String {
    let mac = hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the decoded
/// `whsec_` secret.
pub fn standard_signature(whsec: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(whsec.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mac = hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Writes `secret` to a fresh file and returns its absolute path.
pub fn secret_file(secret: &str) -> PathBuf {
    let dir = crate::common::temp_dir("whsecret");
    let path = dir.join("secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// Sends `head` (request line and headers, without the blank line) and `body` chunked in
/// pieces of `chunk` bytes on a fresh connection (with `Connection: close`); returns the status
/// and the whole response.
pub async fn raw_chunked_post(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    chunk: usize,
) -> (u16, String) {
    let mut bytes =
        format!("{head}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    for piece in body.chunks(chunk) {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let out = crate::common::raw_exchange(addr, &bytes, Duration::from_secs(5)).await;
    (status_of(&out), out)
}

/// The status code of a raw HTTP/1.1 response.
pub fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
