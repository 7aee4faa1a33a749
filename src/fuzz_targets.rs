//! Fuzz targets: the gateway's own parsers driven by arbitrary bytes, with their invariants.
//!
//! Each function takes the fuzzer's input and panics only when an invariant breaks, so the same
//! entry points serve `fuzz/` (cargo-fuzz, libFuzzer) and `tests/fuzz_corpus.rs` (every
//! checked-in corpus file replayed by `cargo test`). [`TARGETS`] lists them by name; the names
//! are the `fuzz/fuzz_targets/*.rs` binaries and the `fuzz/corpus/*` directories.

use std::net::IpAddr;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::client_ip::TrustedProxies;
use crate::config::{self, Shared, Source};
use crate::proxy::forwarding::{ForwardingRules, via_count};
use crate::proxy::response;
use crate::request_check::{self, Underscores};
use crate::route::{check_encoded_slashes, normalize_path};

/// A target: takes the fuzzer's bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: [(&str, Target); 8] = [
    ("path_normalization", path_normalization),
    ("forwarded_for", forwarded_for),
    ("request_head", request_head),
    ("config_load", config_load),
    ("token_request", token_request),
    ("credential_headers", credential_headers),
    ("jwt_token", jwt_token),
    ("upstream_response", upstream_response),
];

/// Path normalization: a normalized path is absolute, normalizes to itself, survives the URI
/// parser unchanged (so the forwarded path is the matched path), and holds no refused form.
pub fn path_normalization(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What the gateway normalizes is `Uri::path()`: never a `?` or `#` (a query or fragment of
    // the input is split off here, as the URI parser does for a request).
    let Ok(target) = http::uri::PathAndQuery::try_from(text) else {
        return;
    };
    let raw = target.path();
    let Ok(norm) = normalize_path(raw) else {
        return;
    };
    assert!(norm.starts_with('/'), "{raw:?} -> {norm:?}");
    let again = normalize_path(&norm).expect("a normalized path normalizes");
    assert_eq!(again, norm, "normalization is idempotent for {raw:?}");
    assert!(!norm.contains("//") && !norm.contains('\\'), "{norm:?}");
    for refused in ["%5C", "%00", "%0D", "%0A"] {
        assert!(!norm.contains(refused), "{norm:?}");
    }
    let _ = check_encoded_slashes(&norm, false);
    if let Ok(pq) = http::uri::PathAndQuery::try_from(norm.as_ref()) {
        assert_eq!(pq.path(), norm, "the URI parser keeps the normalized path");
    }
}

/// `X-Forwarded-For` from a trusted peer: one header line per input line. The client is the
/// peer or an address that appears in the header.
pub fn forwarded_for(data: &[u8]) {
    let trusted = TrustedProxies::new(vec![
        "10.0.0.0/8".parse().expect("cidr"),
        "::1/128".parse().expect("cidr"),
    ]);
    let peer: IpAddr = "10.0.0.1".parse().expect("ip");
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            h.append("x-forwarded-for", v);
        }
    }
    let client = trusted.client_ip(peer, &h);
    let listed = h
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|e| {
            let e = e.trim();
            e.parse::<IpAddr>()
                .or_else(|_| e.parse::<std::net::SocketAddr>().map(|sa| sa.ip()))
                .ok()
        })
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
        .any(|ip| ip == client);
    assert!(
        client == peer || listed,
        "{client} is neither the peer nor listed"
    );
}

