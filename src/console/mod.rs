//! Console: the operator's web page on the admin listener, at `/console/`, served from assets
//! embedded in the binary (plain HTML, CSS and ES modules; no build step, no network at run time).
//!
//! The page talks only to the credential API (`/admin/v1/`) and the listener's `/metrics`, with
//! the operator token in an `Authorization: Bearer` header (kept in `sessionStorage`, never a
//! cookie), so a cross-site request carries no credential. The assets themselves are served
//! without a token: they hold no data. Every response carries a strict Content-Security-Policy
//! (no inline script or style, same-origin connections only), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`; the HTML is never
//! cached, the other assets are revalidated by `ETag`.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};

/// The path the console is served under.
pub const PREFIX: &str = "/console/";

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'none'";

/// One embedded file: its name under [`PREFIX`], media type and bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves.
const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        media_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "console.css",
        media_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/console.css"),
    },
    Asset {
        name: "favicon.svg",
        media_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
    Asset {
        name: "app.js",
        media_type: JS,
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        media_type: JS,
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        name: "dom.js",
        media_type: JS,
        body: include_bytes!("assets/dom.js"),
    },
    Asset {
        name: "dashboard.js",
        media_type: JS,
        body: include_bytes!("assets/dashboard.js"),
    },
    Asset {
        name: "applications.js",
        media_type: JS,
        body: include_bytes!("assets/applications.js"),
    },
    Asset {
        name: "create.js",
        media_type: JS,
        body: include_bytes!("assets/create.js"),
    },
    Asset {
        name: "detail.js",
        media_type: JS,
        body: include_bytes!("assets/detail.js"),
    },
    Asset {
        name: "audit.js",
        media_type: JS,
        body: include_bytes!("assets/audit.js"),
    },
];

/// Answers a console path (`/console` or under [`PREFIX`]); `None` for any other path.
pub fn handle(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response<Full<Bytes>>> {
    if path == "/console" {
        return Some(redirect());
    }
    let name = path.strip_prefix(PREFIX)?;
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console answers GET and HEAD",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.name == name) else {
        return Some(plain(StatusCode::NOT_FOUND, "no such console file"));
    };
    Some(serve(i, asset, headers, method == Method::HEAD))
}

fn serve(i: usize, asset: &Asset, headers: &HeaderMap, head: bool) -> Response<Full<Bytes>> {
    let html = asset.name.is_empty();
    let tag = etag(i, asset);
    let fresh = !html
        && headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim() == tag));
    let (status, body) = match (fresh, head) {
        (true, _) => (StatusCode::NOT_MODIFIED, Bytes::new()),
        (false, true) => (StatusCode::OK, Bytes::new()),
        (false, false) => (StatusCode::OK, Bytes::from_static(asset.body)),
    };
    let mut r = secured(status, body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    // The page itself is never cached (it names the modules); modules and styles revalidate.
    let cache = if html { "no-store" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let (false, Ok(v)) = (html, HeaderValue::from_str(tag)) {
        h.insert(header::ETAG, v);
    }
    r
}

/// A strong `ETag` per asset: the first 16 hex digits of its SHA-256, computed once.
fn etag(i: usize, asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    tags.get(i).map_or("\"\"", |t| {
        debug_assert_eq!(ASSETS[i].name, asset.name);
        t.as_str()
    })
}

fn redirect() -> Response<Full<Bytes>> {
    let mut r = secured(StatusCode::MOVED_PERMANENTLY, Bytes::new());
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(PREFIX));
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = secured(status, Bytes::from_static(text.as_bytes()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A response with the console's security headers.
fn secured(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        for a in ASSETS.iter().filter(|a| a.media_type == JS) {
            let text = std::str::from_utf8(a.body).expect("UTF-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let file = line
                    .rsplit("from \"./")
                    .next()
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("");
                assert!(
                    ASSETS.iter().any(|x| x.name == file),
                    "{} imports {file:?}, which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("style="), "the CSP forbids inline styles");
        assert!(!html.contains("<style"), "the CSP forbids inline styles");
        for tag in html.split("<script").skip(1) {
            assert!(tag.contains("src="), "the CSP forbids inline scripts");
        }
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            let after = html[i + 3 + name.len()..].chars().next();
            assert!(after != Some('='), "no inline event handlers (on{name}=)");
        }
    }
}
