//! Request check: the syntax rules a request must meet before it is routed (RFC 9112, RFC 9110).
//!
//! Each rule is one function the pipeline calls in order; none of them lets a request it refuses
//! reach an upstream. Framing that could smuggle a second request (`Transfer-Encoding` other than
//! one `chunked`, or beside `Content-Length`) is `400`; a request target over `max_uri_bytes` is
//! `414`, a head over `max_header_bytes` `431`; `TRACE` and `CONNECT` are `405`; an HTTP/1.1
//! request needs exactly one valid `Host` (no userinfo, path or list), and over HTTP/2 a `host`
//! that disagrees with `:authority` is malformed; header names with `_` are refused or dropped
//! (`[http] headers_with_underscores`), since many backends fold `_` into `-`. `OPTIONS` with
//! `Max-Forwards: 0` is answered here (RFC 9110 section 7.6.2). A target sent with a `#fragment`
//! is `400` (found on the wire by `server::fragment`).
//!
//! The `[http]` config section is owned here: its raw keys, validation and compiled form.

use http::header::{ALLOW, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use serde::Deserialize;

use crate::config::diagnostic::Diagnostics;
use crate::config::raw::SString;
use crate::config::units::parse_bytes;
use crate::error::Reject;
use crate::proxy::body::{Body, empty};

/// The `Allow` value for requests refused before a route is known (any method but these two).
pub const ALLOW_ANY: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// `Max-Forwards` (RFC 9110 section 7.6.2).
pub const MAX_FORWARDS: HeaderName = http::header::MAX_FORWARDS;

/// Default `[http] max_uri_bytes`.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;

/// `[http]`: request-syntax rules at the edge.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpRules {
    /// `"reject"` (default, 400) or `"drop"` header names containing `_`.
    pub headers_with_underscores: Option<SString>,
    /// Longest request target, e.g. `"8KiB"` (default); longer: 414.
    pub max_uri_bytes: Option<SString>,
}

/// What happens to a request header whose name contains `_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Underscores {
    /// `400 invalid_request` (the default).
    Reject,
    /// The header is removed; the request goes on without it.
    Drop,
}

/// `[http]`, validated.
#[derive(Debug, Clone)]
pub struct HttpRules {
    /// Header names with `_`.
    pub underscores: Underscores,
    /// Longest request target, bytes.
    pub max_uri_bytes: usize,
}

impl Default for HttpRules {
    fn default() -> Self {
        Self {
            underscores: Underscores::Reject,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
        }
    }
}

impl HttpRules {
    /// Validates `[http]`, reporting each bad value at its position.
    pub fn validate(raw: &RawHttpRules, d: &mut Diagnostics) -> Self {
        let mut rules = Self::default();
        if let Some(s) = &raw.headers_with_underscores {
            match s.get_ref().as_str() {
                "reject" => {}
                "drop" => rules.underscores = Underscores::Drop,
                other => d.push(
                    Some(s.span()),
                    "http.headers_with_underscores",
                    format!("unknown action \"{other}\""),
                    "use \"reject\" (the default) or \"drop\"",
                ),
            }
        }
        if let Some(s) = &raw.max_uri_bytes {
            match parse_bytes(s.get_ref()) {
                Ok(n) if (64..=65_534).contains(&n) => rules.max_uri_bytes = n as usize,
                Ok(_) => d.push(
                    Some(s.span()),
                    "http.max_uri_bytes",
                    "the limit must be between 64 bytes and 65534 bytes",
                    "write e.g. \"8KiB\" (the default)",
                ),
                Err(e) => d.push(
                    Some(s.span()),
                    "http.max_uri_bytes",
                    e,
                    "write a number and a unit: B or KiB, e.g. \"8KiB\"",
                ),
            }
        }
        rules
    }

    /// Relaxed defaults, for `portcullis check`.
    pub fn relaxations(&self) -> Vec<String> {
        match self.underscores {
            Underscores::Drop => vec![
                "http.headers_with_underscores = \"drop\": header names with '_' are removed \
                 instead of refused with 400"
                    .into(),
            ],
            Underscores::Reject => Vec::new(),
        }
    }
}