/// A request head: `METHOD TARGET VERSION` then `name: value` lines. Every request check runs;
/// dropping `_` names leaves none, a valid Host holds no userinfo, path or list.
pub fn request_head(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = Method::from_bytes(first.next().unwrap_or("").as_bytes()).unwrap_or(Method::GET);
    let Ok(uri) = first.next().unwrap_or("/").parse::<Uri>() else {
        return;
    };
    let version = match first.next() {
        Some("HTTP/2") => Version::HTTP_2,
        Some("HTTP/1.0") => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut req = Request::builder().method(method).uri(uri).version(version);
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            req = req.header(n, v);
        }
    }
    let Ok(mut req) = req.body(()) else { return };
    let _ = request_check::framing(req.headers());
    let _ = request_check::target_length(req.uri(), request_check::DEFAULT_MAX_URI_BYTES);
    let _ = request_check::head_size(&req, 32 * 1024);
    let _ = request_check::method(req.method());
    if request_check::host(&req).is_ok() && req.version() == Version::HTTP_11 {
        let host = req
            .headers()
            .get(http::header::HOST)
            .expect("HTTP/1.1 host");
        assert!(
            !host.as_bytes().iter().any(|b| b"@/,? \\".contains(b)),
            "{host:?}"
        );
    }
    let had = req.headers().keys().any(|n| n.as_str().contains('_'));
    let refused = request_check::header_names(&mut req.headers().clone(), Underscores::Reject);
    assert_eq!(refused.is_err(), had, "refused exactly when a name has '_'");
    request_check::header_names(req.headers_mut(), Underscores::Drop).expect("drop never fails");
    assert!(req.headers().keys().all(|n| !n.as_str().contains('_')));
    let rules = ForwardingRules::default();
    let loops = rules.check_loop(req.headers()).is_err();
    assert_eq!(
        loops,
        via_count(req.headers(), &rules.pseudonym) > rules.max_hops
    );
    let _ = request_check::options_reply(&req, None);
    request_check::decrement_max_forwards(req.headers_mut(), &Method::OPTIONS);
    let mut resp_headers = req.headers().clone();
    let _ = response::check(http::StatusCode::OK, &mut resp_headers, false);
}

/// Config loading: any text either loads or yields diagnostics; nothing panics.
pub fn config_load(data: &[u8]) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    let _guard = rt.enter();
    let dir = std::env::temp_dir().join("portcullis-fuzz-config");
    let shared = Shared::for_check(crate::clock::SystemClock::shared());
    match config::load_str(Source::new(dir.join("fuzz.toml"), text), &shared) {
        Ok(snap) => drop(snap.config.relaxations()),
        Err(diags) => assert!(!diags.is_empty(), "a failed load names a problem"),
    }
}

/// Token-endpoint bodies: the first byte picks form or JSON, the rest is the body.
pub fn token_request(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let ctype = if kind % 2 == 0 {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(params) = crate::oauth::params::Params::from_body(&h, body) {
        let _ = crate::oauth::params::client_credentials(&h, &params);
        let _ = params.get("grant_type");
    }
}

/// Credential headers: `name: value` lines (the first line is the query string). A Bearer token
/// taken from `Authorization` is a non-empty RFC 6750 `b64token` found in the value; a request
/// that passes the one-credential-once check carries each credential header at most once, no
/// comma-joined key list, and no `access_token` query parameter beside `Authorization`.
pub fn credential_headers(data: &[u8]) {
    use crate::auth::{KeyHeaders, bearer, check_single_credentials};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = lines.next().filter(|q| !q.is_empty());
    let mut h = HeaderMap::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_bytes(v.trim().as_bytes()),
        ) {
            h.append(n, v);
        }
    }
    for v in h.get_all(http::header::AUTHORIZATION) {
        if let Some(token) = bearer::bearer_token(v.as_bytes()) {
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty(), "{token:?}");
            assert!(!token.contains(' '), "{token:?}");
            assert!(
                body.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
            );
            assert!(v.to_str().is_ok_and(|s| s.contains(token)), "{token:?}");
        }
    }
    let keys = KeyHeaders::default();
    if check_single_credentials(&h, &keys, query).is_ok() {
        for name in [&http::header::AUTHORIZATION, &keys.key] {
            assert!(h.get_all(name).iter().count() <= 1, "{name} twice");
        }
        let key_list = h
            .get(&keys.key)
            .is_some_and(|v| v.as_bytes().contains(&b','));
        assert!(!key_list, "a comma-joined key list passed");
        let in_query = query.is_some_and(|q| {
            q.split('&')
                .any(|p| p.split('=').next() == Some("access_token"))
        });
        assert!(!(in_query && h.contains_key(http::header::AUTHORIZATION)));
    }
}

