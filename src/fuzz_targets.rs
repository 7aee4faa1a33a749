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
pub const TARGETS: [(&str, Target); 5] = [
    ("path_normalization", path_normalization),
    ("forwarded_for", forwarded_for),
    ("request_head", request_head),
    ("config_load", config_load),
    ("token_request", token_request),
];

/// Path normalization: a normalized path is absolute, normalizes to itself, survives the URI
/// parser unchanged (so the forwarded path is the matched path), and holds no refused form.
pub fn path_normalization(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
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