/// Refuses framing that could smuggle a second request past a front end (RFC 9112 section 6.1).
pub fn framing(h: &HeaderMap) -> Result<(), Reject> {
    let te: Vec<&HeaderValue> = h.get_all(TRANSFER_ENCODING).iter().collect();
    if te.is_empty() {
        return Ok(());
    }
    if h.contains_key(CONTENT_LENGTH) {
        return Err(Reject::BadRequest(
            "Send either Content-Length or Transfer-Encoding, not both.".into(),
        ));
    }
    let only_chunked = te.len() == 1 && te[0].as_bytes().eq_ignore_ascii_case(b"chunked");
    if !only_chunked {
        return Err(Reject::BadRequest(
            "Transfer-Encoding must be exactly \"chunked\".".into(),
        ));
    }
    Ok(())
}

/// The request target's length as it was sent (origin form, or absolute form with an authority).
fn target_len(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len())
}

/// Refuses a request target longer than the limit (414, RFC 9112 section 3).
pub fn target_length(uri: &Uri, max: usize) -> Result<(), Reject> {
    if target_len(uri) > max {
        return Err(Reject::UriTooLong { limit: max });
    }
    Ok(())
}

/// Marks a request whose target was sent with a `#fragment` (`server::fragment` finds it on the
/// wire; the parsed URI has already dropped it).
#[derive(Debug, Clone, Copy)]
pub struct SentFragment;

/// Refuses a request target sent with a fragment (400: no request-target form has one, RFC 9112
/// section 3.2). The fragment would never be forwarded; the request is refused all the same.
pub fn fragment<B>(req: &Request<B>) -> Result<(), Reject> {
    if req.extensions().get::<SentFragment>().is_some() {
        return Err(Reject::BadRequest(
            "the request target carries a #fragment, which is not sent in HTTP (RFC 9112 section 3.2)"
                .into(),
        ));
    }
    Ok(())
}

/// Refuses request heads larger than the configured limit (431).
pub fn head_size<B>(req: &Request<B>, max: usize) -> Result<(), Reject> {
    let line = req.method().as_str().len() + target_len(req.uri()) + 12;
    let fields: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if line + fields > max {
        return Err(Reject::HeadersTooLarge);
    }
    Ok(())
}

/// `TRACE` (it reflects the request, credentials included) and `CONNECT` (a tunnel) are refused
/// on every route.
pub fn method(m: &Method) -> Result<(), Reject> {
    if m == Method::TRACE || m == Method::CONNECT {
        return Err(Reject::MethodNotAllowed {
            allow: ALLOW_ANY.into(),
        });
    }
    Ok(())
}

/// `Host` rules: HTTP/1.1 needs exactly one valid `Host` (RFC 9112 section 3.2); over HTTP/2 a
/// `host` that disagrees with `:authority` makes the request malformed (RFC 9113 section 8.3.1).
pub fn host<B>(req: &Request<B>) -> Result<(), Reject> {
    // Userinfo in an http(s) target is invalid (RFC 9110 section 4.2.4).
    if req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(bad("The request target must not contain user info."));
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return Err(bad("Send exactly one Host header."));
    }
    let Some(host) = first else {
        return match req.version() {
            Version::HTTP_11 => Err(bad("An HTTP/1.1 request needs a Host header.")),
            _ => Ok(()),
        };
    };
    if !is_valid_host(host.as_bytes()) {
        return Err(bad(
            "The Host header must be a host name or address with an optional port \
             (no user info, path or list).",
        ));
    }
    match (req.version(), req.uri().authority()) {
        (Version::HTTP_2, Some(a))
            if !a.as_str().as_bytes().eq_ignore_ascii_case(host.as_bytes()) =>
        {
            Err(bad("The host header disagrees with :authority."))
        }
        _ => Ok(()),
    }
}