/// JWT compact serialization: a token that parses has three non-empty parts, its signing input
/// is exactly `header.payload`, and never claims `alg: none`; claim checks on any payload
/// answer without panicking, and an accepted `exp` is not in the past beyond the leeway.
pub fn jwt_token(data: &[u8]) {
    use crate::auth::jwt;
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = jwt::parse(token, 8192) else {
        return;
    };
    assert_eq!(token.matches('.').count(), 2, "{token:?}");
    assert!(!parsed.signature.is_empty());
    let expected = &token[..token.rfind('.').expect("two dots")];
    assert_eq!(parsed.signing_input, expected);
    assert!(parsed.signing_input.ends_with(parsed.payload_b64));
    let Ok(claims) = jwt::decode_claims(parsed.payload_b64) else {
        return;
    };
    let rules = jwt::JwtRules::default();
    let now = 1_800_000_000;
    if let Ok(v) = jwt::check_claims(&claims, &rules, now) {
        let exp = v.exp.expect("exp is required by default");
        assert!(exp + rules.leeway_secs >= now, "expired token accepted");
    }
}

/// An upstream's response bytes through the gateway's HTTP/1.1 client (`proxy::h1`): the first
/// byte picks the request method (odd: HEAD) and how the rest arrives (read sizes). The head
/// parser never consumes more than it was given, frames the body as RFC 9112 section 6.3 says,
/// and the body decoder hands on at most the bytes that arrived: exactly `Content-Length` when
/// it ends, and it ends or fails within a bounded number of steps.
pub fn upstream_response(data: &[u8]) {
    use crate::proxy::h1::decode::{Decoder, Step};
    use crate::proxy::h1::head::{self, Framing};
    use bytes::BytesMut;
    let Some((&knob, wire)) = data.split_first() else {
        return;
    };
    let method = if knob & 1 == 1 {
        Method::HEAD
    } else {
        Method::GET
    };
    let step = usize::from(knob >> 1).max(1);
    let mut buf = BytesMut::new();
    let mut fields = HeaderMap::new();
    let (mut fed, mut interim) = (0, 0);
    let parsed = loop {
        let end = (fed + step).min(wire.len());
        buf.extend_from_slice(&wire[fed..end]);
        fed = end;
        match head::parse_response(&mut buf, &method, &mut fields, &mut interim) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) if fed < wire.len() => {}
            Ok(None) | Err(_) => return,
        }
    };
    assert!(buf.len() <= wire.len());
    let code = parsed.parts.status.as_u16();
    if method == Method::HEAD || code < 200 || code == 204 || code == 304 {
        assert_eq!(parsed.framing, Framing::Empty, "{code} to {method}");
    }
    if let Framing::Length(n) = parsed.framing {
        assert_eq!(head::content_length(&parsed.parts.headers), Some(n));
    }
    let mut decoder = Decoder::new(parsed.framing);
    let (mut body, available) = (0usize, buf.len() + (wire.len() - fed));
    for _ in 0..=2 * wire.len() + 4 {
        let eof = fed == wire.len();
        match decoder.step(&mut buf, eof) {
            Ok(Step::Data(d)) => body += d.len(),
            Ok(Step::End) => {
                if let Framing::Length(n) = parsed.framing {
                    assert_eq!(body as u64, n, "a length-framed body ends at its length");
                }
                assert!(body <= available);
                return;
            }
            Ok(Step::NeedMore) if eof => panic!("asked for more after the end of the stream"),
            Ok(Step::NeedMore) => {
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
            Err(_) => return,
        }
        assert!(body <= available, "more body than bytes");
    }
    panic!("the decoder neither ended nor failed");
}
