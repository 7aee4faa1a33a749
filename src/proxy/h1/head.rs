//! Head: the request head the gateway writes upstream, and the response head it reads back.
//!
//! Request framing follows what the message says (RFC 9112 section 6): no body when the body is
//! already at its end, the client's `Content-Length` when it sent one, a `Content-Length` from
//! an exact size, otherwise `Transfer-Encoding: chunked` (GET, HEAD and CONNECT send no body
//! of unknown length). Response framing (RFC 9112 section 6.3): none for `HEAD`, 1xx, 204 and
//! 304; `chunked` when it is the final coding; read to the close for any other coding (the
//! pipeline's `response::check` refuses that); else `Content-Length`, which must be one valid
//! number however often it is repeated; else read to the close. A response is parsed strictly
//! (httparse: no obs-fold, no bare LF in header lines, no spaces before a colon), with at most
//! [`MAX_HEADERS`] fields in [`MAX_HEAD`] bytes.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body::Body as HttpBody;

use super::H1Error;
use crate::proxy::body::Body;
use crate::proxy::response::only_chunked;

/// Most header fields in an upstream response head.
pub const MAX_HEADERS: usize = 100;
/// Largest upstream response head, in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most interim (1xx) responses before the final one: an upstream streaming `100 Continue`
/// forever would otherwise keep the exchange reading without end.
pub const MAX_INTERIM: u32 = 16;

/// How a message's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Decides the request's framing and sets its headers to say so.
pub fn request_framing(method: &Method, h: &mut HeaderMap, body: &Body) -> Framing {
    h.remove(TRANSFER_ENCODING);
    if body.is_end_stream() {
        return Framing::Empty;
    }
    if let Some(n) = content_length(h) {
        return Framing::Length(n);
    }
    h.remove(CONTENT_LENGTH);
    if let Some(n) = body.size_hint().exact() {
        h.insert(CONTENT_LENGTH, HeaderValue::from(n));
        return Framing::Length(n);
    }
    match *method {
        Method::GET | Method::HEAD | Method::CONNECT => Framing::Empty,
        _ => {
            h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            Framing::Chunked
        }
    }
}

