//! Upstream response check: the framing rules an upstream response must meet to be relayed.
//!
//! hyper's client already refuses (as a broken exchange, so `502` with the connection closed) a
//! `Content-Length` that is invalid or that disagrees with another `Content-Length`, and a
//! `Transfer-Encoding` on an HTTP/1.0 response. What it lets through is checked here:
//! - `Transfer-Encoding` other than a single, final `chunked` (hyper would read such a body
//!   until the connection closes, so a cut connection would pass for a complete body): `502`;
//! - `Transfer-Encoding: chunked` beside `Content-Length`: the body is framed by chunked alone
//!   (RFC 9112 section 6.3) and relayed complete, with the `Content-Length` removed;
//! - `101 Switching Protocols` to a request that asked for no upgrade: `502`.
//!
//! An early answer (the upstream responds before the request body is all sent, and closes)
//! tells an HTTP/1.x client `Connection: close`: the rest of its body is left unread.
//!
//! An upstream's own `RateLimit` / `RateLimit-Policy` fields are never replaced by the gateway's
//! ([`keep_upstream_rate_limit`]): both are listed, so a client heeds the stricter.
//!
//! A refused response's body is dropped unread, which closes its upstream connection rather
//! than returning it to the pool.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, StatusCode, Version};

use crate::error::Reject;
use crate::log_limit::LogLimit;
use crate::ratelimit::{RATELIMIT, RATELIMIT_POLICY};

static REFUSED: LogLimit = LogLimit::per_secs(10);

/// Checks (and where allowed repairs) the head of an upstream response.
pub fn check(status: StatusCode, h: &mut HeaderMap, asked_upgrade: bool) -> Result<(), Reject> {
    if status == StatusCode::SWITCHING_PROTOCOLS && !asked_upgrade {
        return refuse("101 to a request that asked for no upgrade");
    }
    if !h.contains_key(TRANSFER_ENCODING) {
        return Ok(());
    }
    if !only_chunked(h) {
        return refuse("a transfer coding other than a single final chunked");
    }
    h.remove(CONTENT_LENGTH);
    Ok(())
}

/// True when every `Transfer-Encoding` field together name exactly one coding, `chunked`.
pub fn only_chunked(h: &HeaderMap) -> bool {
    let mut codings = h
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    matches!(
        (codings.next(), codings.next()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked")
    )
}

/// Runs `write` (the gateway's rate-limit fields) without loosening the upstream's: any
/// `RateLimit` / `RateLimit-Policy` the response already carries is kept after the gateway's.
pub fn keep_upstream_rate_limit(h: &mut HeaderMap, write: impl FnOnce(&mut HeaderMap)) {
    // One pass over the (few) response fields instead of two hash probes.
    if !h.keys().any(|k| k == RATELIMIT || k == RATELIMIT_POLICY) {
        return write(h);
    }
    let take = |h: &mut HeaderMap, name| -> Vec<HeaderValue> {
        match h.entry(name) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
            http::header::Entry::Vacant(_) => Vec::new(),
        }
    };
    let (current, policy) = (take(h, RATELIMIT), take(h, RATELIMIT_POLICY));
    write(h);
    for v in current {
        h.append(RATELIMIT, v);
    }
    for v in policy {
        h.append(RATELIMIT_POLICY, v);
    }
}

/// Adds `Connection: close` for an HTTP/1.x client whose request body the upstream left unread
/// (an early answer): the rest of that body stands between this response and the next request.
pub fn close_if_request_unread(h: &mut HeaderMap, unread: bool, client: Version) {
    if unread && client < Version::HTTP_2 {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

fn refuse(why: &'static str) -> Result<(), Reject> {
    if let Some(suppressed) = REFUSED.admit() {
        tracing::warn!(suppressed, reason = why, "upstream response refused");
    }
    Err(Reject::BadUpstreamResponse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRANSFER_ENCODING, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn codings() {
        assert!(only_chunked(&te(&["chunked"])));
        assert!(only_chunked(&te(&["Chunked "])));
        assert!(!only_chunked(&te(&["gzip, chunked"])));
        assert!(!only_chunked(&te(&["chunked", "chunked"])));
        assert!(!only_chunked(&te(&["gzip"])));
        assert!(!only_chunked(&te(&[""])));
    }
}
