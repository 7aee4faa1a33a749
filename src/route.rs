//! Route: path normalization and the route table (`RouteTable::find(method, host, path)`).
//!
//! Paths are normalized before matching (RFC 3986 section 6.2.2): percent-encoded unreserved
//! characters decoded, other escapes upper-cased and kept (`%2F` stays `%2F`), `//` collapsed,
//! dot segments resolved. A request is judged by the route its normalized path belongs to, and
//! the upstream receives that normalized path, so `/user/../admin` can never borrow the policy of
//! `/user/`.
//!
//! Paths a backend could read differently from the gateway are refused with `400` (Envoy
//! CVE-2019-9901, CVE-2021-29492): a raw or encoded backslash, an encoded NUL, CR or LF, escapes
//! that do not decode to UTF-8 (overlong forms included), and a dot segment with path parameters
//! (`..;`). An encoded slash (`%2F`) is refused too unless the route sets
//! `allow_encoded_slashes` ([`check_encoded_slashes`], after the route is known).
//!
//! Prefixes match on segment boundaries: `/v1/users` matches `/v1/users` and `/v1/users/7`,
//! never `/v1/usersX`. Lookup walks the path's segment boundaries from longest to
//! shortest with one hash probe each, so its cost is independent of the number of routes.

use std::borrow::Cow;
use std::collections::HashMap;

use http::Method;

use crate::error::Reject;

/// Normalizes a request path. Errors on malformed percent-escapes or a non-absolute path.
/// A path that is already normal (the common case) is returned as is, without copying.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, Reject> {
    if is_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize(raw).map(Cow::Owned).map_err(Reject::BadRequest)
}

/// True when `normalize` would return `raw` unchanged: absolute, ASCII, no escapes or
/// backslashes, no empty segment but a trailing one, no dot segments (with or without `;`).
/// One pass over the bytes (every request runs it; a `split` iterator cost several times more).
fn is_normal(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut start = 1;
    // Bounded: each turn consumes one segment and its slash.
    loop {
        let mut end = start;
        while end < b.len() && b[end] != b'/' {
            if !b[end].is_ascii() || b[end] == b'%' || b[end] == b'\\' {
                return false;
            }
            end += 1;
        }
        let (seg, last) = (&b[start..end], end == b.len());
        let dotted =
            seg.first() == Some(&b'.') && (seg == b"." || seg == b".." || seg.contains(&b';'));
        if dotted || (seg.is_empty() && !last) {
            return false;
        }
        if last {
            return true;
        }
        start = end + 1;
    }
}

/// Refuses an encoded slash (`%2F`, upper-cased by normalization) unless the route allows it.
pub fn check_encoded_slashes(path: &str, allowed: bool) -> Result<(), Reject> {
    if allowed || !path.contains("%2F") {
        return Ok(());
    }
    Err(Reject::BadRequest(
        "The path contains an encoded slash (%2F), which this route does not accept.".into(),
    ))
}

/// Normalizes a configured route prefix: like a request path, without the trailing slash.
pub fn normalize_prefix(raw: &str) -> Result<String, String> {
    let mut p = normalize(raw)?;
    if p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    Ok(p)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes escaped unreserved characters, upper-cases the other escapes.
fn decode_unreserved(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err("the path contains a malformed percent-escape".into());
            };
            let v = h * 16 + l;
            if is_unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
                out.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
            }
            i += 3;
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    Ok(out)
}

/// Refuses escapes a backend could read differently: `%5C` (backslash), `%00`, `%0D`, `%0A`,
/// and escape sequences that do not decode to UTF-8 (overlong forms, lone bytes, surrogates).
fn check_escapes(raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(b'\\') => {
                return Err("the path must not contain an encoded backslash (%5C)".into());
            }
            Some(0 | b'\r' | b'\n') => {
                return Err("the path must not contain an encoded NUL, CR or LF".into());
            }
            Some(v) => {
                decoded.push(v);
                i += 3;
            }
            None => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    match std::str::from_utf8(&decoded) {
        Ok(_) => Ok(()),
        Err(_) => Err("the path's percent-escapes do not decode to UTF-8".into()),
    }
}

fn normalize(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') {
        return Err("the path must start with '/'".into());
    }
    if !raw.is_ascii() {
        return Err("the path must be ASCII (percent-encode other characters)".into());
    }
    if raw.contains('\\') {
        return Err("the path must not contain a backslash".into());
    }
    check_escapes(raw)?;
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        if matches!(seg.split_once(';'), Some(("." | "..", _))) {
            return Err("the path must not contain a dot segment with parameters (\"..;\")".into());
        }
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// One entry of the table; `T` is the compiled route.
#[derive(Debug)]
struct Entry<T> {
    host: Option<String>,
    methods: Option<Vec<Method>>,
    route: T,
}