/// `METHOD target HTTP/1.1`, the fields, the empty line.
pub fn encode_request(method: &Method, target: &str, h: &HeaderMap) -> Bytes {
    let fields: usize = h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let mut out = BytesMut::with_capacity(method.as_str().len() + target.len() + fields + 16);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in h {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and fields.
    pub parts: http::response::Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another exchange after this one.
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buf`, removing it; `Ok(None)` when `buf` does not
/// hold a whole head yet. An interim (1xx other than 101) response is consumed and skipped,
/// counted in `interim` (at most [`MAX_INTERIM`]). The fields go into `fields` (its room reused;
/// taken when a head is complete).
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    fields: &mut HeaderMap,
    interim: &mut u32,
) -> Result<Option<ResponseHead>, H1Error> {
    loop {
        fields.clear();
        let Some(head) = parse_one(buf, method, fields)? else {
            return Ok(None);
        };
        let code = head.parts.status.as_u16();
        if (100..200).contains(&code) && code != 101 {
            *interim += 1;
            if *interim > MAX_INTERIM {
                return Err(H1Error::Parse("too many interim (1xx) responses".into()));
            }
            continue;
        }
        return Ok(Some(head));
    }
}

/// What the framing and persistence rules need, noted while the fields are copied.
#[derive(Default)]
struct Seen {
    transfer_encoding: bool,
    content_length: Option<Result<u64, ()>>,
    close: bool,
    keep_alive: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if *name == CONTENT_LENGTH {
            self.content_length = match (self.content_length, content_length_value(value)) {
                (None, Some(n)) => Some(Ok(n)),
                (Some(Ok(a)), Some(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        } else if *name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if *name == CONNECTION {
            for token in value
                .as_bytes()
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
            {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
}

fn parse_one(
    buf: &mut BytesMut,
    method: &Method,
    headers: &mut HeaderMap,
) -> Result<Option<ResponseHead>, H1Error> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(H1Error::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::HeadTooLarge),
        Err(e) => return Err(H1Error::Parse(e.to_string())),
    };
    if len > MAX_HEAD {
        return Err(H1Error::HeadTooLarge);
    }
    let status = StatusCode::from_u16(res.code.unwrap_or(0))
        .map_err(|_| H1Error::Parse("invalid status code".into()))?;
    let version = match res.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Offsets first: the values are then sliced out of the head's own (shared) bytes.
    let base = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(res.headers.len());
    for f in res.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| H1Error::Parse("invalid header name".into()))?;
        let start = f.value.as_ptr() as usize - base;
        spans.push((name, start, start + f.value.len()));
    }
    let bytes = buf.split_to(len).freeze();
    let mut seen = Seen::default();
    for (name, start, end) in spans {
        let value = HeaderValue::from_maybe_shared(bytes.slice(start..end))
            .map_err(|_| H1Error::Parse("invalid header value".into()))?;
        seen.note(&name, &value);
        headers.append(name, value);
    }
    // HTTP/1.1 persists unless a `Connection` field says `close`; HTTP/1.0 only with
    // `keep-alive`; never after a 101.
    let keep_alive = !seen.close
        && (version == Version::HTTP_11 || seen.keep_alive)
        && status != StatusCode::SWITCHING_PROTOCOLS;
    let framing = response_framing(status, version, method, &seen, headers)?;
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = std::mem::take(headers);
    Ok(Some(ResponseHead {
        parts,
        framing,
        keep_alive,
    }))
}

fn response_framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    seen: &Seen,
    h: &HeaderMap,
) -> Result<Framing, H1Error> {
    let code = status.as_u16();
    if code < 200 || code == 204 || code == 304 || *method == Method::HEAD {
        return Ok(Framing::Empty);
    }
    if seen.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(H1Error::Parse(
                "Transfer-Encoding on an HTTP/1.0 response".into(),
            ));
        }
        return Ok(if only_chunked(h) {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match seen.content_length {
        None => Ok(Framing::Close),
        Some(Ok(0)) => Ok(Framing::Empty),
        Some(Ok(n)) => Ok(Framing::Length(n)),
        Some(Err(())) => Err(H1Error::Parse(
            "invalid or conflicting Content-Length".into(),
        )),
    }
}

/// The one value of every `Content-Length` field (lists included), if they all agree and parse.
pub fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut found = None;
    for v in h.get_all(CONTENT_LENGTH) {
        let n = content_length_value(v)?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// The one number of a `Content-Length` field (`5` or a list of equal ones, `5, 5`).
fn content_length_value(v: &HeaderValue) -> Option<u64> {
    let mut found = None;
    for item in v.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        let n = digits(item)?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// A decimal number without sign or spaces, that fits a u64.
pub fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, H1Error> {
        parse_response(
            &mut BytesMut::from(raw),
            &method,
            &mut HeaderMap::new(),
            &mut 0,
        )
    }

    #[test]
    fn framing_of_responses() {
        let f = |raw: &str| parse(raw, Method::GET).unwrap().unwrap().framing;
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Framing::Close
        );
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
            Framing::Empty
        );
        let head = parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD);
        assert_eq!(head.unwrap().unwrap().framing, Framing::Empty);
    }

    #[test]
    fn bad_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n",
        ] {
            assert!(parse(raw, Method::GET).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                   HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        let head = parse(raw, Method::POST).unwrap().unwrap();
        assert_eq!(head.parts.status, 201);
        assert!(
            parse("HTTP/1.1 200 OK\r\ncontent-len", Method::GET)
                .unwrap()
                .is_none()
        );
        let endless = "HTTP/1.1 100 Continue\r\n\r\n".repeat(17);
        assert!(parse(&endless, Method::GET).is_err());
    }

    #[test]
    fn persistence() {
        let alive = |raw: &str| parse(raw, Method::GET).unwrap().unwrap().keep_alive;
        assert!(alive("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!alive("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"));
        assert!(!alive("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(alive(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!alive(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nconnection: close\r\n\r\n"
        ));
    }
}