/// True for `host` or `host:port`, where host is a name (letters, digits, `-`, `.`, `_`), an
/// IPv4 address or a bracketed IPv6 literal, and port is 1 to 5 digits.
pub fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = match v.first() {
        None => return false,
        Some(b'[') => match v.iter().position(|&b| b == b']') {
            Some(end) => (&v[..=end], &v[end + 1..]),
            None => return false,
        },
        Some(_) => match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &[][..]),
        },
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        }
        _ => {
            !host.is_empty()
                && host
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    host_ok && port_ok
}

/// Header names with `_`: refused (400) or dropped, per `[http] headers_with_underscores`.
pub fn header_names(h: &mut HeaderMap, action: Underscores) -> Result<(), Reject> {
    // The common case: one scan over the (few) names, nothing found.
    let Some(first) = h.keys().find(|n| n.as_str().contains('_')) else {
        return Ok(());
    };
    if action == Underscores::Reject {
        let name: String = first.as_str().chars().take(64).collect();
        return Err(bad(&format!(
            "Header names must not contain '_' (got \"{name}\"); use '-' instead."
        )));
    }
    let names: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for n in names {
        h.remove(n);
    }
    Ok(())
}

/// `OPTIONS` with `Max-Forwards: 0` is answered by the gateway as the final recipient: `200`
/// with the route's `Allow`. `None` when the request is to be forwarded.
pub fn options_reply<B>(req: &Request<B>, methods: Option<&[Method]>) -> Option<Response<Body>> {
    if req.method() != Method::OPTIONS || max_forwards(req.headers()) != Some(0) {
        return None;
    }
    let allow = match methods {
        None => ALLOW_ANY.to_string(),
        Some(ms) => allow_list(ms),
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::OK;
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(ALLOW, v);
    }
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(resp)
}

fn allow_list(ms: &[Method]) -> String {
    let mut names: Vec<&str> = ms.iter().map(Method::as_str).collect();
    if names.contains(&"GET") && !names.contains(&"HEAD") {
        names.push("HEAD");
    }
    names.join(", ")
}

/// A forwarded `OPTIONS` carries `Max-Forwards` one lower (RFC 9110 section 7.6.2).
pub fn decrement_max_forwards(h: &mut HeaderMap, m: &Method) {
    if m != Method::OPTIONS {
        return;
    }
    if let Some(n) = max_forwards(h).and_then(|n| n.checked_sub(1)) {
        h.insert(MAX_FORWARDS, HeaderValue::from(n));
    }
}

/// The `Max-Forwards` value, when there is exactly one valid one.
pub fn max_forwards(h: &HeaderMap) -> Option<u32> {
    h.get(MAX_FORWARDS)?.to_str().ok()?.trim().parse().ok()
}

/// The host a request is routed by: the URI's authority (h2 `:authority`, absolute form), else
/// `Host`; without a port.
pub fn routing_host<B>(req: &Request<B>) -> Option<&str> {
    let host = req
        .uri()
        .host()
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))?;
    // Strip a port; keep bracketed IPv6 literals whole.
    Some(match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    })
}

/// A declared Content-Length over the route's limit is refused before anything is forwarded.
pub fn declared_length(h: &HeaderMap, max: u64) -> Result<(), Reject> {
    let declared = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(Reject::PayloadTooLarge { limit: max }),
        _ => Ok(()),
    }
}

fn bad(why: &str) -> Reject {
    Reject::BadRequest(why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for ok in [
            "a",
            "api.example.com",
            "a:8080",
            "127.0.0.1:1",
            "[::1]",
            "[2001:db8::1]:443",
            "in_ternal",
        ] {
            assert!(is_valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "u@h", "h/p", "a,b", "a b", "h:", "h:x", "h:123456", "[::1", "[]", ":80", "a:1:2",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn underscores_dropped_or_refused() {
        let mut h = HeaderMap::new();
        h.insert("x_auth_subject", "admin".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        assert!(header_names(&mut h.clone(), Underscores::Reject).is_err());
        header_names(&mut h, Underscores::Drop).unwrap();
        assert_eq!(h.len(), 1);
    }
}