/// Routes keyed by normalized prefix. The table is only read on the request path and its keys
/// are the operator's, so a fast non-keyed hasher is safe here (no insert-flooding to defend).
#[derive(Debug)]
pub struct RouteTable<T> {
    by_prefix: HashMap<String, Vec<Entry<T>>, foldhash::fast::RandomState>,
    /// Bit `n` is set when some prefix is `n` bytes long (`n` < 128): a candidate of another
    /// length is not looked up.
    lengths: u128,
    /// Some prefix is 128 bytes or longer (candidates that long are always looked up).
    long: bool,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found<'a, T> {
    /// The route to use.
    Route(&'a T),
    /// A route owns the path but not this method: the `Allow` value and the owning route.
    MethodNotAllowed(String, &'a T),
    /// No route owns the path.
    NotFound,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            by_prefix: HashMap::default(),
            lengths: 0,
            long: false,
        }
    }
}

impl<T> RouteTable<T> {
    /// Adds a route. Host-specific routes are tried before host-less ones with the same prefix.
    pub fn insert(
        &mut self,
        prefix: String,
        host: Option<String>,
        methods: Option<Vec<Method>>,
        route: T,
    ) {
        match prefix.len() {
            n @ 0..128 => self.lengths |= 1 << n,
            _ => self.long = true,
        }
        let list = self.by_prefix.entry(prefix).or_default();
        list.push(Entry {
            host,
            methods,
            route,
        });
        list.sort_by_key(|e| e.host.is_none());
    }

    /// Finds the route for a normalized path. `host` is the request's host without port.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Found<'_, T> {
        let mut end = path.len();
        loop {
            let candidate = if end == 0 { "/" } else { &path[..end] };
            if self.may_hold(candidate.len())
                && let Some(found) = self.find_at(candidate, method, host)
            {
                return found;
            }
            if end == 0 {
                return Found::NotFound;
            }
            // A byte loop: segments are short, and `rfind` set up a char searcher per call.
            end = path.as_bytes()[..end]
                .iter()
                .rposition(|&b| b == b'/')
                .unwrap_or(0);
        }
    }

    /// Whether some prefix has this length (no hash lookup for candidates that cannot match).
    fn may_hold(&self, len: usize) -> bool {
        match len {
            0..128 => self.lengths & (1 << len) != 0,
            _ => self.long,
        }
    }

    fn find_at(&self, prefix: &str, method: &Method, host: Option<&str>) -> Option<Found<'_, T>> {
        let entries = self.by_prefix.get(prefix)?;
        let host_ok = |e: &&Entry<T>| match (&e.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        // The most specific host match owns the path; methods are judged among its routes only.
        let first = entries.iter().find(host_ok)?;
        let owners = entries
            .iter()
            .filter(host_ok)
            .filter(|e| e.host == first.host);
        let mut allow: Vec<String> = Vec::new();
        let owner = &first.route;
        for e in owners {
            match &e.methods {
                None => return Some(Found::Route(&e.route)),
                Some(ms)
                    if ms.contains(method)
                        || (method == Method::HEAD && ms.contains(&Method::GET)) =>
                {
                    return Some(Found::Route(&e.route));
                }
                Some(ms) => allow.extend(ms.iter().map(|m| m.to_string())),
            }
        }
        if allow.iter().any(|m| m == "GET") && !allow.iter().any(|m| m == "HEAD") {
            allow.push("HEAD".into());
        }
        allow.dedup();
        Some(Found::MethodNotAllowed(allow.join(", "), owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let n = |p: &str| normalize_path(p).unwrap().into_owned();
        assert_eq!(n("/a//b/./c"), "/a/b/c");
        assert_eq!(n("/v1/partner/user/../admin/app"), "/v1/partner/admin/app");
        assert_eq!(n("/v1/partner/user/%2e%2e/admin"), "/v1/partner/admin");
        assert_eq!(n("/v1/partner/user/%2E%2E/admin"), "/v1/partner/admin");
        assert_eq!(n("/a/%2f/b"), "/a/%2F/b");
        assert_eq!(n("/%7euser/%41"), "/~user/A");
        assert_eq!(n("/../../etc"), "/etc");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/"), "/");
        assert!(normalize_path("/a%zz").is_err());
        assert!(normalize_path("/a%2").is_err());
        assert!(normalize_path("a/b").is_err());
        for refused in [
            "/a\\b",
            "/a%5cb",
            "/a%00",
            "/a%0d%0aX-Injected:1",
            "/a%0A",
            "/%c0%ae%c0%ae/admin",
            "/%ed%a0%80",
            "/%ff",
            "/a/..;/admin",
            "/a/%2e%2e;x/admin",
            "/a/.;/b",
        ] {
            assert!(normalize_path(refused).is_err(), "{refused}");
        }
        assert_eq!(n("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(n("/a;b/..x"), "/a;b/..x");
        assert!(check_encoded_slashes("/a/%2F/b", false).is_err());
        assert!(check_encoded_slashes("/a/%2F/b", true).is_ok());
        assert!(check_encoded_slashes("/a/b", false).is_ok());
    }

    proptest::proptest! {
        /// Normalizing a normalized path changes nothing.
        #[test]
        fn normalization_is_idempotent(p in "/[a/.;%2eEfF5c0]{0,16}") {
            if let Ok(once) = normalize_path(&p) {
                let twice = normalize_path(&once).map(|c| c.into_owned());
                proptest::prop_assert_eq!(Ok(once.into_owned()), twice.map_err(|e| format!("{e:?}")));
            }
        }
    }

    /// The fast path's check as it was written first (segments by `split`): the reference the
    /// one-pass scan must agree with.
    fn is_normal_by_segments(raw: &str) -> bool {
        let Some(rest) = raw.strip_prefix('/') else {
            return false;
        };
        let mut segments = rest.split('/').peekable();
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            let plain = seg.bytes().all(|b| b.is_ascii() && b != b'%' && b != b'\\');
            let dotted = seg == "." || seg == ".." || (seg.starts_with('.') && seg.contains(';'));
            if !plain || dotted || (seg.is_empty() && !last) {
                return false;
            }
        }
        true
    }

    proptest::proptest! {
        /// The one-pass check says what the segment-by-segment one says.
        #[test]
        fn one_pass_check_agrees_with_segments(p in "/?[/a.;%\\\\é]{0,16}") {
            proptest::prop_assert_eq!(is_normal(&p), is_normal_by_segments(&p), "{:?}", p);
        }
    }

    proptest::proptest! {
        /// The no-copy fast path never changes what a path normalizes to.
        #[test]
        fn fast_path_agrees_with_full_normalization(p in "/[a/.%2eE]{0,14}") {
            let full = normalize(&p).map_err(|e| e.to_string());
            let fast = normalize_path(&p).map(|c| c.into_owned()).map_err(|e| format!("{e:?}"));
            proptest::prop_assert_eq!(full.is_ok(), fast.is_ok());
            if let (Ok(a), Ok(b)) = (full, fast) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn prefixes_of_any_length_are_found() {
        let mut t = RouteTable::default();
        let long = format!("/{}", "x".repeat(200));
        t.insert("/".into(), None, None, 0);
        t.insert(long.clone(), None, None, 1);
        t.insert("/a".into(), None, None, 2);
        let find = |p: &str| match t.find(&Method::GET, None, p) {
            Found::Route(r) => Some(*r),
            _ => None,
        };
        assert_eq!(find(&format!("{long}/y")), Some(1));
        assert_eq!(find(&long), Some(1));
        assert_eq!(find("/b/c"), Some(0));
        assert_eq!(find("/a/b/c"), Some(2));
        assert_eq!(find("/"), Some(0));
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let mut t = RouteTable::default();
        t.insert("/v1".into(), None, None, 1);
        t.insert("/v1/users".into(), None, Some(vec![Method::GET]), 2);
        t.insert("/".into(), None, None, 0);
        let get = Method::GET;
        assert!(matches!(t.find(&get, None, "/v1/users/7"), Found::Route(2)));
        assert!(matches!(t.find(&get, None, "/v1/users"), Found::Route(2)));
        assert!(matches!(t.find(&get, None, "/v1/usersX"), Found::Route(1)));
        assert!(matches!(t.find(&get, None, "/other"), Found::Route(0)));
        match t.find(&Method::POST, None, "/v1/users/7") {
            Found::MethodNotAllowed(a, owner) => {
                assert_eq!(a, "GET, HEAD");
                assert_eq!(*owner, 2);
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            t.find(&Method::HEAD, None, "/v1/users"),
            Found::Route(2)
        ));
    }

    #[test]
    fn host_specific_routes_win() {
        let mut t = RouteTable::default();
        t.insert("/api".into(), None, None, 1);
        t.insert("/api".into(), Some("a.example".into()), None, 2);
        assert!(matches!(
            t.find(&Method::GET, Some("A.example"), "/api/x"),
            Found::Route(2)
        ));
        assert!(matches!(
            t.find(&Method::GET, Some("b.example"), "/api/x"),
            Found::Route(1)
        ));
        let mut only_host = RouteTable::default();
        only_host.insert("/api".into(), Some("a.example".into()), None, 2);
        assert!(matches!(
            only_host.find(&Method::GET, None, "/api"),
            Found::NotFound
        ));
    }
}
